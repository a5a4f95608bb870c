"""Sweeping against polling each operation: RPCs and client CPU per completed operation.

Run with ``make bench`` (or ``.venv/bin/python benchmarks/bench_sweep.py``).

The emulator runs in a process of its own. Every figure comes from this one run:

1. the floor: 100 coroutines calling GetOperation back to back on a bare
   ``grpc.aio`` stub (nothing added), client CPU per call;
2. for each N of ``--sizes`` (1,000 to 100,000), ``--rounds`` runs (3): N
   Financial Services operations spread over the eight documented locations
   of a project of the run's own, plus, in the same project and locations,
   20% more operations of "other callers" running for the whole phase and
   20% more of theirs already finished (``--backlog-share``: 20,000 at
   100,000, the issue's set-up; ``--backlog`` fixes the count instead),
   which every listing of finished operations carries. Ours finish uniformly 2 to 20 s after
   the wait starts; lro_grpc's ``as_completed`` (sweeping, its default)
   waits for them with a 1 s poll interval. Measured: client CPU, RPCs by
   method, time from each operation's ``end_time`` to its report (median,
   p99), min and median over the runs. Polling each operation on its own at
   the same freshness costs ``sum(floor(d / interval) + 1)`` GetOperations
   (``d``: each duration); its client CPU is that many calls at the floor's
   CPU per call. The results go to ``docs/benchmarks/sweep.json`` and are
   drawn against N (matplotlib, a ``dev`` extra) in
   ``docs/benchmarks/sweep-scaling.png``;
   Then ``--crowded`` (10,000) operations with the 100,000 run's backlog
   (20,000 finished operations of others, twice ours), no target: where old
   finished operations outnumber ours, a listing of finished operations
   costs the server more than a GetOperation per operation that left, and
   the cost model chooses the GetOperations;
3. per-operation polling (``batch_sweep=False``) of 1,000 such operations:
   measured calls against the formula;
5. Service Management: ``--sm`` SubmitConfigSource operations over four
   services, finishing 2 to 20 s after the wait starts, swept at the same
   interval, ``--rounds`` runs: RPCs and client CPU per operation, p99 time
   to report;
4. correctness runs, 2,000 operations each, against an emulator that ignores
   list filters, rejects them, or leaves 20% of running operations out of
   every listing: each operation reported exactly once, with its outcome,
   none before its ``end_time``.

Targets (issue 19), printed beside each figure: at 100,000, <= 0.15 RPCs per
completed operation and p99 time to report <= 3 s; at 10,000, <= 0.3 and
<= 1.1 s; at both, client CPU per completed operation <= 200 us (half the
~400 us measured before done listings). Service Management: <= 0.3 RPCs per
operation and <= 333 us client CPU per operation (half the 667-867 us
measured before, from its lower end).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
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
OUT = Path(__file__).resolve().parent.parent / "docs" / "benchmarks"
PLOT = "sweep-scaling.png"

TARGETS = {10_000: (0.3, 1.1), 100_000: (0.15, 3.0)}
CROWDED_BACKLOG = 20_000
"""Others' finished operations in the crowded run: the 100,000 run's backlog."""
"""Per N of phase 2: RPCs per completed operation, p99 seconds from end to report (issue 19)."""
CPU_TARGET_US = 200.0
"""Client CPU per completed operation at those N: 0.5x the ~400 us measured before done listings (issue 19)."""
SM_RPC_TARGET = 0.3
SM_CPU_TARGET_US = 333.0
"""Phase 5: 0.5x the 667-867 us per operation measured before done listings (issue 19), from its lower end."""


def parent(project: str, index: int) -> str:
    return f"projects/{project}/locations/{FINANCIAL_SERVICES_LOCATIONS[index % len(FINANCIAL_SERVICES_LOCATIONS)]}"


async def create(
    target: str,
    project: str,
    durations: Sequence[float] | None,
    count: int,
    *,
    start_at: float | None = None,
    prefix: str = "i",
) -> list[str]:
    """Start ``count`` instances spread over the locations (instance ids ``<prefix>-<i>``).

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
                request = fs.CreateInstanceRequest(parent=parent(project, index), instance_id=f"{prefix}-{index}")
                operation = await aml.CreateInstance(request, metadata=metadata)
            return str(operation.name)

        return list(await asyncio.gather(*(one(index) for index in range(count))))


