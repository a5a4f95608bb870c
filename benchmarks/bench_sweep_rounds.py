"""The client's per-round cost of sweeping: CPU per listed operation per round, and memory per pending operation.

Run with ``.venv/bin/python benchmarks/bench_sweep_rounds.py``.

No RPCs (an in-process source, to measure the batch alone): ``N`` Financial
Services operations of one location, all running, tracked by one
:class:`~lro_grpc._batch.BatchWaiter`. Its ListOperations pages are real
serialized pages of 1,000 operations, parsed afresh for each call as off the
wire.

1. CPU: client CPU per listed operation per round over ``--rounds-measured``
   rounds (the first round, which takes the operations in, left out), against
   the floor measured in the same run: parsing the same pages and reading
   each listed operation's name and ``done``, the least any sweep does per
   listed operation. Min and median of ``--repeat`` runs, each in a fresh
   subprocess.
2. Memory: the RSS slope between ``N`` = 20,000 and 60,000 pending operations
   after three rounds (every operation in its scope's table with its last
   seen state), the minimum of ``--repeat`` runs at each size; against
   polling each operation on its own (after one GetOperation of each) in the
   same run.

Targets: <= 800 B per pending operation with sweeping on (issue 19).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import subprocess
import sys
import time
from collections.abc import Sequence

from bench_waiter import rss_bytes
from google.longrunning import operations_pb2

from lro_grpc._batch import BatchSource, BatchWaiter
from lro_grpc._core import RpcFailure
from lro_grpc._generated import financialservices_v1_pb2 as fs
from lro_grpc.policies import Deadline, PollPolicy

PARENT = "projects/bench/locations/us-central1"
PAGE = 1000
SIZES = (20_000, 60_000)
POLICY = PollPolicy(initial=0.05, multiplier=1.0, maximum=0.05, jitter=0.0)


def operation_names(count: int) -> list[str]:
    return [f"{PARENT}/operations/operation-{1795425651075 + index}-{index:08x}" for index in range(count)]


class InMemoryLocation:
    """One location whose operations all keep running, answered from memory."""

    def __init__(self, names: Sequence[str], *, sweep: bool) -> None:
        metadata = fs.OperationMetadata(target=f"{PARENT}/instances/bench", verb="create", api_version="v1")
        metadata.create_time.GetCurrentTime()
        self.metadata = operations_pb2.Operation().metadata
        self.metadata.Pack(metadata)
        self.sweep = sweep
        self.pages: list[bytes] = []
        for start in range(0, len(names), PAGE):
            page = operations_pb2.ListOperationsResponse()
            for name in names[start : start + PAGE]:
                page.operations.add(name=name).metadata.CopyFrom(self.metadata)
            if start + PAGE < len(names):
                page.next_page_token = str(start + PAGE)
            self.pages.append(page.SerializeToString())
        self.answers = 0
        self.round_starts: list[float] = []  # client CPU time when each listing round asked for its first page

    async def fetch(
        self, name: str, *, deadline: Deadline, rpc_timeout: float | None
    ) -> operations_pb2.Operation | RpcFailure:
        await asyncio.sleep(0)  # an answer comes back through the event loop, as over gRPC
        self.answers += 1
        operation = operations_pb2.Operation(name=name)
        operation.metadata.CopyFrom(self.metadata)
        return operation

    async def list_page(
        self, request: operations_pb2.ListOperationsRequest, *, deadline: Deadline, rpc_timeout: float | None
    ) -> operations_pb2.ListOperationsResponse | RpcFailure:
        await asyncio.sleep(0)
        self.answers += 1
        if not request.page_token:
            self.round_starts.append(time.process_time())
        return operations_pb2.ListOperationsResponse.FromString(self.pages[int(request.page_token or 0) // PAGE])

    def _batch_source(self) -> BatchSource[operations_pb2.Operation]:
        return BatchSource(
            fetch=self.fetch, wrap=lambda operation: operation, list_page=self.list_page if self.sweep else None
        )


async def rss_child(pending: int, sweep: bool) -> float:
    """RSS growth with ``pending`` operations tracked (after three rounds, or one GetOperation of each)."""
    location = InMemoryLocation(operation_names(pending), sweep=sweep)
    gc.collect()
    before = rss_bytes()
    waiter = BatchWaiter(location, operation_names(pending), poll_policy=POLICY, max_in_flight=100)
    iteration = asyncio.ensure_future(waiter.__anext__())
    enough = 3 * len(location.pages) if sweep else pending
    while location.answers < enough:
        await asyncio.sleep(0.05)
    gc.collect()
    after = rss_bytes()
    iteration.cancel()
    await waiter.aclose()
    return float(after - before)


async def cpu_child(pending: int, rounds: int) -> float:
    """Client CPU seconds per listed operation per round, over ``rounds`` rounds after the first."""
    location = InMemoryLocation(operation_names(pending), sweep=True)
    waiter = BatchWaiter(location, operation_names(pending), poll_policy=POLICY, max_in_flight=100)
    iteration = asyncio.ensure_future(waiter.__anext__())
    while len(location.round_starts) < rounds + 2:
        await asyncio.sleep(0.01)
    iteration.cancel()
    await waiter.aclose()
    starts = location.round_starts
    return (starts[rounds + 1] - starts[1]) / (rounds * pending)


def floor_cpu(pending: int, rounds: int) -> float:
    """CPU seconds per listed operation of parsing the pages and reading each operation's name and ``done``."""
    pages = InMemoryLocation(operation_names(pending), sweep=True).pages
    started = time.process_time()
    for _ in range(rounds):
        for data in pages:
            for operation in operations_pb2.ListOperationsResponse.FromString(data).operations:
                if operation.name and operation.done:
                    raise AssertionError("every operation runs")
    return (time.process_time() - started) / (rounds * pending)


