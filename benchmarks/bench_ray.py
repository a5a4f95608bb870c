"""A Ray cluster's waiter against one process's, on the same server in one run.

Run with ``make bench`` (or ``.venv/bin/python benchmarks/bench_ray.py``).

The emulator runs in a process of its own; Ray runs locally
(``ray.init(num_cpus=2)``). Each round starts N Financial Services
operations (default 6,000) over the eight documented locations, plus 20% more
operations of other callers running in the same locations, ours finishing
uniformly 2 to 20 s after a common start (bench_sweep's batches), 1 s poll
interval, and waits for them twice:

1. one process: ``AsyncOperationsClient.as_completed`` in this process;
2. the cluster: a :class:`~lro_grpc.ray.ClusterWaiter` actor and four Ray
   tasks, each waiting with ``as_completed`` on a quarter of the names.

Measured in each: RPCs by method (the single process's scheduler; the actor's
client), client CPU (this process; for the cluster, the actor's process plus
what the four tasks spent waiting), and the time from each operation's
``end_time`` to its report to the caller (p50, p99). Rounds alternate
which run goes first. Targets: cluster RPCs <= 1.2x one process's; p99 time
to report <= interval + 0.5 s. The actor's CPU per operation also tells where
one actor saturates a core (operations reported per second at 100%).

Then where one actor saturates, against two (``--burst-ops``, default 6,000;
0 skips it): that many operations over the eight locations, already finished
when the four tasks ask for them (``as_completed``, a quarter each), so the
actors report as fast as they can; ``shards=1`` against ``shards=2``
(alternating which goes first). Measured: operations reported per second
(from submitting the tasks to the last one's return), the actors' CPU (per
operation, and as a share of the wall time: 1.0 is one core busy), and the
emulator's CPU share over the same time. Local Ray on two cores runs the
actors, the four tasks, the emulator and the driver on the same two cores, so
this shows whether a second actor helps there, not what it would do with a
core of its own on another node.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import os
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any

import ray
from bench_sweep import INTERVAL, POLICY, create, start_batch
from bench_waiter import EmulatorProcess, percentile

from lro_grpc.aio import AsyncOperationsClient
from lro_grpc.ray import ClusterWaiter
from lro_grpc.types import financialservices_v1 as fs

TASKS = 4


def end_time_of(operation: Any) -> float:
    metadata = operation.metadata_as(fs.OperationMetadata)
    return float(metadata.end_time.seconds + metadata.end_time.nanos / 1e9)


class Run:
    """What one wait measured."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.rpcs: dict[str, int] = {}
        self.cpu = 0.0
        self.delays: list[float] = []
        self.reported = 0
        self.repeats = 0
        self.seconds = 0.0

    def line(self, size: int) -> str:
        calls = sum(self.rpcs.values())
        return (
            f"{self.label}: {self.rpcs.get('GetOperation', 0)} GetOperation + {self.rpcs.get('ListOperations', 0)} "
            f"ListOperations = {calls} RPCs; client CPU {self.cpu:.2f} s ({1e6 * self.cpu / size:.0f} us per "
            f"operation); report p50 {statistics.median(self.delays):.2f} s, "
            f"p99 {percentile(self.delays, 0.99):.2f} s; "
            f"{self.reported} reported, {self.repeats} repeated"
        )


async def single_process(target: str, names: Sequence[str]) -> Run:
    run = Run("one process")
    seen: set[str] = set()
    async with AsyncOperationsClient(target, poll_policy=POLICY) as client:
        await client.get(names[0])  # connect before measuring
        gc.collect()
        cpu = time.process_time()
        async for operation in client.as_completed(names, timeout=600):
            run.delays.append(time.time() - end_time_of(operation))
            run.repeats += operation.name in seen
            seen.add(operation.name)
        run.cpu = time.process_time() - cpu
        run.rpcs = dict(client._batch_scheduler().calls)
    run.reported = len(seen)
    return run


@ray.remote(num_cpus=0.25)
def wait_in_task(waiter: ClusterWaiter, names: list[str]) -> tuple[float, list[float], int, int]:
    """(CPU spent waiting, report delays, reported, repeated)."""
    delays: list[float] = []
    seen: set[str] = set()
    repeats = 0
    cpu = time.process_time()
    for operation in waiter.as_completed(names, timeout=600):
        delays.append(time.time() - end_time_of(operation))
        repeats += operation.name in seen
        seen.add(operation.name)
    return time.process_time() - cpu, delays, len(seen), repeats


