"""What one ``get`` costs the client above the generated stub, and what ``import lro_grpc`` costs above gRPC.

Run with ``make bench`` (or ``.venv/bin/python benchmarks/bench_single_call.py``).

The emulator runs in a process of its own (``python -m lro_grpc.emulator``), with
``--names`` operations started by ``AML.CreateInstance`` that keep running for the
whole run (so every answer carries metadata, as a poll's does). Four loops call
GetOperation on those names in turn, one call at a time, back to back, each
measuring this process's CPU time (``time.process_time()``, all threads) per call:

a. the raw synchronous stub: ``OperationsStub.GetOperation(request)`` on a
   ``grpc.insecure_channel``, requests built beforehand, nothing added;
b. ``OperationsClient.get(name)`` (name check, headers, the first attempt on the stub, handle;
   the retry plan takes over only from a failed attempt);
c. the raw ``grpc.aio`` stub, as in a, awaited;
d. ``AsyncOperationsClient.get(name)``, awaited;

and, to show what any client of these APIs pays on the wire, a' and c': the
raw stubs sending what the clients send with each call, the two headers
(``x-goog-request-params``, ``x-goog-api-client``) and the per-RPC timeout.
The clients' own channels turn gRPC's retry layer off (``grpc.enable_retries``
0): a0 and c0 are the bare stubs, as in a and c, on such a channel, and a0' and
c0' are those sending the headers and timeout too. So b/a0 and d/c0 are what the
clients cost above the bare stub on a channel like theirs, a0'/a0 and c0'/c0
the part of that any client of these APIs pays (the floor), and b/a0' and
d/c0' what the clients add above that floor.

Each loop runs ``--calls`` calls per round after a warm-up, in ``--blocks``
blocks: a and b alternate block by block (as do c and d), the first of the
pair swapping every block, so load on the shared machine falls on both alike. Printed: the ratios b/a and
d/c per round, their minimum and median (and the other ratios above); then ``import lro_grpc`` against
``import grpc`` (the ``imports`` figure of ``import_time.py``: the minimum over
fresh interpreters of the top-level imports' cumulative ``-X importtime``).

Targets: b/a <= 1.10, d/c <= 1.08, import lro_grpc / import grpc <= 1.6.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc
from bench_waiter import EmulatorProcess, create_operations
from google.longrunning import operations_pb2
from import_time import measure as measure_imports

from lro_grpc import DEFAULT_RPC_TIMEOUT, AsyncOperationsClient, OperationsClient
from lro_grpc._core import request_metadata
from lro_grpc._generated import operations_pb2_grpc

TARGETS = {"b/a": 1.10, "d/c": 1.08, "import": 1.6}
NO_GRPC_RETRIES = [("grpc.enable_retries", 0)]
"""The channel option the clients' own channels set (lro_grpc/_channels.py)."""


def cpu_seconds(calls: int, first: int, call: Callable[[int], object]) -> float:
    """Client CPU seconds of ``call(index)`` for ``calls`` indexes from ``first``."""
    started = time.process_time()
    for index in range(first, first + calls):
        call(index)
    return time.process_time() - started


async def async_cpu_seconds(calls: int, first: int, call: Callable[[int], Awaitable[object]]) -> float:
    """Client CPU seconds of awaiting ``call(index)`` for ``calls`` indexes from ``first``."""
    started = time.process_time()
    for index in range(first, first + calls):
        await call(index)
    return time.process_time() - started


def block_order(round_index: int, block: int, keys: tuple[str, ...]) -> tuple[str, ...]:
    """The order of the loops in this block: reversed every other block, starting otherwise every other round."""
    return keys if (round_index + block) % 2 == 0 else keys[::-1]


