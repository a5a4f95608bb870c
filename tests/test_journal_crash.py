"""A batch job killed with SIGKILL at random instants resumes from its journal without losing an operation.

The emulator runs in this process (so its GetOperation calls can be counted
per name); the job, ``journal_consumer.py``, runs in a child process that is
killed at least five times and restarted each time with the same journal,
alternating the synchronous and asyncio clients.
"""

from __future__ import annotations

import collections
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from counting import GetCounter

from lro_grpc._batch import SqliteJournalStore
from lro_grpc._generated import financialservices_v1_pb2 as fs
from lro_grpc._generated import financialservices_v1_pb2_grpc as fs_grpc
from lro_grpc.emulator import DURATION_HEADER, OUTCOME_HEADER, Emulator
from lro_grpc.names import FINANCIAL_SERVICES_LOCATIONS

pytestmark = pytest.mark.slow  # kills and restarts processes

CONSUMER = Path(__file__).with_name("journal_consumer.py")
OPERATIONS = 3000
KILLS = 6
FAILED_PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION.value[0]


@pytest.fixture
def counter(monkeypatch: pytest.MonkeyPatch) -> GetCounter:
    counting = GetCounter()
    counting.install(monkeypatch)  # before the emulator registers its servicer
    return counting


@pytest.fixture
def emu(counter: GetCounter) -> Iterator[Emulator]:
    with Emulator() as emulator:
        yield emulator


def start_operations(target: str, rng: random.Random) -> dict[str, int]:
    """Start the batch: each operation ends 1 to 14 s from now; every seventh fails. Returns name -> expected code."""
    expected: dict[str, int] = {}
    with grpc.insecure_channel(target) as channel:
        aml = fs_grpc.AMLStub(channel)
        for first in range(0, OPERATIONS, 100):
            futures = []
            for index in range(first, min(OPERATIONS, first + 100)):
                parent = f"projects/crash/locations/{FINANCIAL_SERVICES_LOCATIONS[index % 4]}"
                metadata = [(DURATION_HEADER, f"{rng.uniform(1.0, 14.0):.3f}")]
                if index % 7 == 0:
                    metadata.append((OUTCOME_HEADER, "fail"))
                request = fs.CreateInstanceRequest(parent=parent, instance_id=f"i-{index}")
                futures.append((index, aml.CreateInstance.future(request, metadata=metadata)))
            for index, future in futures:
                expected[future.result().name] = FAILED_PRECONDITION if index % 7 == 0 else 0
    return expected


def recorded_names(journal: Path) -> set[str]:
    store = SqliteJournalStore(journal)  # takes the lock: the killed job must have released it
    try:
        return {outcome.name for outcome in store.load().outcomes}
    finally:
        store.close()


def read_lines(path: Path) -> list[str]:
    text = path.read_text()
    lines = text.split("\n")
    return lines[:-1]  # the last piece is empty, or a line cut by the kill


def test_killed_job_resumes_without_losing_or_repolling(emu: Emulator, counter: GetCounter, tmp_path: Path) -> None:
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    expected = start_operations(emu.target, rng)
    names_file = tmp_path / "names.txt"
    names_file.write_text("\n".join(expected))
    journal = tmp_path / "batch.journal"

    handled: list[str] = []
    codes: dict[str, int] = {}
    kills = 0
    runs = 0
    ended = False
    rpcs_after_restart: list[tuple[int, int, int]] = []  # (recorded before, their GetOperations, all GetOperations)
    deadline = time.monotonic() + 60
    while not ended:
        assert time.monotonic() < deadline, f"the job did not finish (seed {seed})"
        recorded = recorded_names(journal) if journal.exists() else set()
        counter.by_name.clear()
        output = tmp_path / f"run-{runs}.out"
        mode = "sync" if runs % 2 == 0 else "async"
        with open(output, "w") as out:
            child = subprocess.Popen(
                [sys.executable, str(CONSUMER), emu.target, str(journal), str(names_file), mode],
                stdout=out,
                env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
            )
            if kills < KILLS:
                time.sleep(rng.uniform(0.5, 1.8))
            try:
                if kills < KILLS and child.poll() is None:
                    child.send_signal(signal.SIGKILL)
                    kills += 1
                child.wait(60)
            finally:
                if child.poll() is None:
                    child.kill()
                    child.wait()
        runs += 1
        time.sleep(0.2)  # let RPCs the killed job had sent arrive before the next count
        for line in read_lines(output):
            if line == "END 0":
                ended = True
                continue
            name, code = line.split()
            handled.append(name)
            codes[name] = int(code)
        repolled = sum(counter.by_name[name] for name in recorded)
        rpcs_after_restart.append((len(recorded), repolled, sum(counter.by_name.values())))
        assert repolled == 0, f"recorded outcomes polled again after a restart: {rpcs_after_restart} (seed {seed})"
        if not ended:
            assert child.returncode == -signal.SIGKILL, f"the job failed: exit {child.returncode} (seed {seed})"

    counts = collections.Counter(handled)
    missing = set(expected) - set(counts)
    repeats = sum(count - 1 for count in counts.values())
    print(f"seed {seed}: {kills} kills, {runs} runs, {len(handled)} outcomes handled, {repeats} repeats")
    print("per restart (outcomes recorded before it, their GetOperations after it, all GetOperations):")
    print(rpcs_after_restart)
    assert kills >= 5
    assert not missing, f"{len(missing)} operations never reported (seed {seed})"
    assert set(counts) == set(expected)
    assert repeats <= kills, f"{repeats} repeats for {kills} kills (seed {seed})"
    assert codes == expected
