"""A journal's file on disk: integrity judged by SQLite, atomic creation, links, permissions, reading read-only.

Writers run in child processes (``journal_writer.py``, ``journal_consumer.py``)
killed with SIGKILL at chosen instants: during a checkpoint, while the
journal is being created, after a number of outcomes. The full-disk and
read-only tests mount a small tmpfs or a read-only bind mount, which needs
root; they are skipped otherwise.
"""

from __future__ import annotations

import collections
import contextlib
import os
import random
import signal
import stat
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from journal_writer import outcome_bytes
from test_journal import CONSUMER, POLL, run_cli, start

from lro_grpc import OperationsClient
from lro_grpc._batch import SqliteJournalStore, read_journal
from lro_grpc.cli import ExitCode
from lro_grpc.emulator import Emulator
from lro_grpc.errors import JournalError

WRITER = Path(__file__).with_name("journal_writer.py")
CHILD_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator() as emulator:
        yield emulator


def spawn(*argv: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, *argv], stdout=subprocess.PIPE, text=True, env=CHILD_ENV)


READERS: dict[int, threading.Thread] = {}  # child pid -> the thread reading its output


def collect(child: subprocess.Popen[str]) -> list[str]:
    """The child's output lines, gathered by a thread as they come (every one of them once :func:`kill` returns)."""
    lines: list[str] = []
    assert child.stdout is not None
    stream = child.stdout
    READERS[child.pid] = threading.Thread(target=lambda: lines.extend(line.strip() for line in stream), daemon=True)
    READERS[child.pid].start()
    return lines


def kill(child: subprocess.Popen[str]) -> None:
    if child.poll() is None:
        child.send_signal(signal.SIGKILL)
    child.wait()
    reader = READERS.pop(child.pid, None)
    if reader is not None:
        reader.join(30)  # the pipe is at its end: the child is gone
    if child.stdout is not None:
        child.stdout.close()


def length_and_declared_length(fd: int) -> tuple[int, int]:
    """The main file's length, and the length its SQLite header declares (0 while it has no header)."""
    header = os.pread(fd, 100, 0)
    if len(header) < 100:
        return os.fstat(fd).st_size, 0
    page_size = int.from_bytes(header[16:18], "big")
    return os.fstat(fd).st_size, int.from_bytes(header[28:32], "big") * page_size


def contents_of(path: Path) -> tuple[list[int], set[int]]:
    """Outcome ids and delivery marks, through a writer's open (which takes the lock and may recover)."""
    store = SqliteJournalStore(path)
    try:
        contents = store.load()
    finally:
        store.close()
    return [outcome.id for outcome in contents.outcomes], contents.delivered


def journal_counts(capsys: pytest.CaptureFixture[str], journal: Path) -> dict[str, str]:
    """``lro-grpc journal FILE``'s counts (it must succeed)."""
    code, out, err = run_cli(capsys, "journal", str(journal))
    assert code == ExitCode.OK, err
    return dict(line.split(None, 1) for line in out.splitlines())


