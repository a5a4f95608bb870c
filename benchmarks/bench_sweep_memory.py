"""Memory per pending operation while sweeping: the RSS slope between two numbers of pending operations.

Run with ``make bench`` (or ``.venv/bin/python benchmarks/bench_sweep_memory.py``).

The emulator runs in a process of its own and holds the largest of
``--pending`` (default 20,000 and 60,000) Financial Services operations,
running for an hour, spread over the eight documented locations. For each
number N, a fresh process builds the first N names, connects, notes its
resident set size (``VmRSS``), then waits for the N operations with
``as_completed`` (sweeping, its default; 1 hour poll interval) until every one
of them has been seen in a complete listing of its location (each keeps its
last seen state, as a swept operation does between rounds), and notes its RSS
again. ``--rounds`` processes per N (default 3); min and median.

The figure is the slope: (RSS grown at the largest N - RSS grown at the
smallest) / (difference in N), which leaves out what does not grow with N
(the client, the channel, a page being read). The names are the caller's and
are counted apart. Target: <= 800 B per pending operation (issue 19).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence

from bench_sweep import create
from bench_waiter import EmulatorProcess, rss_bytes

from lro_grpc.aio import AsyncOperationsClient
from lro_grpc.policies import PollPolicy

PROJECT = "memory"
TARGET_BYTES = 800.0
HOUR = PollPolicy(initial=3600, multiplier=1.0, maximum=3600, jitter=0.0)


async def child(target: str, names_file: str, pending: int) -> dict[str, float]:
    """In a fresh process: RSS before and after ``pending`` operations are tracked and listed once."""
    gc.collect()
    before_names = rss_bytes()
    with open(names_file, encoding="utf-8") as lines:
        names = [line.rstrip("\n") for _, line in zip(range(pending), lines, strict=False)]
    gc.collect()
    with_names = rss_bytes()
    async with AsyncOperationsClient(target, poll_policy=HOUR) as client:
        await client.get(names[0])  # connected, and the client's own state made
        gc.collect()
        before = rss_bytes()
        iterator = client.as_completed(names, timeout=3600).__aiter__()
        waiting = asyncio.ensure_future(iterator.__anext__())
        scheduler = client._batch_scheduler()
        sweeper = scheduler._sweeper
        assert sweeper is not None, "sweeping is off"
        started = time.monotonic()
        while True:
            await asyncio.sleep(0.2)
            scopes = list(sweeper._scopes.values())
            tracked = sum(len(scope.table) for scope in scopes)
            seen = sum(1 for scope in scopes for entry in scope.table if entry.last_seen is not None)
            if tracked == pending and seen == pending and not any(scope.in_round for scope in scopes):
                break
            if time.monotonic() - started > 600:
                raise RuntimeError(f"after 600 s, {seen} of {pending} operations seen in a listing")
        gc.collect()
        after = rss_bytes()
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        await iterator.aclose()  # type: ignore[attr-defined]
    return {
        "pending": pending,
        "names_bytes": with_names - before_names,
        "grown_bytes": after - before,
        "listing_s": time.monotonic() - started,
    }


def measure(target: str, names_file: str, pending: int) -> dict[str, float]:
    output = subprocess.run(
        [sys.executable, __file__, "--child", target, names_file, str(pending)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, float] = json.loads(output.strip().splitlines()[-1])
    return result


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pending", default="20000,60000", help="numbers of pending operations (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=3, help="processes per number (default: %(default)s)")
    parser.add_argument("--child", nargs=3, metavar=("TARGET", "NAMES", "N"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        target, names_file, pending = args.child
        print(json.dumps(asyncio.run(child(target, names_file, int(pending)))))
        return 0
    counts = sorted(int(count) for count in args.pending.split(",") if count)
    emulator = EmulatorProcess()
    names_file = f"/tmp/bench_sweep_memory_{os.getpid()}.txt"
    results: dict[int, list[dict[str, float]]] = {}
    try:
        print(f"starting {counts[-1]} operations (an hour long) ...; load {os.getloadavg()[0]:.1f}", flush=True)
        names = asyncio.run(create(emulator.target, PROJECT, None, counts[-1]))
        with open(names_file, "w", encoding="utf-8") as out:
            out.write("\n".join(names) + "\n")
        for round_index in range(args.rounds):
            for count in counts:
                print(f"{count} pending, run {round_index + 1} of {args.rounds} ...", flush=True)
                results.setdefault(count, []).append(measure(emulator.target, names_file, count))
                print(f"  {json.dumps(results[count][-1])}", flush=True)
    finally:
        emulator.stop()
        with contextlib.suppress(OSError):
            os.remove(names_file)
    low, high = counts[0], counts[-1]
    slopes = [
        (big["grown_bytes"] - small["grown_bytes"]) / (high - low)
        for small, big in zip(results[low], results[high], strict=True)
    ]
    per_op = {count: [run["grown_bytes"] / count for run in runs] for count, runs in results.items()}
    names_per_op = statistics.median(run["names_bytes"] / high for run in results[high])
    print()
    print(
        f"memory per pending operation while sweeping, RSS slope between {low} and {high}: "
        f"min {min(slopes):.0f} B / median {statistics.median(slopes):.0f} B "
        f"(target <= {TARGET_BYTES:.0f} B: {'met' if statistics.median(slopes) <= TARGET_BYTES else 'NOT met'}); "
        + "; ".join(
            f"at {count}: {statistics.median(values):.0f} B per operation grown (median of {len(values)})"
            for count, values in per_op.items()
        )
        + f"; names, held by the caller: {names_per_op:.0f} B per operation; load {os.getloadavg()[0]:.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
