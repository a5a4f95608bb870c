"""What a done listing's page costs the server, in GetOperations: the weights of the sweep's cost model.

Run with ``make bench`` (or ``.venv/bin/python benchmarks/bench_list_weights.py``).

The emulator runs in a process of its own; its CPU time is read from /proc.
It holds ``--operations`` finished Financial Services operations in one
location (with their responses). Measured, 3 rounds each, min and median:

1. ``--gets`` GetOperations of them (100 at a time): server CPU per call;
2. walks of ``done=true`` in pages of 1,000 and of 100: server CPU per page.

A page's weight is then fitted as ``PAGE_WEIGHT + OPERATION_WEIGHT x
operations`` GetOperations from the two page sizes, and printed beside the
constants of ``lro_grpc._batch._done_listing``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Sequence

import grpc
from bench_waiter import EmulatorProcess
from google.longrunning import operations_pb2

from lro_grpc._batch._done_listing import OPERATION_WEIGHT, PAGE_WEIGHT
from lro_grpc._generated import financialservices_v1_pb2 as fs
from lro_grpc._generated import financialservices_v1_pb2_grpc as fs_grpc
from lro_grpc._generated import operations_pb2_grpc
from lro_grpc.emulator import DURATION_HEADER

PARENT = "projects/weights/locations/us-central1"


async def create(target: str, count: int) -> list[str]:
    semaphore = asyncio.Semaphore(100)
    async with grpc.aio.insecure_channel(target) as channel:
        aml = fs_grpc.AMLStub(channel)

        async def one(index: int) -> str:
            async with semaphore:
                request = fs.CreateInstanceRequest(parent=PARENT, instance_id=f"i-{index}")
                operation = await aml.CreateInstance(request, metadata=[(DURATION_HEADER, "0")])
            return str(operation.name)

        return list(await asyncio.gather(*(one(index) for index in range(count))))


async def gets(target: str, names: Sequence[str], calls: int) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = operations_pb2_grpc.OperationsStub(channel)
        queue = iter(range(calls))

        async def worker() -> None:
            for index in queue:
                await stub.GetOperation(operations_pb2.GetOperationRequest(name=names[index % len(names)]))

        await asyncio.gather(*(worker() for _ in range(100)))


async def walk(target: str, page_size: int) -> int:
    """One walk of the done listing; returns its pages."""
    async with grpc.aio.insecure_channel(target, options=[("grpc.max_receive_message_length", -1)]) as channel:
        stub = operations_pb2_grpc.OperationsStub(channel)
        token, pages = "", 0
        while True:
            request = operations_pb2.ListOperationsRequest(
                name=PARENT, filter="done=true", page_size=page_size, page_token=token
            )
            response = await stub.ListOperations(request)
            pages += 1
            token = response.next_page_token
            if not token:
                return pages


def server_cpu(emulator: EmulatorProcess, run: object) -> float:
    before = emulator.cpu_seconds()
    asyncio.run(run)  # type: ignore[arg-type]
    return emulator.cpu_seconds() - before


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--operations", type=int, default=20_000, help="finished operations (default: %(default)s)")
    parser.add_argument("--gets", type=int, default=20_000, help="GetOperations per round (default: %(default)s)")
    args = parser.parse_args(argv)
    emulator = EmulatorProcess()
    try:
        names = asyncio.run(create(emulator.target, args.operations))
        time.sleep(0.5)
        per_get = [server_cpu(emulator, gets(emulator.target, names, args.gets)) / args.gets for _ in range(3)]
        per_page: dict[int, list[float]] = {}
        for size in (1000, 100):
            pages = -(-args.operations // size)
            per_page[size] = [server_cpu(emulator, walk(emulator.target, size)) / pages for _ in range(3)]
    finally:
        emulator.stop()
    get = statistics.median(per_get)
    big, small = statistics.median(per_page[1000]) / get, statistics.median(per_page[100]) / get
    operation_weight = (big - small) / 900
    page_weight = small - 100 * operation_weight
    print(
        f"GetOperation: server CPU {1e6 * min(per_get):.0f} us min, {1e6 * get:.0f} us median (3 rounds of {args.gets})"
    )
    for size, values in per_page.items():
        print(
            f"done page of {size}: server CPU {1e6 * min(values):.0f} us min, "
            f"{1e6 * statistics.median(values):.0f} us median = {statistics.median(values) / get:.1f} GetOperations"
        )
    print(
        f"fitted: a page = {page_weight:.2f} + {operation_weight:.4f} x operations GetOperations "
        f"(lro_grpc._batch._done_listing: PAGE_WEIGHT {PAGE_WEIGHT}, OPERATION_WEIGHT {OPERATION_WEIGHT})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