def child(*arguments: str) -> float:
    command = [sys.executable, __file__, "--child", *arguments]
    return float(json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout))


def rss_slope(sweep: bool, repeat: int) -> float:
    low, high = (min(child("rss", str(size), str(sweep)) for _ in range(repeat)) for size in SIZES)
    return (high - low) / (SIZES[1] - SIZES[0])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--operations", type=int, default=50_000, help="operations in the CPU runs (%(default)s)")
    parser.add_argument("--rounds-measured", type=int, default=10, help="rounds per CPU run (%(default)s)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (%(default)s)")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        kind, size, option = args.child
        if kind == "rss":
            print(json.dumps(asyncio.run(rss_child(int(size), option == "True"))))
        else:
            print(json.dumps(asyncio.run(cpu_child(int(size), int(option)))))
        return 0
    ratios = []
    for _ in range(args.repeat):
        swept = child("cpu", str(args.operations), str(args.rounds_measured))
        floor = floor_cpu(args.operations, args.rounds_measured)
        ratios.append((swept / floor, swept, floor))
    ratios.sort()
    best, middle = ratios[0], ratios[len(ratios) // 2]
    print(
        f"CPU per listed operation per round, {args.operations:,} operations, {args.rounds_measured} rounds: "
        f"{1e9 * middle[1]:.0f} ns against {1e9 * middle[2]:.0f} ns to parse the pages -> "
        f"{best[0]:.2f}x min, {middle[0]:.2f}x median of {args.repeat} "
        f"({', '.join(f'{ratio:.2f}' for ratio, _, _ in ratios)})"
    )
    swept_rss = rss_slope(True, args.repeat)
    one_by_one_rss = rss_slope(False, args.repeat)
    print(
        f"RSS per pending operation, slope {SIZES[0]:,} -> {SIZES[1]:,} (min of {args.repeat} runs each): "
        f"sweeping {swept_rss:.0f} B, polling one by one {one_by_one_rss:.0f} B -> "
        f"{swept_rss / one_by_one_rss:.2f}x (target <= 800 B)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
