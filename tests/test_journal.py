"""Durable batches: resuming from a journal, delivery marks, the lock, bad files, another endpoint's journal.

Over real gRPC against the emulator in this process, its GetOperation calls
counted per name (``counting.GetCounter``). The crash test, with a job killed
at random instants, is ``test_journal_crash.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from counting import GetCounter

from lro_grpc import AsyncOperationsClient, BatchWaiter, OperationsClient, PollPolicy
from lro_grpc._batch import SqliteJournalStore
from lro_grpc._generated import financialservices_v1_pb2 as fs
from lro_grpc._generated import financialservices_v1_pb2_grpc as fs_grpc
from lro_grpc.cli import ExitCode, main
from lro_grpc.emulator import DURATION_HEADER, OUTCOME_HEADER, Emulator
from lro_grpc.errors import JournalError

POLL = PollPolicy(initial=0.05, multiplier=1.0, maximum=0.05, jitter=0.0)
CONSUMER = Path(__file__).with_name("journal_consumer.py")


@pytest.fixture
def counter(monkeypatch: pytest.MonkeyPatch) -> GetCounter:
    counting = GetCounter()
    counting.install(monkeypatch)
    return counting


@pytest.fixture
def emu(counter: GetCounter) -> Iterator[Emulator]:
    with Emulator() as emulator:
        yield emulator


def start(target: str, count: int, *, duration: float = 0.0, project: str = "p") -> list[str]:
    """``count`` operations lasting ``duration`` s; every third fails."""
    with grpc.insecure_channel(target) as channel:
        aml = fs_grpc.AMLStub(channel)
        names = []
        for index in range(count):
            metadata = [(DURATION_HEADER, str(duration))]
            if index % 3 == 0:
                metadata.append((OUTCOME_HEADER, "fail"))
            request = fs.CreateInstanceRequest(
                parent=f"projects/{project}/locations/us-central1", instance_id=f"i{index}"
            )
            names.append(aml.CreateInstance(request, metadata=metadata).name)
    return names


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- resuming


async def test_async_resume_skips_delivered_replays_recorded_and_polls_the_rest(
    emu: Emulator, counter: GetCounter, tmp_path: Path
) -> None:
    done = start(emu.target, 10)
    later = start(emu.target, 4, duration=1.0, project="later")
    journal = tmp_path / "j"
    first: list[str] = []
    async with AsyncOperationsClient(emu.target, batch_sweep=False) as client:
        # aclosing: an async generator left by ``break`` is closed only later, holding the journal until then.
        operations = contextlib.aclosing(client.as_completed(done + later, journal=journal, poll_policy=POLL))
        async with operations as ops:
            async for operation in ops:
                first.append(operation.name)
                if len(first) == 1:
                    await asyncio.sleep(0.3)  # the other nine are seen meanwhile
                if len(first) == 3:
                    break  # the third is in hand: not delivered
    assert set(first) <= set(done)
    counter.by_name.clear()
    second: list[str] = []
    async with AsyncOperationsClient(emu.target, batch_sweep=False) as client:
        async for operation in client.as_completed(done + later, journal=journal, poll_policy=POLL):
            second.append(operation.name)
            assert operation.done
    assert first[2] in second and first[0] not in second and first[1] not in second
    assert sorted(first[:2] + second) == sorted(done + later)
    assert all(counter.by_name[name] == 0 for name in done)  # recorded: handed out without an RPC
    assert all(counter.by_name[name] >= 1 for name in later)
    assert second[:8] == [name for name in second if name in done]  # replayed first


def test_sync_resume_skips_delivered_replays_recorded_and_polls_the_rest(
    emu: Emulator, counter: GetCounter, tmp_path: Path
) -> None:
    done = start(emu.target, 10)
    later = start(emu.target, 4, duration=1.0, project="later")
    journal = tmp_path / "j"
    first: list[str] = []
    with OperationsClient(emu.target) as client:
        for operation in client.as_completed(done + later, journal=journal, poll_policy=POLL):
            first.append(operation.name)
            if len(first) == 1:
                time.sleep(0.3)  # the other nine are seen meanwhile
            if len(first) == 3:
                break
    counter.by_name.clear()
    with OperationsClient(emu.target) as client:
        second = [operation.name for operation in client.as_completed(done + later, journal=journal, poll_policy=POLL)]
    assert first[2] in second and first[0] not in second and first[1] not in second
    assert sorted(first[:2] + second) == sorted(done + later)
    assert all(counter.by_name[name] == 0 for name in done)


def test_resume_with_names_none_takes_every_name_in_the_journal(
    emu: Emulator, counter: GetCounter, tmp_path: Path
) -> None:
    names = start(emu.target, 6)
    journal = tmp_path / "j"
    with OperationsClient(emu.target) as client:
        iterator = client.as_completed(names, journal=journal, poll_policy=POLL)
        handled = [next(iterator).name]
        time.sleep(0.3)  # every outcome is seen meanwhile
        handled.append(next(iterator).name)  # the first is delivered, the second in hand
        iterator.close()
        counter.by_name.clear()
        rest = [operation.name for operation in client.as_completed(None, journal=journal, poll_policy=POLL)]
        assert sorted([handled[0], *rest]) == sorted(names)
        assert counter.total() == 0
        assert list(client.as_completed(None, journal=journal)) == []  # everything delivered
        # wait_all returns every result, from the journal, in the order recorded.
        results = client.wait_all(None, journal=journal)
        assert [operation.name for operation in results] == names
        assert counter.total() == 0
    with pytest.raises(TypeError, match="needs a journal"), OperationsClient(emu.target) as client:
        client.wait_all(None)


async def test_wait_all_resumes_and_returns_every_result_without_polling_recorded_ones(
    emu: Emulator, counter: GetCounter, tmp_path: Path
) -> None:
    names = start(emu.target, 5)
    journal = tmp_path / "j"
    async with AsyncOperationsClient(emu.target) as client:
        results = await client.wait_all(names, journal=journal, poll_policy=POLL)
        assert [operation.name for operation in results] == names
        assert [operation.error is not None for operation in results] == [True, False, False, True, False]
        more = start(emu.target, 2, project="more")
        counter.by_name.clear()
        again = await client.wait_all(names + more, journal=journal, poll_policy=POLL)  # a superset
        assert [operation.name for operation in again] == names + more
        assert sum(counter.by_name[name] for name in names) == 0
        # The new ones were looked at (by their GetOperation, or a listing of finished operations).
        assert all(operation.done for operation in again[len(names) :])
    store = SqliteJournalStore(journal)
    try:
        contents = store.load()
    finally:
        store.close()
    assert contents.names == names + more
    assert len(contents.delivered) == len(contents.outcomes) == 7


async def test_waiter_add_records_new_names_before_polling_them(emu: Emulator, tmp_path: Path) -> None:
    names = start(emu.target, 3)
    journal = tmp_path / "j"
    async with AsyncOperationsClient(emu.target) as client:
        waiter = BatchWaiter(client, names[:1], journal=journal, poll_policy=POLL, keep_open=True)
        async with waiter:
            seen = [(await waiter.__anext__()).name]
            assert waiter.add(names) == 2
            waiter.close_input()
            seen += [operation.name async for operation in waiter]
    assert sorted(seen) == sorted(names)
    store = SqliteJournalStore(journal)
    try:
        assert store.load().names == names
    finally:
        store.close()


@pytest.mark.slow  # a subprocess
def test_outcomes_reach_the_disk_without_a_delivery(emu: Emulator, tmp_path: Path) -> None:
    """A job holding its first outcome is killed: every outcome it had seen is on disk (group commits)."""
    names = start(emu.target, 40)
    names_file = tmp_path / "names"
    names_file.write_text("\n".join(names))
    journal = tmp_path / "j"
    child = subprocess.Popen(
        [sys.executable, str(CONSUMER), emu.target, str(journal), str(names_file), "hold"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        assert child.stdout is not None
        held = child.stdout.readline().split()[0]
        time.sleep(0.5)
        # Two processes on one journal: the second gets an error naming the first, and changes nothing.
        before = digest(journal)
        with pytest.raises(JournalError, match=f"in use by process {child.pid}"):
            SqliteJournalStore(journal)
        assert digest(journal) == before
        child.send_signal(signal.SIGKILL)
        child.wait()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()
    store = SqliteJournalStore(journal)
    try:
        contents = store.load()
    finally:
        store.close()
    assert {outcome.name for outcome in contents.outcomes} == set(names)
    assert contents.delivered == set()  # the one in hand was not delivered
    with OperationsClient(emu.target) as client:
        replayed = [operation.name for operation in client.as_completed(names, journal=journal)]
    assert sorted(replayed) == sorted(names) and held in replayed


# --------------------------------------------------------------------------- bad journals


def test_one_process_per_journal_in_process_too(emu: Emulator, tmp_path: Path) -> None:
    names = start(emu.target, 2)
    journal = tmp_path / "j"
    with OperationsClient(emu.target) as client:
        iterator = client.as_completed(names, journal=journal, poll_policy=POLL)
        next(iterator)
        with pytest.raises(JournalError, match=f"in use by process {os.getpid()}"):
            client.wait_all(names, journal=journal)
        iterator.close()
        assert len(client.wait_all(names, journal=journal)) == 2  # released on close


def make_journal(emu: Emulator, path: Path, count: int = 300) -> list[str]:
    names = start(emu.target, count)
    with OperationsClient(emu.target) as client:
        client.wait_all(names, journal=path, poll_policy=POLL)
    return names


def test_truncated_journal_is_an_error_and_left_alone(emu: Emulator, tmp_path: Path) -> None:
    journal = tmp_path / "j"
    names = make_journal(emu, journal)
    size = journal.stat().st_size
    assert size > 8192
    with open(journal, "r+b") as file:
        file.truncate(size // 2)
    before = digest(journal)
    with OperationsClient(emu.target) as client, pytest.raises(JournalError, match=r"malformed.*truncated\?") as raised:
        client.wait_all(names, journal=journal)
    assert str(journal) in str(raised.value) and "nothing was changed" in str(raised.value)
    assert digest(journal) == before
    journal.write_bytes(b"SQLite format 3\x00" + bytes(34))
    with pytest.raises(JournalError, match="50 bytes long: too short"):
        SqliteJournalStore(journal)


def test_corrupt_or_foreign_files_are_errors_and_left_alone(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage"
    garbage.write_bytes(os.urandom(8192))
    with pytest.raises(JournalError, match="not a SQLite database"):
        SqliteJournalStore(garbage)
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as connection:
        connection.execute("CREATE TABLE things (x)")
    connection.close()
    before = digest(foreign)
    with pytest.raises(JournalError, match="not an lro-grpc journal"):
        SqliteJournalStore(foreign)
    assert digest(foreign) == before
    assert not (tmp_path / "foreign.db-wal").exists()


def test_corrupt_pages_are_an_error(emu: Emulator, tmp_path: Path) -> None:
    journal = tmp_path / "j"
    make_journal(emu, journal)
    data = bytearray(journal.read_bytes())
    data[4096 * 2 : 4096 * 3] = os.urandom(4096)  # a whole page of noise, the size unchanged
    journal.write_bytes(bytes(data))
    with pytest.raises(JournalError, match=r"corrupt|not a readable journal|cannot be read"):
        SqliteJournalStore(journal)
    assert journal.read_bytes() == bytes(data)


def test_a_journal_of_another_endpoint_or_api_is_an_error_naming_both(emu: Emulator, tmp_path: Path) -> None:
    journal = tmp_path / "j"
    names = make_journal(emu, journal, count=2)
    before = digest(journal)
    with Emulator() as other, OperationsClient(other.target) as client:
        other_target = other.target
        with pytest.raises(JournalError) as raised:
            client.wait_all(names, journal=journal)
    assert emu.target in str(raised.value) and other_target in str(raised.value)
    sm_client = OperationsClient(emu.target, api="servicemanagement")
    with sm_client, pytest.raises(JournalError, match=r"financialservices.*servicemanagement"):
        sm_client.wait_all(None, journal=journal)
    assert digest(journal) == before


# --------------------------------------------------------------------------- the command line


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_wait_journal_resumes_and_journal_counts_and_prints_outcomes(
    emu: Emulator, counter: GetCounter, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    names = start(emu.target, 6)
    names_file = tmp_path / "names"
    names_file.write_text("\n".join(names[2:]) + "\n\n")
    journal = str(tmp_path / "j")
    common = ("--endpoint", emu.target, "--json")
    code, out, err = run_cli(capsys, *common, "wait", *names[:2], "--names-from", str(names_file), "--journal", journal)
    assert code == ExitCode.OPERATION_FAILED, err  # two of them failed

    # One JSON line per outcome, as it came.
    def by_name(lines: str) -> list[dict[str, object]]:
        return sorted((json.loads(line) for line in lines.splitlines()), key=lambda operation: str(operation["name"]))

    outcomes = by_name(out)
    assert [operation["name"] for operation in outcomes] == sorted(names)
    counter.by_name.clear()
    # Run again with no names: every name in the journal, every outcome from it, no RPC.
    code, again, err = run_cli(capsys, *common, "wait", "--journal", journal)
    assert code == ExitCode.OPERATION_FAILED, err
    assert (
        sorted((json.loads(line) for line in again.splitlines()), key=lambda operation: operation["name"]) == outcomes
    )
    assert counter.total() == 0
    code, out, err = run_cli(capsys, "journal", journal)
    assert code == ExitCode.OK, err
    counts = dict(line.split(None, 1) for line in out.splitlines())
    assert counts["endpoint"] == emu.target and counts["api"] == "financialservices"
    assert (counts["operations"], counts["pending"], counts["succeeded"], counts["failed"]) == ("6", "0", "4", "2")
    assert (counts["cancelled"], counts["delivered"]) == ("0", "6")
    code, out, err = run_cli(capsys, "journal", journal, "--json")
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["name"] for line in lines] == names
    assert lines[0]["error"]["code"] == 9 and lines[1]["response"]["@type"].endswith("Instance")


def test_cli_journal_errors_are_usage_errors(emu: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = str(tmp_path / "missing")
    code, _, err = run_cli(capsys, "journal", missing)
    assert code == ExitCode.USAGE and "does not exist" in err
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"x" * 200)
    code, _, err = run_cli(capsys, "--endpoint", emu.target, "wait", "--journal", str(garbage))
    assert code == ExitCode.USAGE and "not a SQLite database" in err and len(err.splitlines()) == 1
    code, _, err = run_cli(capsys, "--endpoint", emu.target, "wait")
    assert code == ExitCode.USAGE and "needs operation names" in err