@contextlib.contextmanager
def mounted(*argv: str) -> Iterator[None]:
    """``mount argv`` for the duration (root only: skipped otherwise)."""
    if os.geteuid() != 0:
        pytest.skip("mounting needs root")
    target = argv[-1]
    result = subprocess.run(["mount", *argv], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount here: {result.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", target], check=True)


# --------------------------------------------------------------------------- integrity (item: WAL checkpoints)


def test_writers_killed_during_checkpoints_leave_journals_that_reopen_with_every_outcome(tmp_path: Path) -> None:
    """Killed while the main file is shorter than its header says (a checkpoint writing): the WAL holds the pages."""
    caught = 0
    for round_ in range(4):
        journal = tmp_path / f"j{round_}"
        child = spawn(str(WRITER), "append", str(journal), "6000")
        lines = collect(child)
        try:
            deadline = time.monotonic() + 8
            while not journal.exists() and time.monotonic() < deadline:
                time.sleep(0.001)
            fd = os.open(journal, os.O_RDONLY)
            try:
                # Round 0 is killed at a random instant; the others when a checkpoint is caught writing.
                kill_at = time.monotonic() + random.uniform(0.2, 0.8) if round_ == 0 else deadline
                while time.monotonic() < kill_at:
                    length, declared = length_and_declared_length(fd)
                    if round_ and length < declared:
                        caught += 1
                        break
            finally:
                os.close(fd)
        finally:
            kill(child)
        committed = int(lines[-1]) if lines else 0
        ids, _ = contents_of(journal)
        assert ids[:committed] == list(range(1, committed + 1)), f"round {round_}: outcomes lost"
        store = SqliteJournalStore(journal)
        try:
            assert all(outcome.operation == outcome_bytes(outcome.id, 6000) for outcome in store.load().outcomes)
        finally:
            store.close()
        assert read_journal(journal).succeeded == len(ids)
    assert caught >= 1, "no checkpoint was caught writing: the test did not test what it says"


def test_a_full_disk_fails_the_batch_and_once_space_is_freed_it_resumes(
    emu: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A batch on a nearly full 8 MiB tmpfs fails; with space freed, resume and ``lro-grpc journal`` work."""
    disk = tmp_path / "disk"
    disk.mkdir()
    names = start(emu.target, 300)
    with mounted("-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", str(disk)):
        filler = disk / "filler"
        free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
        filler.write_bytes(b"x" * (free - 160 * 1024))
        journal = disk / "j"
        handled: list[str] = []
        with OperationsClient(emu.target) as client, pytest.raises(JournalError, match="full"):
            for operation in client.as_completed(names, journal=journal, poll_policy=POLL):
                handled.append(operation.name)
        assert len(handled) < len(names)
        filler.unlink()
        assert int(journal_counts(capsys, journal)["operations"]) == len(names)
        with OperationsClient(emu.target) as client:
            handled += [operation.name for operation in client.as_completed(names, journal=journal, poll_policy=POLL)]
        repeats = sum(count - 1 for count in collections.Counter(handled).values())
        assert set(handled) == set(names) and repeats <= 1
        assert journal_counts(capsys, journal)["delivered"] == str(len(names))


# --------------------------------------------------------------------------- creation


def test_a_kill_while_a_journal_is_created_leaves_no_journal_or_a_whole_one(tmp_path: Path) -> None:
    """Killed at random instants right after start: the file is absent, or a journal accepted as new."""
    server = subprocess.Popen(
        [sys.executable, str(WRITER), "create"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=CHILD_ENV
    )
    assert server.stdin is not None and server.stdout is not None
    requests, answers = server.stdin, server.stdout

    def begin(journal: Path) -> int:
        requests.write(f"{journal}\n")
        requests.flush()
        word, pid = answers.readline().split()
        assert word == "ready"
        return int(pid)

    def reap() -> str:
        requests.write("reap\n")
        requests.flush()
        while not (line := answers.readline().strip()).startswith("end"):
            assert line == "done", line
        return line

    landed = collections.Counter[str]()
    try:
        took: list[float] = []
        for attempt in range(5):  # how long a creation takes, seen from here
            begin(tmp_path / f"timing{attempt}")
            began = time.perf_counter()
            assert answers.readline().strip() == "done"
            took.append(time.perf_counter() - began)
            assert reap() == "end done"
        window = max(statistics.median(took) * 1.2, 0.003)
        for attempt in range(60):
            journal = tmp_path / f"j{attempt}"
            pid = begin(journal)
            time.sleep(random.uniform(0, window))
            os.kill(pid, signal.SIGKILL)  # not reaped yet: the pid is still the creator's
            killed = reap() == "end killed"
            if not journal.exists():
                landed["before the journal existed"] += 1
                continue
            landed["during creation" if killed else "after"] += 1
            ids, delivered = contents_of(journal)  # accepted: a whole journal, empty
            assert (ids, delivered) == ([], set())
    finally:
        requests.close()
        server.wait(10)
        answers.close()
    print(dict(landed), f"window {window * 1000:.1f} ms")
    assert landed["before the journal existed"] + landed["during creation"] >= 5, dict(landed)
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".new")]  # no temporary file left


# --------------------------------------------------------------------------- links


def hold_through(emu: Emulator, tmp_path: Path, journal: Path, count: int) -> tuple[subprocess.Popen[str], list[str]]:
    """A consumer of ``count`` new operations through ``journal``, and the lines it prints as it goes."""
    names = start(emu.target, count)
    names_file = tmp_path / "names"
    names_file.write_text("\n".join(names))
    child = spawn(str(CONSUMER), emu.target, str(journal), str(names_file), "sync")
    return child, collect(child)


def stop_after_lines(child: subprocess.Popen[str], lines: list[str], count: int) -> None:
    """Let ``child`` print ``count`` lines, then stop it (SIGSTOP): it holds its journal, and goes no further."""
    deadline = time.monotonic() + 60
    while len(lines) < count and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.001)
    child.send_signal(signal.SIGSTOP)
    assert len(lines) >= count and "END 0" not in lines, "the consumer ended before it could be stopped"


def test_a_journal_killed_through_a_symlink_resumes_through_its_real_path(emu: Emulator, tmp_path: Path) -> None:
    """Killed after N outcomes through a symlink, resumed through the real path: at most one repeat."""
    real = tmp_path / "real.db"
    (tmp_path / "elsewhere").mkdir()
    link = tmp_path / "elsewhere" / "link.db"
    link.symlink_to(real)
    child, lines = hold_through(emu, tmp_path, link, 1000)
    try:
        stop_after_lines(child, lines, 120)
        # While the child holds it through the link, the real path (writer or reader) is refused, naming the child.
        with pytest.raises(JournalError, match=f"in use by process {child.pid}"):
            SqliteJournalStore(real)
        with pytest.raises(JournalError, match=f"in use by process {child.pid}"):
            read_journal(real)
    finally:
        kill(child)
    before = [line.split()[0] for line in lines]
    names = (tmp_path / "names").read_text().split()
    with OperationsClient(emu.target) as client:
        after = [operation.name for operation in client.as_completed(names, journal=real, poll_policy=POLL)]
    repeats = sum(count - 1 for count in collections.Counter(before + after).values())
    assert set(before + after) == set(names)
    assert repeats <= 1, f"{repeats} outcomes handed out again after a kill ({len(before)} before it)"


def test_a_hard_linked_journal_is_refused_naming_the_holder_while_held(emu: Emulator, tmp_path: Path) -> None:
    real = tmp_path / "real.db"
    (tmp_path / "elsewhere").mkdir()
    link = tmp_path / "elsewhere" / "link.db"
    child, lines = hold_through(emu, tmp_path, real, 1000)
    try:
        stop_after_lines(child, lines, 20)
        os.link(real, link)
        with pytest.raises(JournalError, match=f"in use by process {child.pid}"):
            SqliteJournalStore(link)
        with pytest.raises(JournalError, match=f"in use by process {child.pid}"):
            read_journal(link)
    finally:
        kill(child)
    # Not held: refused all the same, by either name (SQLite's WAL is beside the name it was opened by).
    digests = {name: path.read_bytes() for name, path in (("real", real), ("wal", tmp_path / "real.db-wal"))}
    for name in (real, link):
        with pytest.raises(JournalError, match=r"has 2 names \(hard links\).*nothing was changed"):
            SqliteJournalStore(name)
        with pytest.raises(JournalError, match="hard links"):
            read_journal(name)
    assert digests == {"real": real.read_bytes(), "wal": (tmp_path / "real.db-wal").read_bytes()}
    link.unlink()
    assert len(contents_of(real)[0]) >= len(lines) - 1


# --------------------------------------------------------------------------- permissions


def test_the_journal_and_its_side_files_are_private(emu: Emulator, tmp_path: Path) -> None:
    names = start(emu.target, 3)
    journal = tmp_path / "j"
    previous = os.umask(0o022)
    try:
        with OperationsClient(emu.target) as client:
            operations = client.as_completed(names, journal=journal, poll_policy=POLL)
            next(operations)
            next(operations)  # the first outcome's delivery mark is in the side file
            files = sorted(path.name for path in tmp_path.iterdir())
            modes = {name: stat.S_IMODE((tmp_path / name).stat().st_mode) for name in files}
            operations.close()
    finally:
        os.umask(previous)
    assert {"j", "j-wal", "j.delivered"} <= set(files)
    assert modes == dict.fromkeys(files, 0o600)
    assert stat.S_IMODE(journal.stat().st_mode) == 0o600


# --------------------------------------------------------------------------- reading read-only


def test_lro_grpc_journal_reads_on_a_read_only_file_system(
    emu: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A journal closed normally, and one left by a killed writer (WAL, marks file), read through a read-only mount."""
    data = tmp_path / "data"
    data.mkdir()
    names = start(emu.target, 1000)
    with OperationsClient(emu.target) as client:
        client.wait_all(names[:6], journal=data / "clean", poll_policy=POLL)
    names_file = tmp_path / "names"
    names_file.write_text("\n".join(names))
    child = spawn(str(CONSUMER), emu.target, str(data / "killed"), str(names_file), "sync")
    lines = collect(child)
    try:
        stop_after_lines(child, lines, 50)
    finally:
        kill(child)
    assert (data / "killed-wal").stat().st_size > 0 and (data / "killed.delivered").stat().st_size > 0
    files = {path.name: path.read_bytes() for path in data.iterdir()}
    view = tmp_path / "view"
    view.mkdir()
    with mounted("--bind", str(data), str(view)):
        remounted = subprocess.run(["mount", "-o", "remount,ro,bind", str(view)], capture_output=True, text=True)
        assert remounted.returncode == 0, remounted.stderr
        with pytest.raises(OSError):
            (view / "probe").write_bytes(b"")  # the mount is read-only indeed
        counts = journal_counts(capsys, view / "clean")
        assert (counts["operations"], counts["pending"], counts["delivered"]) == ("6", "0", "6")
        counts = journal_counts(capsys, view / "killed")
        printed = len(lines)
        assert counts["operations"] == "1000"
        assert printed - 1 <= int(counts["delivered"]) <= printed  # the marks file is read too
        with OperationsClient(emu.target) as client, pytest.raises(JournalError, match="Read-only"):
            client.wait_all(names, journal=view / "new")
    assert {path.name: path.read_bytes() for path in data.iterdir()} == files  # nothing changed or created