def sync_rounds(target: str, names: Sequence[str], args: argparse.Namespace) -> dict[str, list[float]]:
    """Phases a and b: per round, CPU seconds per call of each, in alternating blocks."""
    requests = [operations_pb2.GetOperationRequest(name=name) for name in names]
    count, size = len(names), args.calls // args.blocks
    headers = [request_metadata(name) for name in names]
    results: dict[str, list[float]] = {"a": [], "a0": [], "a'": [], "a0'": [], "b": []}
    with (
        grpc.insecure_channel(target) as channel,
        grpc.insecure_channel(target, options=NO_GRPC_RETRIES) as bare_channel,
        OperationsClient(target) as client,
    ):
        get_operation = operations_pb2_grpc.OperationsStub(channel).GetOperation
        bare_get_operation = operations_pb2_grpc.OperationsStub(bare_channel).GetOperation
        phases: dict[str, Callable[[int], object]] = {
            "a": lambda index: get_operation(requests[index % count]),
            "a0": lambda index: bare_get_operation(requests[index % count]),
            "a'": lambda index: get_operation(
                requests[index % count], timeout=DEFAULT_RPC_TIMEOUT, metadata=headers[index % count]
            ),
            "a0'": lambda index: bare_get_operation(
                requests[index % count], timeout=DEFAULT_RPC_TIMEOUT, metadata=headers[index % count]
            ),
            "b": lambda index: client.get(names[index % count]),
        }
        for phase in phases.values():  # connect and warm up before measuring
            cpu_seconds(500, 0, phase)
        for round_index in range(args.rounds):
            spent = dict.fromkeys(phases, 0.0)
            gc.collect()
            for block in range(args.blocks):
                for key in block_order(round_index, block, tuple(phases)):
                    spent[key] += cpu_seconds(size, block * size, phases[key])
            for key, seconds in spent.items():
                results[key].append(seconds / (size * args.blocks))
    return results


async def async_rounds(target: str, names: Sequence[str], args: argparse.Namespace) -> dict[str, list[float]]:
    """Phases c and d: per round, CPU seconds per call of each, in alternating blocks."""
    requests = [operations_pb2.GetOperationRequest(name=name) for name in names]
    count, size = len(names), args.calls // args.blocks
    headers = [request_metadata(name) for name in names]
    results: dict[str, list[float]] = {"c": [], "c0": [], "c'": [], "c0'": [], "d": []}
    async with (
        grpc.aio.insecure_channel(target) as channel,
        grpc.aio.insecure_channel(target, options=NO_GRPC_RETRIES) as bare_channel,
        AsyncOperationsClient(target) as client,
    ):
        get_operation = operations_pb2_grpc.OperationsStub(channel).GetOperation
        bare_get_operation = operations_pb2_grpc.OperationsStub(bare_channel).GetOperation

        async def raw(index: int) -> Any:
            return await get_operation(requests[index % count])

        async def raw_without_retries(index: int) -> Any:
            return await bare_get_operation(requests[index % count])

        async def raw_with_headers(index: int) -> Any:
            return await get_operation(
                requests[index % count], timeout=DEFAULT_RPC_TIMEOUT, metadata=headers[index % count]
            )

        async def raw_without_retries_with_headers(index: int) -> Any:
            return await bare_get_operation(
                requests[index % count], timeout=DEFAULT_RPC_TIMEOUT, metadata=headers[index % count]
            )

        async def wrapped(index: int) -> Any:
            return await client.get(names[index % count])

        phases = {
            "c": raw,
            "c0": raw_without_retries,
            "c'": raw_with_headers,
            "c0'": raw_without_retries_with_headers,
            "d": wrapped,
        }
        for phase in phases.values():
            await async_cpu_seconds(500, 0, phase)
        for round_index in range(args.rounds):
            spent = dict.fromkeys(phases, 0.0)
            gc.collect()
            for block in range(args.blocks):
                for key in block_order(round_index, block, tuple(phases)):
                    spent[key] += await async_cpu_seconds(size, block * size, phases[key])
            for key, seconds in spent.items():
                results[key].append(seconds / (size * args.blocks))
    return results


