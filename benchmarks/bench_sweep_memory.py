"""Resident memory per pending operation while sweeping, against polling each operation on its own.

Run with ``.venv/bin/python benchmarks/bench_sweep_memory.py``.

Each measure is a fresh subprocess: ``N`` Financial Services operations of one
location, all running, tracked by one :class:`~lro_grpc._batch.BatchWaiter`
over an in-process source (no RPCs, to keep it short): with sweeping, its
ListOperations pages are real serialized pages of 1,000 operations, parsed
afresh for each call as off the wire, and the measure is taken after three
complete rounds (every operation in its scope's table with its last seen
state); without sweeping, after each operation's own GetOperation. The
figure is the slope of RSS between ``N`` = 20,000 and 60,000 (the
interpreter's and the pages' fixed costs cancel out), the minimum of
``--rounds`` runs at each size; the ratio is against polling one by one in
the same run.

Target: <= 800 B per pending operation with sweeping on.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import subprocess
import sys
from collections.abc import Sequence

from google.longrunning import operations_pb2

from lro_grpc._batch import BatchSource, BatchWaiter
from lro_grpc._core import RpcFailure
from lro_grpc._generated import financialservices_v1_pb2 as fs
from lro_grpc.policies import Deadline, PollPolicy

PARENT = "projects/bench/locations/us-central1"
PAGE = 1000
SIZES = (20_000, 60_000)


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


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

    async def fetch(
        self, name: str, *, deadline: Deadline, rpc_timeout: float | None
    ) -> operations_pb2.Operation | RpcFailure:
        self.answers += 1
        operation = operations_pb2.Operation(name=name)
        operation.metadata.CopyFrom(self.metadata)
        return operation

    async def list_page(
        self, request: operations_pb2.ListOperationsRequest, *, deadline: Deadline, rpc_timeout: float | None
    ) -> operations_pb2.ListOperationsResponse | RpcFailure:
        self.answers += 1
        return operations_pb2.ListOperationsResponse.FromString(self.pages[int(request.page_token or 0) // PAGE])

    def _batch_source(self) -> BatchSource[operations_pb2.Operation]:
        return BatchSource(
            fetch=self.fetch, wrap=lambda operation: operation, list_page=self.list_page if self.sweep else None
        )


async def child_main(pending: int, sweep: bool) -> int:
    names = [
        f"{PARENT}/operations/operation-{1795425651075 + index}-a0da737b68048-{index:08x}" for index in range(pending)
    ]
    location = InMemoryLocation(names, sweep=sweep)
    gc.collect()
    before = rss_bytes()
    policy = PollPolicy(initial=0.5, multiplier=1.0, maximum=0.5, jitter=0.0)
    waiter = BatchWaiter(location, names, poll_policy=policy, max_in_flight=100)
    iteration = asyncio.ensure_future(waiter.__anext__())
    enough = 3 * len(location.pages) if sweep else pending
    while location.answers < enough:
        await asyncio.sleep(0.05)
    gc.collect()
    after = rss_bytes()
    iteration.cancel()
    await waiter.aclose()
    return after - before


def measure(pending: int, sweep: bool) -> int:
    command = [sys.executable, __file__, "--child", str(pending), "--sweep" if sweep else "--no-sweep"]
    return int(json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout))


def slope(sweep: bool, rounds: int) -> float:
    low, high = (min(measure(size, sweep) for _ in range(rounds)) for size in SIZES)
    return (high - low) / (SIZES[1] - SIZES[0])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="runs per size and mode, the minimum kept (%(default)s)")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--sweep", action=argparse.BooleanOptionalAction, default=True, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        print(json.dumps(asyncio.run(child_main(args.child, args.sweep))))
        return 0
    swept = slope(True, args.rounds)
    one_by_one = slope(False, args.rounds)
    print(
        f"RSS per pending operation, slope {SIZES[0]:,} -> {SIZES[1]:,} (min of {args.rounds} runs each): "
        f"sweeping {swept:.0f} B, polling one by one {one_by_one:.0f} B -> {swept / one_by_one:.2f}x (target <= 800 B)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