def process_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cluster(waiter: ClusterWaiter, actor_pid: int, names: Sequence[str]) -> Run:
    run = Run("cluster")
    before = waiter.stats().rpcs
    actor_cpu = process_cpu(actor_pid)
    size = len(names) // TASKS
    parts = [list(names[index * size : (index + 1) * size if index < TASKS - 1 else None]) for index in range(TASKS)]
    started = time.perf_counter()
    results = ray.get([wait_in_task.remote(waiter, part) for part in parts])
    run.seconds = time.perf_counter() - started
    run.cpu = process_cpu(actor_pid) - actor_cpu + sum(cpu for cpu, _, _, _ in results)
    for _, delays, reported, repeats in results:
        run.delays.extend(delays)
        run.reported += reported
        run.repeats += repeats
    after = waiter.stats().rpcs
    run.rpcs = {method: after.get(method, 0) - before.get(method, 0) for method in after}
    run.actor_cpu = process_cpu(actor_pid) - actor_cpu  # type: ignore[attr-defined]
    return run


@dataclasses.dataclass(frozen=True)
class Burst:
    """What one wait for already-finished operations measured."""

    shards: int
    size: int
    seconds: float
    actor_cpu: float
    emulator_cpu: float

    @property
    def rate(self) -> float:
        return self.size / self.seconds

    def line(self) -> str:
        return (
            f"shards={self.shards}: {self.size} operations in {self.seconds:.2f} s = {self.rate:,.0f} reported per "
            f"second; actors' CPU {self.actor_cpu:.2f} s ({1e6 * self.actor_cpu / self.size:.0f} us per operation, "
            f"{self.actor_cpu / self.seconds:.2f} of a core); emulator {self.emulator_cpu / self.seconds:.2f} of a core"
        )


def actor_pids(waiter: ClusterWaiter, namespace: str) -> list[int]:
    return [
        ray.get(ray.get_actor(name, namespace=namespace).__ray_call__.remote(lambda _self: os.getpid()))
        for name in waiter.actor_names
    ]


def burst(emulator: EmulatorProcess, waiter: ClusterWaiter, pids: list[int], project: str, size: int) -> Burst:
    """Wait with four tasks for ``size`` operations that finished before the wait."""
    names = asyncio.run(create(emulator.target, project, [0.0] * size, size))
    part_size = len(names) // TASKS
    parts = [names[index * part_size : (index + 1) * part_size] for index in range(TASKS - 1)]
    parts.append(names[(TASKS - 1) * part_size :])
    actor_cpu = sum(process_cpu(pid) for pid in pids)
    emulator_cpu = emulator.cpu_seconds()
    started = time.perf_counter()
    results = ray.get([wait_in_task.remote(waiter, part) for part in parts])
    seconds = time.perf_counter() - started
    reported = sum(count for _, _, count, _ in results)
    if reported != size:
        raise RuntimeError(f"{reported} of {size} operations reported")
    return Burst(
        len(pids),
        size,
        seconds,
        sum(process_cpu(pid) for pid in pids) - actor_cpu,
        emulator.cpu_seconds() - emulator_cpu,
    )


