"""Sweeping against polling each operation: RPCs and client CPU per completed operation.

Run with ``make bench`` (or ``.venv/bin/python benchmarks/bench_sweep.py``).

The emulator runs in a process of its own. Every figure comes from this one run:

1. the floor: 100 coroutines calling GetOperation back to back on a bare
   ``grpc.aio`` stub (nothing added), client CPU per call;
2. for N = 10,000 and 100,000 (``--sizes``): N Financial Services operations
   spread over the eight documented locations, plus 20% more operations of
   "other callers" running in the same locations for the whole phase; ours
   finish uniformly 2 to 20 s after the wait starts (``--backlog``: that many
   finished operations of other callers in the same locations too, which
   every done listing carries). lro_grpc's
   ``as_completed`` (sweeping, its default) waits for them with a 1 s poll
   interval. Measured: client CPU, RPCs by method, time from each
   operation's ``end_time`` to its report (median, p99).
   Polling each operation on its own at the same freshness costs
   ``sum(floor(d / interval) + 1)`` GetOperations (``d``: each duration);
   its client CPU is that many calls at the floor's CPU per call. Phase 3
   checks that formula against a measured per-operation run;
3. per-operation polling (``batch_sweep=False``) of 1,000 such operations:
   measured calls against the formula;
5. Service Management: ``--sm`` SubmitConfigSource operations over four
   services, finishing 2 to 20 s after the wait starts, swept at the same
   interval: RPCs and client CPU per operation, p99 time to report;
4. correctness runs, 2,000 operations each, against an emulator that ignores
   list filters, rejects them, or leaves 20% of running operations out of
   every listing: each operation reported exactly once, with its outcome,
   none before its ``end_time``.

Targets: RPCs per completed operation <= 0.15 x polling each at the same
freshness; client CPU per completed operation <= 0.35 x the floor's; p99
time to report <= interval + 10%.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any

import grpc
from bench_waiter import EmulatorProcess, Meter, bare_loop, percentile

from lro_grpc._generated import financialservices_v1_pb2 as fs
from lro_grpc._generated import financialservices_v1_pb2_grpc as fs_grpc
from lro_grpc._generated import servicemanagement_v1_pb2 as sm
from lro_grpc._generated import servicemanagement_v1_pb2_grpc as sm_grpc
from lro_grpc.aio import AsyncOperationsClient
from lro_grpc.emulator import DURATION_HEADER, OUTCOME_HEADER
from lro_grpc.names import FINANCIAL_SERVICES_LOCATIONS
from lro_grpc.policies import PollPolicy

INTERVAL = 1.0
POLICY = PollPolicy(initial=INTERVAL, multiplier=1.0, maximum=INTERVAL, jitter=0.0)
OTHERS_SHARE = 0.2
CONCURRENCY = 100


def parent(project: str, index: int) -> str:
    return f"projects/{project}/locations/{FINANCIAL_SERVICES_LOCATIONS[index % len(FINANCIAL_SERVICES_LOCATIONS)]}"


async def create(
    target: str, project: str, durations: Sequence[float] | None, count: int, *, start_at: float | None = None
) -> list[str]:
    """Start ``count`` instances spread over the locations.

    Each one lasts ``durations[i]`` seconds after ``start_at`` (a ``time.time()``;
    ``None``: after its creation); without ``durations``, an hour. Every ninth fails.
    """
    semaphore = asyncio.Semaphore(CONCURRENCY)
    async with grpc.aio.insecure_channel(target) as channel:
        aml = fs_grpc.AMLStub(channel)

        async def one(index: int) -> str:
            async with semaphore:
                duration = 3600.0 if durations is None else durations[index]
                if start_at is not None:
                    duration = max(0.0, start_at + duration - time.time())
                metadata = [(DURATION_HEADER, f"{duration:.3f}")]
                if durations is not None and index % 9 == 0:
                    metadata.append((OUTCOME_HEADER, "fail"))
                request = fs.CreateInstanceRequest(parent=parent(project, index), instance_id=f"i-{index}")
                operation = await aml.CreateInstance(request, metadata=metadata)
            return str(operation.name)

        return list(await asyncio.gather(*(one(index) for index in range(count))))


SERVICES = tuple(f"svc-{index}.example.com" for index in range(4))


async def submit(target: str, durations: Sequence[float], start_at: float) -> list[str]:
    """One SubmitConfigSource per duration over the four services, each ending ``durations[i]`` after ``start_at``."""
    semaphore = asyncio.Semaphore(CONCURRENCY)
    async with grpc.aio.insecure_channel(target) as channel:
        manager = sm_grpc.ServiceManagerStub(channel)

        async def one(index: int) -> str:
            async with semaphore:
                request = sm.SubmitConfigSourceRequest(
                    service_name=SERVICES[index % len(SERVICES)],
                    config_source=sm.ConfigSource(
                        files=[sm.ConfigFile(file_path="api.yaml", file_contents=b"type: google.api.Service")]
                    ),
                )
                duration = max(0.0, start_at + durations[index] - time.time())
                metadata = [(DURATION_HEADER, f"{duration:.3f}")]
                if index % 9 == 0:
                    metadata.append((OUTCOME_HEADER, "fail"))
                operation = await manager.SubmitConfigSource(request, metadata=metadata)
            return str(operation.name)

        return list(await asyncio.gather(*(one(index) for index in range(len(durations)))))


def one_by_one_calls(durations: Sequence[float]) -> int:
    """GetOperations of polling each operation every INTERVAL s from the start until it is seen done."""
    return sum(int(duration // INTERVAL) + 1 for duration in durations)


def floor_cpu_per_call(emulator: EmulatorProcess, names: Sequence[str], calls: int) -> float:
    """Client CPU seconds per GetOperation of 100 coroutines calling back to back (``bench_waiter``'s floor)."""
    meter = Meter(emulator)
    made = asyncio.run(bare_loop(emulator.target, names, meter, calls=calls, concurrency=CONCURRENCY))
    return meter.cpu / made


class Waited:
    """What one wait measured."""

    def __init__(self) -> None:
        self.cpu = 0.0
        self.wall = 0.0
        self.calls: dict[str, int] = {}
        self.delays: list[float] = []
        self.reported: dict[str, Any] = {}
        self.early = 0  # reported before its end_time


async def wait_for(target: str, names: Sequence[str], *, sweep: bool, ends: dict[str, float] | None = None) -> Waited:
    """Wait for ``names``; an operation's end is its FS metadata's ``end_time``, or ``ends[name]`` (time.time())."""
    result = Waited()
    async with AsyncOperationsClient(target, batch_sweep=sweep, poll_policy=POLICY) as client:
        await client.get(names[0])  # connect before measuring
        gc.collect()
        cpu, wall = time.process_time(), time.perf_counter()
        async for operation in client.as_completed(names, timeout=600):
            now = time.time()
            if ends is not None:
                end_time = ends[operation.name]
            else:
                metadata = fs.OperationMetadata()  # unpack only what the measure needs
                operation.raw.metadata.Unpack(metadata)
                end_time = metadata.end_time.seconds + metadata.end_time.nanos / 1e9
            result.delays.append(now - end_time)
            result.early += now < end_time
            if operation.name in result.reported:
                raise RuntimeError(f"{operation.name} was reported twice")
            result.reported[operation.name] = operation
        result.cpu = time.process_time() - cpu
        result.wall = time.perf_counter() - wall
        result.calls = dict(client._batch_scheduler().calls)
    return result


def start_batch(
    emulator: EmulatorProcess, project: str, count: int, seed: int, backlog: int = 0
) -> tuple[list[str], list[float]]:
    """Other callers' operations first (their pace sets the start), then ours, timed from a common start.

    ``backlog``: that many of other callers' operations already finished, created first.
    """
    if backlog:
        asyncio.run(create(emulator.target, f"{project}-others", [0.0] * backlog, backlog))
    others = int(count * OTHERS_SHARE)
    started = time.perf_counter()
    asyncio.run(create(emulator.target, f"{project}-others", None, others))
    rate = others / max(1e-3, time.perf_counter() - started)
    start_at = time.time() + 1.5 * count / rate + 2.0
    rng = random.Random(seed)
    durations = [rng.uniform(2.0, 20.0) for _ in range(count)]
    names = asyncio.run(create(emulator.target, project, durations, count, start_at=start_at))
    late = time.time() - start_at
    if late > 0:
        print(f"  (creating took {late:.1f} s longer than planned: the earliest operations finish sooner)")
    else:
        time.sleep(-late)
    return names, durations


def check(waited: Waited, names: Sequence[str]) -> str:
    missing = set(names) - set(waited.reported)
    wrong = 0
    for index, name in enumerate(names):
        operation = waited.reported.get(name)
        if operation is None:
            continue
        failed = index % 9 == 0
        if not operation.done or (operation.error is not None) != failed:
            wrong += 1
    verdict = "ok" if not missing and not wrong and not waited.early else "FAILED"
    return (
        f"{verdict}: {len(waited.reported)} reported once, {len(missing)} missing, "
        f"{wrong} wrong outcome, {waited.early} early"
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000", help="operations per sweep phase (default: %(default)s)")
    parser.add_argument("--floor-calls", type=int, default=20_000, help="calls in the floor (default: %(default)s)")
    parser.add_argument("--per-operation", type=int, default=1000, help="operations in phase 3 (default: %(default)s)")
    parser.add_argument("--correctness", type=int, default=2000, help="operations per run in 4 (default: %(default)s)")
    parser.add_argument(
        "--backlog", type=int, default=20_000, help="finished operations of others in phase 2 (default: %(default)s)"
    )
    parser.add_argument("--sm", type=int, default=2000, help="operations in phase 5 (default: %(default)s)")
    parser.add_argument("--docs", default="docs/benchmarks.md", help="write the figures there ('' not to)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",") if size]
    emulator = EmulatorProcess()
    print(f"emulator at {emulator.target}", flush=True)
    lines: list[str] = []
    try:
        print("(1) the floor ...", flush=True)
        floor_names = asyncio.run(create(emulator.target, "floor", None, 1000))
        floors = [floor_cpu_per_call(emulator, floor_names, args.floor_calls) for _ in range(3)]
        floor = statistics.median(floors)
        lines.append(
            f"floor: {1e6 * floor:.0f} us client CPU per GetOperation "
            f"(median of 3 runs of {args.floor_calls}: {', '.join(f'{1e6 * value:.0f}' for value in floors)})"
        )

        print(f"(3) polling each of {args.per_operation} operations on its own ...", flush=True)
        names, durations = start_batch(emulator, "one-by-one", args.per_operation, seed=3)
        waited = asyncio.run(wait_for(emulator.target, names, sweep=False))
        expected = one_by_one_calls(durations)
        measured_calls = waited.calls["GetOperation"]
        lines.append(
            f"per operation, {args.per_operation}: {measured_calls} GetOperation measured, {expected} by the formula "
            f"({measured_calls / expected:.2f}x); {1e6 * waited.cpu / measured_calls:.0f} us CPU per call "
            f"({waited.cpu / measured_calls / floor:.2f}x the floor); "
            f"p99 report {percentile(waited.delays, 0.99):.2f} s"
        )

        for size in sizes:
            print(
                f"(2) sweeping {size} operations (+{int(size * OTHERS_SHARE)} of other callers running, "
                f"{args.backlog} finished) ...",
                flush=True,
            )
            names, durations = start_batch(emulator, f"sweep-{size}", size, seed=size, backlog=args.backlog)
            server_cpu = emulator.cpu_seconds()
            waited = asyncio.run(wait_for(emulator.target, names, sweep=True))
            server_share = (emulator.cpu_seconds() - server_cpu) / waited.wall
            calls = waited.calls["GetOperation"] + waited.calls["ListOperations"]
            one_by_one = one_by_one_calls(durations)
            cpu_per_op = waited.cpu / size
            floor_per_op = floor * one_by_one / size
            p50, p99 = statistics.median(waited.delays), percentile(waited.delays, 0.99)
            lines.append(
                f"sweep, {size}: {waited.calls['GetOperation']} GetOperation + {waited.calls['ListOperations']} "
                f"ListOperations = {calls / size:.3f} RPCs per operation against {one_by_one / size:.2f} one by one "
                f"-> {calls / one_by_one:.3f}x (target <= 0.15); client CPU {1e6 * cpu_per_op:.0f} us per operation "
                f"against {1e6 * floor_per_op:.0f} us at the floor -> {cpu_per_op / floor_per_op:.3f}x "
                f"(target <= 0.35); report median {p50:.2f} s, p99 {p99:.2f} s (target <= {1.1 * INTERVAL:.2f}); "
                f"{check(waited, names)}; wall {waited.wall:.0f} s, emulator busy {100 * server_share:.0f}% of a core"
            )
        if args.sm:
            print(f"(5) sweeping {args.sm} Service Management operations over {len(SERVICES)} services ...", flush=True)
            rng = random.Random(5)
            durations = [rng.uniform(2.0, 20.0) for _ in range(args.sm)]
            start_at = time.time() + 2.0 + args.sm / 500
            names = asyncio.run(submit(emulator.target, durations, start_at))
            time.sleep(max(0.0, start_at - time.time()))
            ends = {name: start_at + duration for name, duration in zip(names, durations, strict=True)}
            waited = asyncio.run(wait_for(emulator.target, names, sweep=True, ends=ends))
            calls = waited.calls["GetOperation"] + waited.calls["ListOperations"]
            lines.append(
                f"sweep, Service Management, {args.sm}: {waited.calls['GetOperation']} GetOperation + "
                f"{waited.calls['ListOperations']} ListOperations = {calls / args.sm:.3f} RPCs per operation; "
                f"client CPU {1e6 * waited.cpu / args.sm:.0f} us per operation; report median "
                f"{statistics.median(waited.delays):.2f} s, p99 {percentile(waited.delays, 0.99):.2f} s; "
                f"{check(waited, names)}"
            )
    finally:
        emulator.stop()

    for label, flags in (
        ("filters ignored", ("--list-filter", "ignore")),
        ("filters rejected", ("--list-filter", "reject")),
        ("20% left out", ("--list-omit-running", "0.2")),
    ):
        print(f"(4) correctness, {label} ...", flush=True)
        faulty = EmulatorProcess(*flags)
        try:
            names, _ = start_batch(faulty, "correctness", args.correctness, seed=4)
            waited = asyncio.run(wait_for(faulty.target, names, sweep=True))
            lines.append(
                f"correctness, {label}, {args.correctness}: {check(waited, names)}; "
                f"{waited.calls['GetOperation']} GetOperation + {waited.calls['ListOperations']} ListOperations"
            )
        finally:
            faulty.stop()

    print()
    for line in lines:
        print(line)
    if args.docs:
        write_docs(args.docs, argv, lines)
        print(f"written to {args.docs}")
    return 0


def write_docs(path: str, argv: Sequence[str] | None, lines: Sequence[str]) -> None:
    """Write this run's figures to ``path`` (Markdown), with the command and the machine."""
    command = " ".join(["benchmarks/bench_sweep.py", *(sys.argv[1:] if argv is None else argv)])
    text = [
        "# Sweep benchmark figures",
        "",
        f"Written by `{command}` (run by `make bench`) on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())},",
        f"{os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f} at the end; every figure is from this run.",
        "",
        *(f"- {line}" for line in lines),
        "",
    ]
    with open(path, "w", encoding="utf-8") as out:
        out.write("\n".join(text))


if __name__ == "__main__":
    sys.exit(main())