SERVICES = tuple(f"svc-{index}.example.com" for index in range(4))
"""The four services of phase 5 (each run prefixes them with its own name: runs do not see each other's)."""


async def submit(target: str, durations: Sequence[float], start_at: float, run: str = "") -> list[str]:
    """One SubmitConfigSource per duration over the four services, each ending ``durations[i]`` after ``start_at``."""
    semaphore = asyncio.Semaphore(CONCURRENCY)
    async with grpc.aio.insecure_channel(target) as channel:
        manager = sm_grpc.ServiceManagerStub(channel)

        async def one(index: int) -> str:
            async with semaphore:
                request = sm.SubmitConfigSourceRequest(
                    service_name=run + SERVICES[index % len(SERVICES)],
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


LATE: list[float] = []
"""How late each batch's common start was (0: on time), in the order they were started."""


def start_batch(
    emulator: EmulatorProcess, project: str, count: int, seed: int, backlog: int = 0
) -> tuple[list[str], list[float]]:
    """Other callers' operations first (their pace sets the start), then ours, timed from a common start.

    Other callers' operations are in the same project and locations as ours, so
    every listing of ours carries them. ``backlog``: that many of them already
    finished, created first.
    """
    others = int(count * OTHERS_SHARE)
    started = time.perf_counter()
    if backlog:
        asyncio.run(create(emulator.target, project, [0.0] * backlog, backlog, prefix="old"))
    asyncio.run(create(emulator.target, project, None, others, prefix="other"))
    rate = (backlog + others) / max(1e-3, time.perf_counter() - started)
    # The machine's load changes the pace while ours are created: plan for a third of it.
    start_at = time.time() + 3.0 * count / rate + 2.0
    rng = random.Random(seed)
    durations = [rng.uniform(2.0, 20.0) for _ in range(count)]
    names = asyncio.run(create(emulator.target, project, durations, count, start_at=start_at))
    late = time.time() - start_at
    LATE.append(max(0.0, late))
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
    parser.add_argument(
        "--sizes", default="1000,3000,10000,30000,100000", help="operations per sweep phase (default: %(default)s)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="runs of each sweep and SM phase (default: %(default)s)")
    parser.add_argument("--floor-calls", type=int, default=20_000, help="calls in the floor (default: %(default)s)")
    parser.add_argument("--per-operation", type=int, default=1000, help="operations in phase 3 (default: %(default)s)")
    parser.add_argument("--correctness", type=int, default=2000, help="operations per run in 4 (default: %(default)s)")
    parser.add_argument(
        "--backlog-share",
        type=float,
        default=0.2,
        help="others' finished operations per run of 2, as a share of N (default: %(default)s)",
    )
    parser.add_argument("--backlog", type=int, default=None, help="a fixed count of them instead of the share")
    parser.add_argument(
        "--crowded", type=int, default=10_000, help="N of the run with 20,000 others' finished (0: none; %(default)s)"
    )
    parser.add_argument("--sm", type=int, default=2000, help="operations in phase 5 (default: %(default)s)")
    parser.add_argument("--out", default=str(OUT), help="where sweep.json and the plot go ('' not to write)")
    parser.add_argument("--docs", default="docs/benchmarks.md", help="write the figures there ('' not to)")
    return parser.parse_args(argv)


def load() -> str:
    return f"load {os.getloadavg()[0]:.1f}"


def backlog_of(args: argparse.Namespace, size: int) -> int:
    """Others' finished operations in a run of phase 2 with ``size`` of ours."""
    return int(args.backlog if args.backlog is not None else size * args.backlog_share)


def sweep_runs(
    emulator: EmulatorProcess, size: int, rounds: int, backlog: int, floor: float, tag: str = "sweep"
) -> list[dict[str, Any]]:
    """``rounds`` runs of phase 2 at one size, each printed as it ends; ``tag`` begins their projects' names."""
    runs = []
    for round_index in range(rounds):
        print(
            f"(2) sweeping {size} operations (+{int(size * OTHERS_SHARE)} of other callers running, "
            f"{backlog} finished, in the same locations), run {round_index + 1} of {rounds} ...",
            flush=True,
        )
        runs.append(sweep_run(emulator, f"{tag}-{size}-{round_index}", size, round_index, backlog, floor))
        print(f"  {json.dumps(runs[-1])}", flush=True)
    return runs


def sweep_run(
    emulator: EmulatorProcess, project: str, size: int, round_index: int, backlog: int, floor: float
) -> dict[str, Any]:
    """One run of phase 2: ``size`` operations swept in ``project`` (a new one); its figures."""
    names, durations = start_batch(emulator, project, size, seed=size + round_index, backlog=backlog)
    server_cpu = emulator.cpu_seconds()
    late = LATE[-1]
    waited = asyncio.run(wait_for(emulator.target, names, sweep=True))
    one_by_one = one_by_one_calls(durations)
    verdict = check(waited, names)
    return {
        "operations": size,
        "backlog": backlog,
        "get_operation": waited.calls["GetOperation"],
        "list_operations": waited.calls["ListOperations"],
        "rpcs_per_operation": (waited.calls["GetOperation"] + waited.calls["ListOperations"]) / size,
        "one_by_one_per_operation": one_by_one / size,
        "cpu_per_operation_us": 1e6 * waited.cpu / size,
        "floor_per_operation_us": 1e6 * floor * one_by_one / size,
        "report_median_s": statistics.median(waited.delays),
        "report_p99_s": percentile(waited.delays, 0.99),
        "wall_s": waited.wall,
        "emulator_busy": (emulator.cpu_seconds() - server_cpu) / waited.wall,
        "ok": verdict.startswith("ok"),
        "late_s": late,
        "verdict": verdict,
        "load": os.getloadavg()[0],
    }


def spread_of(runs: Sequence[dict[str, Any]], key: str, digits: int = 3, unit: str = "") -> str:
    values = [run[key] for run in runs]
    return f"min {min(values):.{digits}f}{unit} / median {statistics.median(values):.{digits}f}{unit}"


def target_text(value: float, target: float | None) -> str:
    if target is None:
        return ""
    return f" (target <= {target:g}: {'met' if value <= target else 'NOT met'})"


def sweep_line(size: int, runs: Sequence[dict[str, Any]], *, target: bool = True) -> str:
    """The figures of phase 2 at one size, min and median over its runs, against the targets (if ``target``)."""
    rpc_target, p99_target = TARGETS.get(size, (None, None)) if target else (None, None)
    median = statistics.median
    middle = sorted(runs, key=lambda run: run["rpcs_per_operation"])[len(runs) // 2]
    cpu = median(run["cpu_per_operation_us"] for run in runs)
    floor_ratio = median(run["cpu_per_operation_us"] / run["floor_per_operation_us"] for run in runs)
    return (
        f"sweep, {size} with {runs[0]['backlog']:,} others' finished ({len(runs)} runs): RPCs per completed operation "
        f"{spread_of(runs, 'rpcs_per_operation')}"
        f"{target_text(median(run['rpcs_per_operation'] for run in runs), rpc_target)} "
        f"[median run: {middle['get_operation']} GetOperation + {middle['list_operations']} ListOperations; "
        f"{middle['rpcs_per_operation'] / middle['one_by_one_per_operation']:.3f}x polling each at the same "
        f"freshness]; report p99 {spread_of(runs, 'report_p99_s', 2, ' s')}"
        f"{target_text(median(run['report_p99_s'] for run in runs), p99_target)}, median "
        f"{median(run['report_median_s'] for run in runs):.2f} s; client CPU per completed operation "
        f"{spread_of(runs, 'cpu_per_operation_us', 0, ' us')}"
        f"{target_text(cpu, CPU_TARGET_US if target and size in TARGETS else None)}, {floor_ratio:.3f}x the floor's "
        f"GetOperations one by one; {'; '.join(sorted({run['verdict'] for run in runs}))};{late_text(runs)} wall "
        f"{median(run['wall_s'] for run in runs):.0f} s, emulator busy "
        f"{100 * median(run['emulator_busy'] for run in runs):.0f}% of a core, load "
        f"{min(run['load'] for run in runs):.1f}-{max(run['load'] for run in runs):.1f}"
    )


def late_text(runs: Sequence[dict[str, Any]]) -> str:
    late = [run["late_s"] for run in runs if run["late_s"] > 0.5]
    if not late:
        return ""
    return (
        f" {len(late)} of {len(runs)} runs started late (by up to {max(late):.0f} s: operations that ended "
        "before the wait began count from their end, and were listed done at once);"
    )


def sm_run(emulator: EmulatorProcess, count: int, round_index: int) -> dict[str, Any]:
    """One run of phase 5: ``count`` SubmitConfigSource operations swept; its figures."""
    rng = random.Random(5 + round_index)
    durations = [rng.uniform(2.0, 20.0) for _ in range(count)]
    start_at = time.time() + 2.0 + count / 500
    names = asyncio.run(submit(emulator.target, durations, start_at, run=f"run{round_index}-"))
    time.sleep(max(0.0, start_at - time.time()))
    ends = {name: start_at + duration for name, duration in zip(names, durations, strict=True)}
    waited = asyncio.run(wait_for(emulator.target, names, sweep=True, ends=ends))
    return {
        "get_operation": waited.calls["GetOperation"],
        "list_operations": waited.calls["ListOperations"],
        "rpcs_per_operation": (waited.calls["GetOperation"] + waited.calls["ListOperations"]) / count,
        "cpu_per_operation_us": 1e6 * waited.cpu / count,
        "report_median_s": statistics.median(waited.delays),
        "report_p99_s": percentile(waited.delays, 0.99),
        "verdict": check(waited, names),
        "load": os.getloadavg()[0],
    }


def sm_line(count: int, runs: Sequence[dict[str, Any]]) -> str:
    median = statistics.median
    middle = sorted(runs, key=lambda run: run["rpcs_per_operation"])[len(runs) // 2]
    return (
        f"sweep, Service Management, {count} over {len(SERVICES)} services ({len(runs)} runs): RPCs per operation "
        f"{spread_of(runs, 'rpcs_per_operation')}"
        f"{target_text(median(run['rpcs_per_operation'] for run in runs), SM_RPC_TARGET)} "
        f"[median run: {middle['get_operation']} GetOperation + {middle['list_operations']} ListOperations]; "
        f"client CPU per operation {spread_of(runs, 'cpu_per_operation_us', 0, ' us')}"
        f"{target_text(median(run['cpu_per_operation_us'] for run in runs), SM_CPU_TARGET_US)}; report p99 "
        f"{spread_of(runs, 'report_p99_s', 2, ' s')}, median {median(run['report_median_s'] for run in runs):.2f} s; "
        f"{'; '.join(sorted({run['verdict'] for run in runs}))}; load "
        f"{min(run['load'] for run in runs):.1f}-{max(run['load'] for run in runs):.1f}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",") if size]
    emulator = EmulatorProcess()
    print(f"emulator at {emulator.target}; {load()}", flush=True)
    lines: list[str] = []
    sweeps: dict[int, list[dict[str, Any]]] = {}
    try:
        print("(1) the floor ...", flush=True)
        floor_names = asyncio.run(create(emulator.target, "floor", None, 1000))
        floors = [floor_cpu_per_call(emulator, floor_names, args.floor_calls) for _ in range(3)]
        floor = statistics.median(floors)
        lines.append(
            f"floor: {1e6 * floor:.0f} us client CPU per GetOperation "
            f"(median of 3 runs of {args.floor_calls}: {', '.join(f'{1e6 * value:.0f}' for value in floors)}); {load()}"
        )

        if args.per_operation:
            print(f"(3) polling each of {args.per_operation} operations on its own ...", flush=True)
            names, durations = start_batch(emulator, "one-by-one", args.per_operation, seed=3)
            waited = asyncio.run(wait_for(emulator.target, names, sweep=False))
            expected = one_by_one_calls(durations)
            measured_calls = waited.calls["GetOperation"]
            lines.append(
                f"per operation, {args.per_operation}: {measured_calls} GetOperation measured, {expected} by the "
                f"formula ({measured_calls / expected:.2f}x); {1e6 * waited.cpu / measured_calls:.0f} us CPU per call "
                f"({waited.cpu / measured_calls / floor:.2f}x the floor); "
                f"p99 report {percentile(waited.delays, 0.99):.2f} s; {load()}"
            )

        for size in sizes:
            sweeps[size] = sweep_runs(emulator, size, args.rounds, backlog_of(args, size), floor)
            lines.append(sweep_line(size, sweeps[size]))
        if args.crowded:
            crowded = sweep_runs(emulator, args.crowded, args.rounds, CROWDED_BACKLOG, floor, tag="crowded")
            lines.append(f"crowded: {sweep_line(args.crowded, crowded, target=False)}")
        if args.sm:
            sm_runs = []
            for round_index in range(args.rounds):
                print(
                    f"(5) sweeping {args.sm} Service Management operations over {len(SERVICES)} services, "
                    f"run {round_index + 1} of {args.rounds} ...",
                    flush=True,
                )
                sm_runs.append(sm_run(emulator, args.sm, round_index))
                print(f"  {json.dumps(sm_runs[-1])}", flush=True)
            lines.append(sm_line(args.sm, sm_runs))
    finally:
        emulator.stop()

    for label, flags in (
        ("filters ignored", ("--list-filter", "ignore")),
        ("filters rejected", ("--list-filter", "reject")),
        ("20% left out", ("--list-omit-running", "0.2")),
    ):
        if not args.correctness:
            break
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
    if args.out and sweeps:
        out = Path(args.out)  # not type=Path: Path("") is ".", and '' is to write nothing
        out.mkdir(parents=True, exist_ok=True)
        results = {"interval_s": INTERVAL, "backlog_share": args.backlog_share, "targets": TARGETS, "runs": sweeps}
        (out / "sweep.json").write_text(json.dumps(results, indent=2) + "\n")
        if len(sweeps) > 1:
            print(f"wrote {plot(sweeps, out / PLOT)}")
    if args.docs:
        write_docs(args.docs, argv, lines)
        print(f"written to {args.docs}")
    return 0


def plot(sweeps: dict[int, list[dict[str, Any]]], path: Path) -> Path:
    """Draw RPCs per completed operation and p99 time to report against N (median, min to max) into ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    sizes = sorted(sweeps)
    figure, panels = plt.subplots(1, 2, figsize=(11.0, 4.2), dpi=100)
    for axes, key, label, target_index in (
        (panels[0], "rpcs_per_operation", "RPCs per completed operation", 0),
        (panels[1], "report_p99_s", "p99 time from end to report (s)", 1),
    ):
        medians = [statistics.median(run[key] for run in sweeps[size]) for size in sizes]
        low = [median - min(run[key] for run in sweeps[size]) for size, median in zip(sizes, medians, strict=True)]
        high = [max(run[key] for run in sweeps[size]) - median for size, median in zip(sizes, medians, strict=True)]
        axes.errorbar(sizes, medians, yerr=[low, high], marker="o", capsize=3, label="sweep (median, min to max)")
        targeted = [size for size in sizes if size in TARGETS]
        if targeted:
            axes.plot(
                targeted, [TARGETS[size][target_index] for size in targeted], "rv", linestyle="none", label="target"
            )
        axes.set_xscale("log")
        axes.set_xticks(sizes)
        axes.xaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:,.0f}"))
        axes.xaxis.set_minor_formatter(ticker.NullFormatter())
        axes.set_ylim(bottom=0)
        axes.set_xlabel("operations waited for")
        axes.set_ylabel(label)
        axes.grid(True, which="both", alpha=0.3)
        axes.legend()
    loads = [run["load"] for runs in sweeps.values() for run in runs]
    figure.suptitle(
        f"Sweeping, {INTERVAL:g} s poll interval: +{OTHERS_SHARE:.0%} others' running and "
        f"{describe_backlog(sweeps)} others' finished operations in the same locations\n(load average "
        f"{min(loads):.1f} to {max(loads):.1f} on {os.cpu_count()} CPUs at the runs' ends)"
    )
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


def describe_backlog(sweeps: dict[int, list[dict[str, Any]]]) -> str:
    """The backlog of the plotted runs: a share of N when it is one, else the counts."""
    shares = {run["backlog"] / size for size, runs in sweeps.items() for run in runs}
    if len(shares) == 1:
        return f"+{shares.pop():.0%}"
    return ", ".join(sorted({f"{run['backlog']:,}" for runs in sweeps.values() for run in runs}))


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
