"""How waiting scales with the number of operations: polling each, sweeping, and google-api-core threads.

Run with ``make bench`` (or ``.venv/bin/python benchmarks/bench_scaling.py``).

The emulator runs in a process of its own. For each N of ``--sizes``, N
Financial Services operations spread over the eight documented locations
(plus 20% more of "other callers" running in the same locations, as in
``bench_sweep.py``) finish uniformly 2 to ``--max-duration`` s after a common
start, and are waited for three ways, each with a 1 s poll interval:

* lro_grpc polling each operation on its own (``batch_sweep=False``);
* lro_grpc sweeping (its default: ``ListOperations`` per location, then one
  ``GetOperation`` for each operation seen done);
* google-api-core: ``operation.from_gapic(...).result()`` per operation, one
  thread each (api-core draws each sleep uniformly below the interval).

Measured per run: RPCs per completed operation (GetOperation + ListOperations),
the time from each operation's ``end_time`` to its report (median, p99), and
client CPU per completed operation (``time.process_time()``, all threads).

The results go to ``docs/benchmarks/scaling.json``, and the script draws
them (matplotlib, a ``dev`` extra) as ``docs/benchmarks/scaling-rpcs.png``,
``scaling-p99.png`` and ``scaling-cpu.png``, against N on log axes.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import itertools
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
from bench_sweep import INTERVAL, create, percentile, wait_for
from bench_waiter import EmulatorProcess
from google.longrunning import operations_pb2

from lro_grpc._generated import financialservices_v1_pb2 as fs

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "benchmarks"
STRATEGIES = ("per operation", "sweep", "google-api-core threads")
OTHERS_SHARE = 0.2


def start(emulator: EmulatorProcess, project: str, count: int, max_duration: float, seed: int) -> list[str]:
    """Other callers' operations, then ours, finishing 2 to ``max_duration`` s after a common start.

    The start is set from the pace at which the others' operations were created (the
    machine's load changes it), so that ours are all created, and the wait begun,
    before the first of them ends.
    """
    others = max(1, int(count * OTHERS_SHARE))
    began = time.perf_counter()
    asyncio.run(create(emulator.target, project, None, others, prefix="other"))  # in our locations
    rate = others / max(1e-3, time.perf_counter() - began)
    rng = random.Random(seed)
    planned = [rng.uniform(2.0, max_duration) for _ in range(count)]
    start_at = time.time() + 2.0 * count / rate + 2.0
    names = asyncio.run(create(emulator.target, project, planned, count, start_at=start_at))
    late = time.time() - start_at
    if late > 0:
        print(f"  (creating took {late:.1f} s longer than planned: the earliest operations end sooner)", flush=True)
    time.sleep(max(0.0, -late))
    return names


def end_time(any_metadata: Any) -> float:
    metadata = fs.OperationMetadata()
    any_metadata.Unpack(metadata)
    return float(metadata.end_time.seconds) + metadata.end_time.nanos / 1e9


def api_core_wait(target: str, names: Sequence[str]) -> dict[str, Any]:
    """One thread per operation, each calling ``result()``; RPCs counted, reports timed."""
    from google.api_core import operation as api_core_operation
    from google.api_core import operations_v1
    from google.api_core import retry as api_core_retry
    from google.api_core.future import polling
    from google.cloud import financialservices_v1

    calls = itertools.count()
    channel = grpc.insecure_channel(target)
    try:
        operations_client = operations_v1.OperationsClient(channel)
        get_operation = operations_client.get_operation
        get_operation(names[0])  # connect before measuring
        # What a service holds after the starting RPC: a running operation (its first poll fetches the rest).
        initial = [operations_pb2.Operation(name=name) for name in names]

        def counted(*args: Any, **kwargs: Any) -> Any:
            next(calls)
            return get_operation(*args, **kwargs)

        operations_client.get_operation = counted
        config = api_core_retry.Retry(
            predicate=polling.POLLING_PREDICATE, initial=INTERVAL, maximum=INTERVAL, multiplier=1.0, timeout=600
        )
        delays: list[float] = []

        def wait(operation: Any) -> None:
            future = api_core_operation.from_gapic(
                operation,
                operations_client,
                financialservices_v1.Instance,
                metadata_type=financialservices_v1.OperationMetadata,
                polling=config,
            )
            future.exception(timeout=600)  # failed operations are reports too
            delays.append(time.time() - end_time(future.operation.metadata))

        cpu = time.process_time()
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(initial)) as pool:
            list(pool.map(wait, initial))
        cpu = time.process_time() - cpu
    finally:
        channel.close()
    return {"calls": next(calls), "delays": delays, "cpu": cpu}


def run(args: argparse.Namespace) -> dict[str, Any]:
    sizes = [int(size) for size in args.sizes.split(",") if size]
    emulator = EmulatorProcess()
    runs: list[dict[str, Any]] = []
    try:
        for size in sizes:
            for strategy in STRATEGIES:
                if strategy == STRATEGIES[2] and size > args.api_core_max:
                    continue
                print(f"{strategy}, {size} operations ...", flush=True)
                project = f"scale-{size}-{STRATEGIES.index(strategy)}"
                names = start(emulator, project, size, args.max_duration, seed=size)
                if strategy == STRATEGIES[2]:
                    measured = api_core_wait(emulator.target, names)
                    calls, delays, cpu = measured["calls"], measured["delays"], measured["cpu"]
                else:
                    waited = asyncio.run(wait_for(emulator.target, names, sweep=strategy == STRATEGIES[1]))
                    calls = waited.calls.get("GetOperation", 0) + waited.calls.get("ListOperations", 0)
                    delays, cpu = waited.delays, waited.cpu
                runs.append(
                    {
                        "strategy": strategy,
                        "operations": size,
                        "rpcs_per_operation": calls / size,
                        "report_median_s": statistics.median(delays),
                        "report_p99_s": percentile(delays, 0.99),
                        "cpu_per_operation_us": 1e6 * cpu / size,
                    }
                )
                print(f"  {json.dumps(runs[-1])}", flush=True)
    finally:
        emulator.stop()
    return {
        "interval_s": INTERVAL,
        "max_duration_s": args.max_duration,
        "machine": f"{os.cpu_count()} CPUs, {platform.python_implementation()} {platform.python_version()}",
        "load_average_at_end": list(os.getloadavg()),
        "runs": runs,
    }


def plot(results: dict[str, Any], out: Path) -> list[Path]:
    """Draw the results as PNGs in ``out``; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    figures = [
        ("rpcs_per_operation", "RPCs per completed operation", "scaling-rpcs.png", True),
        ("report_p99_s", "p99 time from end to report (s)", "scaling-p99.png", False),
        ("cpu_per_operation_us", "client CPU per completed operation (µs)", "scaling-cpu.png", True),
    ]
    written = []
    for key, label, filename, log_y in figures:
        figure, axes = plt.subplots(figsize=(6.4, 4.0), dpi=100)
        for strategy, marker in zip(STRATEGIES, "os^", strict=True):
            points = [run for run in results["runs"] if run["strategy"] == strategy]
            if points:
                axes.plot([p["operations"] for p in points], [p[key] for p in points], marker=marker, label=strategy)
        axes.set_xscale("log")
        if log_y:
            axes.set_yscale("log")
        for axis in (axes.xaxis, axes.yaxis):
            axis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
        axes.set_xlabel("operations waited for")
        axes.set_ylabel(label)
        axes.set_title(f"{label}, {results['interval_s']:g} s poll interval")
        axes.grid(True, which="both", alpha=0.3)
        axes.legend()
        figure.tight_layout()
        path = out / filename
        figure.savefig(path)
        plt.close(figure)
        written.append(path)
    return written


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,300,1000,3000", help="operations per run (default: %(default)s)")
    parser.add_argument("--max-duration", type=float, default=10.0, help="longest operation, s (default: %(default)s)")
    parser.add_argument(
        "--api-core-max", type=int, default=3000, help="largest N for api-core's threads (default: %(default)s)"
    )
    parser.add_argument("--out", type=Path, default=OUT, help="where results and plots go (default: docs/benchmarks)")
    parser.add_argument("--plot-only", action="store_true", help="draw the plots of the results in --out again")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    results_path = args.out / "scaling.json"
    if args.plot_only:
        results = json.loads(results_path.read_text())
    else:
        results = run(args)
        results_path.write_text(json.dumps(results, indent=2) + "\n")
    for path in plot(results, args.out):
        print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