def saturation(emulator: EmulatorProcess, rounds: int, size: int) -> list[str]:
    """One actor against two on bursts of finished operations: the section's lines."""
    waiters = {
        shards: ClusterWaiter.connect(
            emulator.target, name=f"bench-ray-burst{shards}", shards=shards, poll_policy=POLICY
        )
        for shards in (1, 2)
    }
    pids = {shards: actor_pids(waiter, "bench-ray") for shards, waiter in waiters.items()}
    for shards, waiter in waiters.items():  # each actor's client connected, a worker per task ready
        burst(emulator, waiter, pids[shards], f"burst{shards}-warm-up", 64)
    runs: dict[int, list[Burst]] = {1: [], 2: []}
    lines = [f"where one actor saturates: {size} finished operations, four tasks, local Ray (num_cpus=2)"]
    try:
        for round_index in range(rounds):
            for shards in (1, 2) if round_index % 2 == 0 else (2, 1):
                print(f"burst round {round_index + 1}: shards={shards}, {size} operations ...", flush=True)
                run = burst(emulator, waiters[shards], pids[shards], f"burst{shards}-{round_index}", size)
                runs[shards].append(run)
                lines.append(f"  round {round_index + 1}, {run.line()}")
    finally:
        for waiter in waiters.values():
            waiter.shutdown()
    rate_ratios = [two.rate / one.rate for one, two in zip(runs[1], runs[2], strict=True)]
    for shards, measured in runs.items():
        rates = [run.rate for run in measured]
        busy = [run.actor_cpu / run.seconds for run in measured]
        lines.append(
            f"  shards={shards}: {min(rates):,.0f} min / {statistics.median(rates):,.0f} median operations reported "
            f"per second; actors busy {statistics.median(busy):.2f} of a core (median)"
        )
    lines.append(
        f"  shards=2 / shards=1 operations per second: min {min(rate_ratios):.2f}, "
        f"median {statistics.median(rate_ratios):.2f}"
    )
    return lines


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ops", type=int, default=6000, help="operations per run (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default: %(default)s)")
    parser.add_argument(
        "--burst-ops",
        type=int,
        default=6000,
        help="finished operations per saturation run, 0 to skip (default: %(default)s)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    emulator = EmulatorProcess()
    print(f"emulator at {emulator.target}", flush=True)
    ray.init(num_cpus=2, include_dashboard=False, namespace="bench-ray", log_to_driver=False)
    lines: list[str] = []
    burst_lines: list[str] = []
    rpc_ratios: list[float] = []
    cpu_ratios: list[float] = []
    p99s: list[float] = []
    actor_per_op: list[float] = []
    actor_busy: list[float] = []
    try:
        waiter = ClusterWaiter.connect(emulator.target, name="bench-ray", poll_policy=POLICY)
        actor_pid = ray.get(ray.get_actor("bench-ray").__ray_call__.remote(lambda _self: os.getpid()))
        ray.get(wait_in_task.remote(waiter, []))  # a worker ready before measuring
        for round_index in range(args.rounds):
            runs: dict[str, Run] = {}
            order = ["single", "cluster"] if round_index % 2 == 0 else ["cluster", "single"]
            for which in order:
                print(f"round {round_index + 1}: {which}, {args.ops} operations ...", flush=True)
                names, _ = start_batch(emulator, f"{which}-{round_index}", args.ops, seed=round_index)
                if which == "single":
                    runs[which] = asyncio.run(single_process(emulator.target, names))
                else:
                    runs[which] = cluster(waiter, actor_pid, names)
            single, clustered = runs["single"], runs["cluster"]
            rpc_ratio = sum(clustered.rpcs.values()) / sum(single.rpcs.values())
            cpu_ratio = clustered.cpu / single.cpu
            rpc_ratios.append(rpc_ratio)
            cpu_ratios.append(cpu_ratio)
            p99s.append(percentile(clustered.delays, 0.99))
            actor_per_op.append(clustered.actor_cpu / args.ops)  # type: ignore[attr-defined]
            actor_busy.append(clustered.actor_cpu / clustered.seconds)  # type: ignore[attr-defined]
            lines.append(f"round {round_index + 1}:")
            lines.append("  " + single.line(args.ops))
            lines.append("  " + clustered.line(args.ops))
            lines.append(
                f"  cluster / one process: RPCs {rpc_ratio:.3f}x (target <= 1.2), client CPU {cpu_ratio:.2f}x; "
                f"actor CPU {1e6 * actor_per_op[-1]:.0f} us per operation, {actor_busy[-1]:.2f} of a core "
                f"over the {clustered.seconds:.1f} s wait"
            )
        waiter.shutdown()
        if args.burst_ops:
            burst_lines = saturation(emulator, args.rounds, args.burst_ops)
    finally:
        ray.shutdown()
        emulator.stop()

    print()
    for line in lines:
        print(line)
    print(
        f"RPCs cluster / one process: min {min(rpc_ratios):.3f}, median {statistics.median(rpc_ratios):.3f} "
        f"(target <= 1.2); client CPU: min {min(cpu_ratios):.2f}, median {statistics.median(cpu_ratios):.2f}; "
        f"cluster p99 time to report: min {min(p99s):.2f} s, median {statistics.median(p99s):.2f} s "
        f"(target <= {INTERVAL + 0.5:.1f} s)"
    )
    per_op = statistics.median(actor_per_op)
    print(
        f"one actor: {1e6 * per_op:.0f} us of its CPU per operation (median), {statistics.median(actor_busy):.2f} "
        f"of a core over the wait (median): at this pace it would saturate a core at about {1 / per_op:,.0f} "
        "operations reported per second"
    )
    for line in burst_lines:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
