"""Client CPU of a batch journal, per operation, at 100,000 operations.

Run with ``make bench`` (or ``.venv/bin/python benchmarks/bench_journal.py``).

What is measured is the journal's own work: the names' commit before the
first poll, each outcome serialized and written in a group commit, each
delivery mark made durable before the next outcome is handed out, and the
final flush and close. So the operations are answered in this process, with
no RPC (an RPC costs some 150 us of client CPU, whose noise between runs
would drown a 10 us difference): a source whose GetOperation returns the
operation done at once, with the metadata and response an emulated
Financial Services ``CreateInstance`` has. Everything else is the real
batch: the client's scheduler and workers, the waiter, the synchronous
facade's background loop.

For each way in (``AsyncOperationsClient.as_completed``, its synchronous
twin, and ``wait_all``), the same batch runs with and without a journal,
alternately, ``--rounds`` times; the journal's cost per operation is the
difference of their CPU (``time.process_time()``, all threads) divided by
the number of operations; min and median over the rounds (the machine is
noisy). Then the same for the two ways of making group commits: a timer on
the event loop (the default) and a writer thread.

Target: <= 15 us of client CPU per operation for journal work.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from google.longrunning import operations_pb2
from google.protobuf import any_pb2

from lro_grpc._batch import (
    BatchSource,
    Journal,
    JournalPath,
    SqliteJournalStore,
    SyncBatchRunner,
    as_completed,
    wait_all,
)
from lro_grpc._core import RpcFailure
from lro_grpc._generated import financialservices_v1_pb2 as fs
from lro_grpc.policies import Deadline, PollPolicy

TARGET_US = 15.0
POLICY = PollPolicy(initial=1.0, multiplier=1.0, maximum=1.0, jitter=0.0)


def _packed(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def _metadata() -> any_pb2.Any:
    metadata = fs.OperationMetadata(
        target="projects/bench/locations/us-central1/instances/instance-000000", verb="create", api_version="v1"
    )
    metadata.create_time.seconds = 1_700_000_000
    metadata.end_time.seconds = 1_700_000_042
    return _packed(metadata)


_METADATA = _metadata()
_RESPONSE = _packed(
    fs.Instance(name="projects/bench/locations/us-central1/instances/instance-000000", state=fs.Instance.State.ACTIVE)
)


class DoneAtOnce:
    """A batch source answering every GetOperation in process: the operation, done (no RPC)."""

    async def fetch(
        self, name: str, *, deadline: Deadline, rpc_timeout: float | None
    ) -> operations_pb2.Operation | RpcFailure:
        return operations_pb2.Operation(name=name, done=True, metadata=_METADATA, response=_RESPONSE)

    def _batch_source(self) -> BatchSource[operations_pb2.Operation]:
        return BatchSource(
            fetch=self.fetch, wrap=lambda operation: operation, poll_policy_for=lambda name, policy: POLICY
        )


def names_for(count: int) -> list[str]:
    return [f"projects/bench/locations/us-central1/operations/operation-{index:08d}" for index in range(count)]


class Fresh:
    """A new journal path per run, in one directory."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.runs = 0

    def __call__(self) -> str:
        self.runs += 1
        return os.path.join(self.directory, f"journal-{self.runs}.db")


async def async_as_completed(names: Sequence[str], journal: JournalPath | None) -> int:
    seen = 0
    async for _ in as_completed(DoneAtOnce(), names, poll_policy=POLICY, journal=journal):
        seen += 1
    return seen


async def async_wait_all(names: Sequence[str], journal: JournalPath | None) -> int:
    return len(await wait_all(DoneAtOnce(), names, poll_policy=POLICY, journal=journal))


def sync_as_completed(names: Sequence[str], journal: JournalPath | None) -> int:
    @asynccontextmanager
    async def open_source() -> AsyncIterator[DoneAtOnce]:
        yield DoneAtOnce()

    with SyncBatchRunner(open_source, wrap=lambda pb: pb) as runner:
        return sum(1 for _ in runner.as_completed(names, poll_policy=POLICY, journal=journal))


def measure(
    run: Callable[[Sequence[str], JournalPath | None], int], names: Sequence[str], journal: JournalPath | None
) -> tuple[float, float]:
    """CPU and wall seconds of one batch, which must report every name."""
    gc.collect()
    cpu, wall = time.process_time(), time.perf_counter()
    seen = run(names, journal)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    if seen != len(names):
        raise RuntimeError(f"saw {seen} operations, expected {len(names)}")
    return cpu, wall


def compare(
    label: str,
    run: Callable[[Sequence[str], JournalPath | None], int],
    names: Sequence[str],
    fresh: Fresh,
    rounds: int,
) -> list[float]:
    """Per-operation journal CPU (us) of each round: with minus without, same batch."""
    count = len(names)
    deltas = []
    for _ in range(rounds):
        base_cpu, base_wall = measure(run, names, None)
        path = fresh()
        cpu, wall = measure(run, names, path)
        check_journal(path, count)
        deltas.append((cpu - base_cpu) / count * 1e6)
        print(
            f"  {label:44s} without {base_cpu / count * 1e6:6.1f} us/op ({base_wall:5.2f} s)"
            f"   with {cpu / count * 1e6:6.1f} us/op ({wall:5.2f} s)   journal {deltas[-1]:5.1f} us/op",
            flush=True,
        )
    return deltas


def check_journal(path: str, count: int) -> None:
    """Every name, outcome and delivery is in the file."""
    store = SqliteJournalStore(path)
    try:
        contents = store.load()
    finally:
        store.close()
    if not (len(contents.names) == len(contents.outcomes) == len(contents.delivered) == count):
        raise RuntimeError(
            f"journal {path}: {len(contents.names)} names, {len(contents.outcomes)} outcomes, "
            f"{len(contents.delivered)} delivered; expected {count} of each"
        )


def summary(label: str, deltas: list[float]) -> str:
    return f"{label:44s} min {min(deltas):5.1f}  median {statistics.median(deltas):5.1f} us/op"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--operations", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", default=None, help="where the journal files go (default: the system temp dir)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    names = names_for(args.operations)
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="lro-grpc-bench-journal-") as directory:
        fresh = Fresh(directory)
        print(f"journal cost: {args.operations:,} operations, {args.rounds} rounds, files in {directory}")
        results: dict[str, list[float]] = {}
        results["async as_completed (timer on the loop)"] = compare(
            "async as_completed (timer on the loop)",
            lambda batch, path: asyncio.run(async_as_completed(batch, path)),
            names,
            fresh,
            args.rounds,
        )
        results["sync as_completed"] = compare("sync as_completed", sync_as_completed, names, fresh, args.rounds)
        results["async wait_all"] = compare(
            "async wait_all", lambda batch, path: asyncio.run(async_wait_all(batch, path)), names, fresh, args.rounds
        )
        Journal.flush_in_thread_by_default = True
        try:
            results["async as_completed (writer thread)"] = compare(
                "async as_completed (writer thread)",
                lambda batch, path: asyncio.run(async_as_completed(batch, path)),
                names,
                fresh,
                args.rounds,
            )
        finally:
            Journal.flush_in_thread_by_default = False
    print()
    for label, deltas in results.items():
        print(summary(label, deltas))
    default_paths = [deltas for label, deltas in results.items() if "writer thread" not in label]
    for how, pick in (("min", min), ("median", statistics.median)):
        worst = max(pick(deltas) for deltas in default_paths)
        verdict = "met" if worst <= TARGET_US else "NOT met"
        print(f"journal CPU per operation, worst {how} of the default paths: {worst:.1f} us", end="")
        print(f" (target <= {TARGET_US:g}: {verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