def ratio_line(label: str, tops: Sequence[float], bottoms: Sequence[float], target: float | None) -> str:
    each = [top / bottom for top, bottom in zip(tops, bottoms, strict=True)]
    listed = ", ".join(f"{value:.3f}" for value in each)
    wanted = f"  target <= {target:.2f}" if target is not None else ""
    return f"{label}: min {min(each):.3f}, median {statistics.median(each):.3f}{wanted}; rounds: {listed}"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls per loop and round (default: %(default)s)")
    parser.add_argument("--blocks", type=int, default=10, help="alternations per round (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=7, help="rounds (default: %(default)s)")
    parser.add_argument("--names", type=int, default=16, help="operations called in turn (default: %(default)s)")
    parser.add_argument("--import-runs", type=int, default=20, help="fresh interpreters per import (default: 20)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    emulator = EmulatorProcess()
    try:
        created = asyncio.run(create_operations(emulator.target, [3600.0] * args.names, args.names))
        names = [operation.name for operation in created]
        print(
            f"emulator at {emulator.target}; {args.calls} calls per loop and round "
            f"in {args.blocks} blocks, {args.rounds} rounds",
            flush=True,
        )
        sync = sync_rounds(emulator.target, names, args)
        aio = asyncio.run(async_rounds(emulator.target, names, args))
    finally:
        emulator.stop()
    print(f"import time, minimum of {args.import_runs} fresh interpreters each ...", flush=True)
    imports = measure_imports([sys.executable], ["import grpc", "import lro_grpc"], args.import_runs)[sys.executable]

    labels = {
        "a": "a. raw sync stub",
        "a0": "a0. raw sync stub, gRPC retries off",
        "a'": "a'. raw sync stub, headers, timeout",
        "a0'": "a0'. a0 with headers, timeout",
        "b": "b. OperationsClient.get",
        "c": "c. raw grpc.aio stub",
        "c0": "c0. raw aio stub, gRPC retries off",
        "c'": "c'. raw aio stub, headers, timeout",
        "c0'": "c0'. c0 with headers, timeout",
        "d": "d. AsyncOperationsClient.get",
    }
    print()
    print(f"{'client CPU per call':<40}{'min':>10}{'median':>10}")
    for key, values in {**sync, **aio}.items():
        print(f"{labels[key]:<40}{min(values) * 1e6:>7.1f} us{statistics.median(values) * 1e6:>7.1f} us")
    print()
    print(ratio_line("sync get / raw stub (b/a)   ", sync["b"], sync["a"], TARGETS["b/a"]))
    print(ratio_line("async get / raw stub (d/c)  ", aio["d"], aio["c"], TARGETS["d/c"]))
    print("against the bare stub on a channel with gRPC's retry layer off, as the clients' channels are:")
    print(ratio_line("sync get / that (b/a0)      ", sync["b"], sync["a0"], None))
    print(ratio_line("async get / that (d/c0)     ", aio["d"], aio["c0"], None))
    print("what the wire asks of any client (the two headers and a deadline), on each channel:")
    print(ratio_line("raw stub + headers (a'/a)   ", sync["a'"], sync["a"], None))
    print(ratio_line("raw aio + headers (c'/c)    ", aio["c'"], aio["c"], None))
    print(ratio_line("bare + headers (a0'/a0)     ", sync["a0'"], sync["a0"], None))
    print(ratio_line("bare aio + headers (c0'/c0) ", aio["c0'"], aio["c0"], None))
    print("what the clients add above that floor, on a channel like theirs:")
    print(ratio_line("sync get / that (b/a0')     ", sync["b"], sync["a0'"], None))
    print(ratio_line("async get / that (d/c0')    ", aio["d"], aio["c0'"], None))
    grpc_seconds, lro_seconds = imports["import grpc"][0], imports["import lro_grpc"][0]
    print(
        f"import lro_grpc / import grpc: {lro_seconds / grpc_seconds:.2f} "
        f"({lro_seconds * 1000:.1f} ms / {grpc_seconds * 1000:.1f} ms)  target <= {TARGETS['import']:.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
