"""Client cost of waiting on many operations: lro_grpc's batch waiter against the alternatives.

Run with ``make bench`` (or ``.venv/bin/python benchmarks/bench_waiter.py``).

The emulator runs in a process of its own (``python -m lro_grpc.emulator``).
Each phase starts its own set of operations with ``AML.CreateInstance`` (the
``x-emulator-duration-seconds`` header sets each one's duration; creation is
not measured) and then waits for all of them, measuring this process's CPU
time (``time.process_time()``, all threads) and wall time:

a. the floor: ``--concurrency`` coroutines calling ``GetOperation`` on a bare
   ``grpc.aio`` stub back to back (requests built beforehand, nothing else
   added), over operations that keep running, as many calls as phase b made;
b. lro_grpc's batch waiter polling each operation on its own (``batch_sweep=False``;
   sweeping is measured by ``bench_sweep.py``), at most ``--concurrency``
   calls in flight, every operation polled every ``--interval`` seconds, no jitter;
c. google-api-core: ``operation.from_gapic(...).result()`` per operation in a
   ``ThreadPoolExecutor`` (one thread per operation), over
   ``operations_v1.OperationsClient``, polling configured with the same
   interval (api-core draws each sleep uniformly below it: "full jitter").

Then:

d. time from an operation finishing (its ``end_time`` in the emulator's
   metadata) to the waiter reporting it, median and p99, with a calls-per-second
   budget (``--qps``) above the polling demand;
e. the waiter's resident memory per tracked operation with ``--pending``
   operations pending, measured in a fresh subprocess: right after adding them,
   and after one poll of each has stored its last seen state (that round is
   answered in-process, without RPCs, to keep the run short).

Targets: b/a CPU per poll <= 1.15; c/b >= 2.5; <= 1 KB per pending
operation; p99 time-to-report <= interval + 10%. Each ratio is printed per
round (min and median of the rounds): this machine is noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import dataclasses
import functools
import gc
import itertools
import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import grpc
from google.longrunning import operations_pb2

from lro_grpc._batch import BatchSource, BatchWaiter
from lro_grpc._core import RpcFailure
from lro_grpc._generated import financialservices_v1_pb2 as fs
from lro_grpc._generated import financialservices_v1_pb2_grpc as fs_grpc
from lro_grpc._generated import operations_pb2_grpc
from lro_grpc.aio import AsyncOperationsClient
from lro_grpc.emulator import DURATION_HEADER
from lro_grpc.policies import Deadline, PollPolicy

PARENT = "projects/bench/locations/us-central1"


@dataclasses.dataclass
class Phase:
    label: str
    operations: int
    polls: int
    cpu: float
    wall: float
    server_cpu: float

    @property
    def cpu_per_poll_us(self) -> float:
        return self.cpu / self.polls * 1e6

    @property
    def polls_per_operation(self) -> float:
        return self.polls / self.operations


# --------------------------------------------------------------------------- emulator process


class EmulatorProcess:
    """The emulator in a process of its own (``extra_args``: more command-line flags)."""

    def __init__(self, *extra_args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lro_grpc.emulator", "--port", "0", *extra_args],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.target = self.process.stdout.readline().strip()
        if not self.target:
            self.stop()
            raise RuntimeError("the emulator did not start")

    def cpu_seconds(self) -> float:
        """User + system CPU of the emulator process so far."""
        with open(f"/proc/{self.process.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


async def create_operations(
    target: str, durations: Sequence[float], concurrency: int
) -> list[operations_pb2.Operation]:
    """Start one CreateInstance per duration, ``concurrency`` at a time."""
    semaphore = asyncio.Semaphore(concurrency)
    run = random.getrandbits(32)
    async with grpc.aio.insecure_channel(target) as channel:
        aml = fs_grpc.AMLStub(channel)

        async def create(index: int, duration: float) -> operations_pb2.Operation:
            request = fs.CreateInstanceRequest(parent=PARENT, instance_id=f"bench-{run:08x}-{index}")
            async with semaphore:
                operation: operations_pb2.Operation = await aml.CreateInstance(
                    request, metadata=((DURATION_HEADER, f"{duration:.3f}"),)
                )
            return operation

        return list(await asyncio.gather(*(create(index, duration) for index, duration in enumerate(durations))))


def durations(count: int, low: float, high: float, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [rng.uniform(low, high) for _ in range(count)]


class Meter:
    """CPU (this process, all threads) and wall time between ``start()`` and ``stop()``."""

    def __init__(self, emulator: EmulatorProcess) -> None:
        self.emulator = emulator
        self.cpu = self.wall = self.server_cpu = 0.0

    def start(self) -> None:
        gc.collect()
        self._server = self.emulator.cpu_seconds()
        self._cpu, self._wall = time.process_time(), time.perf_counter()

    def stop(self) -> None:
        self.cpu = time.process_time() - self._cpu
        self.wall = time.perf_counter() - self._wall
        self.server_cpu = self.emulator.cpu_seconds() - self._server


# --------------------------------------------------------------------------- (a) the floor


async def bare_loop(target: str, names: Sequence[str], meter: Meter, *, calls: int, concurrency: int) -> int:
    """``concurrency`` coroutines calling GetOperation back to back until ``calls`` were made; return the count."""
    made = 0
    async with grpc.aio.insecure_channel(target) as channel:
        stub = operations_pb2_grpc.OperationsStub(channel)
        requests = [operations_pb2.GetOperationRequest(name=name) for name in names]
        await stub.GetOperation(requests[0])  # connect before measuring

        async def caller(first: int) -> None:
            nonlocal made
            index = first
            while made < calls:
                made += 1
                await stub.GetOperation(requests[index % len(requests)], timeout=10)
                index += concurrency

        meter.start()
        await asyncio.gather(*(caller(first) for first in range(concurrency)))
        meter.stop()
    return made


# --------------------------------------------------------------------------- (b) the waiter


async def waiter_run(
    target: str,
    names: Sequence[str],
    meter: Meter,
    *,
    interval: float,
    concurrency: int,
    qps: float | None = None,
    on_report: Callable[[Any], None] | None = None,
) -> int:
    """Wait for every name with lro_grpc's waiter; return the GetOperation calls it made."""
    policy = PollPolicy(initial=interval, multiplier=1.0, maximum=interval, jitter=0.0)
    async with AsyncOperationsClient(target, batch_sweep=False) as client:
        await client.get(names[0])  # connect before measuring
        meter.start()
        waiter = BatchWaiter(client, names, poll_policy=policy, max_in_flight=concurrency, qps=qps, timeout=600)
        async with waiter:
            async for operation in waiter:
                if not operation.done:
                    raise RuntimeError(f"waiter reported a running operation: {operation.name}")
                if on_report is not None:
                    on_report(operation)
        meter.stop()
        return waiter.polls


# --------------------------------------------------------------------------- (c) google-api-core


def api_core_run(target: str, operations: Sequence[operations_pb2.Operation], meter: Meter, *, interval: float) -> int:
    """``Operation.result()`` per operation in a thread pool; return the GetOperation calls made."""
    from google.api_core import operation as api_core_operation
    from google.api_core import operations_v1
    from google.api_core import retry as api_core_retry
    from google.api_core.future import polling
    from google.cloud import financialservices_v1

    polls = itertools.count()
    channel = grpc.insecure_channel(target)
    try:
        operations_client = operations_v1.OperationsClient(channel)
        get_operation = operations_client.get_operation

        def counted_get_operation(*args: Any, **kwargs: Any) -> Any:
            next(polls)
            return get_operation(*args, **kwargs)

        operations_client.get_operation = counted_get_operation
        get_operation(operations[0].name)  # connect before measuring
        config = api_core_retry.Retry(
            predicate=polling.POLLING_PREDICATE, initial=interval, maximum=interval, multiplier=1.0, timeout=600
        )

        def wait(operation: operations_pb2.Operation) -> Any:
            future = api_core_operation.from_gapic(
                operation,
                operations_client,
                financialservices_v1.Instance,
                metadata_type=financialservices_v1.OperationMetadata,
                polling=config,
            )
            return future.result(timeout=600)

        meter.start()
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(operations)) as pool:
            for _ in pool.map(wait, operations):
                pass
        meter.stop()
    finally:
        channel.close()
    return next(polls)


# --------------------------------------------------------------------------- (e) memory


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


class InProcessSource:
    """Answers GetOperation from memory: every operation still running, with realistic metadata."""

    def __init__(self) -> None:
        metadata = fs.OperationMetadata(target=f"{PARENT}/instances/bench", verb="create", api_version="v1")
        metadata.create_time.GetCurrentTime()
        self.metadata = operations_pb2.Operation().metadata
        self.metadata.Pack(metadata)

    async def fetch(
        self, name: str, *, deadline: Deadline, rpc_timeout: float | None
    ) -> operations_pb2.Operation | RpcFailure:
        operation = operations_pb2.Operation(name=name)
        operation.metadata.CopyFrom(self.metadata)
        return operation

    def _batch_source(self) -> BatchSource[operations_pb2.Operation]:
        return BatchSource(fetch=self.fetch, wrap=lambda operation: operation)


async def rss_child_main(pending: int) -> dict[str, float]:
    gc.collect()
    before_names = rss_bytes()
    names = [
        f"{PARENT}/operations/operation-{1795425651075 + index}-a0da737b68048-4a4b2b6b-{index:08x}"
        for index in range(pending)
    ]
    gc.collect()
    before = rss_bytes()
    waiter = BatchWaiter(
        InProcessSource(), names, poll_policy=PollPolicy(initial=3600, maximum=3600), max_in_flight=100
    )
    gc.collect()
    after_add = rss_bytes()
    # One poll of each: every operation now also keeps its last seen state.
    iteration = asyncio.ensure_future(waiter.__anext__())
    while waiter.polls < pending:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.05)
    gc.collect()
    after_poll = rss_bytes()
    iteration.cancel()
    await waiter.aclose()
    return {
        "names_bytes_per_op": (before - before_names) / pending,
        "bytes_per_op_added": (after_add - before) / pending,
        "bytes_per_op_polled": (after_poll - before) / pending,
        "pending": pending,
    }


def measure_rss(pending: int) -> dict[str, float]:
    output = subprocess.run(
        [sys.executable, __file__, "--rss-child", str(pending)], check=True, capture_output=True, text=True
    ).stdout
    result: dict[str, float] = json.loads(output)
    return result


# --------------------------------------------------------------------------- driver


def measured(label: str, emulator: EmulatorProcess, operations: int, run: Callable[[Meter], int]) -> Phase:
    meter = Meter(emulator)
    polls = run(meter)
    return Phase(label, operations, polls, meter.cpu, meter.wall, meter.server_cpu)


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ops", type=int, default=1000, help="operations per CPU phase (default: %(default)s)")
    parser.add_argument("--interval", type=float, default=2.0, help="poll interval, s (default: %(default)s)")
    parser.add_argument("--min-duration", type=float, default=4.0, help="shortest operation, s (default: %(default)s)")
    parser.add_argument("--max-duration", type=float, default=8.0, help="longest operation, s (default: %(default)s)")
    parser.add_argument("--concurrency", type=int, default=100, help="RPCs in flight (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=3, help="repetitions of phases a-c (default: %(default)s)")
    parser.add_argument("--latency-ops", type=int, default=500, help="operations in phase d (default: %(default)s)")
    parser.add_argument("--latency-interval", type=float, default=1.0, help="poll interval in d (default: %(default)s)")
    parser.add_argument("--qps", type=float, default=800.0, help="calls-per-second budget in d (default: %(default)s)")
    parser.add_argument("--pending", type=int, default=100_000, help="operations in e (default: %(default)s)")
    parser.add_argument("--rss-child", type=int, metavar="N", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def pooled(phases: Sequence[Phase]) -> Phase:
    """One phase's rounds added up."""
    return Phase(
        phases[0].label,
        sum(phase.operations for phase in phases),
        sum(phase.polls for phase in phases),
        sum(phase.cpu for phase in phases),
        sum(phase.wall for phase in phases),
        sum(phase.server_cpu for phase in phases),
    )


def run_cpu_rounds(emulator: EmulatorProcess, args: argparse.Namespace) -> dict[str, list[Phase]]:
    """Phases a, b, c, repeated ``--rounds`` times in turn (so a noisy neighbour hits all of them)."""
    interval, concurrency, target = args.interval, args.concurrency, emulator.target

    def start(seed: int) -> list[operations_pb2.Operation]:
        planned = durations(args.ops, args.min_duration, args.max_duration, seed)
        return asyncio.run(create_operations(target, planned, concurrency))

    def run_bare(names: list[str], calls: int, meter: Meter) -> int:
        return asyncio.run(bare_loop(target, names, meter, calls=calls, concurrency=concurrency))

    def run_waiter(names: list[str], meter: Meter) -> int:
        return asyncio.run(waiter_run(target, names, meter, interval=interval, concurrency=concurrency))

    def run_api_core(operations: list[operations_pb2.Operation], meter: Meter) -> int:
        return api_core_run(target, operations, meter, interval=interval)

    # The floor's operations keep running: it polls them back to back.
    names_a = [operation.name for operation in asyncio.run(create_operations(target, [3600.0] * args.ops, concurrency))]
    # Warm up both paths once (first-use imports and set-up are not a per-poll cost).
    print("warming up ...", flush=True)
    warm = [operation.name for operation in asyncio.run(create_operations(target, [0.5] * 50, concurrency))]
    run_waiter(warm, Meter(emulator))
    run_bare(names_a, 2000, Meter(emulator))
    phases: dict[str, list[Phase]] = {"a": [], "b": [], "c": []}
    for round_index in range(args.rounds):
        step = f"round {round_index + 1}/{args.rounds}:"
        print(f"{step} (b) lro_grpc waiter ...", flush=True)
        names_b = [operation.name for operation in start(3 * round_index + 1)]
        phases["b"].append(measured("b. lro_grpc waiter", emulator, args.ops, functools.partial(run_waiter, names_b)))
        print(f"{step} (a) bare grpc.aio loop, back to back ...", flush=True)
        calls = phases["b"][-1].polls
        phases["a"].append(
            measured("a. bare grpc.aio loop", emulator, args.ops, functools.partial(run_bare, names_a, calls))
        )
        print(f"{step} (c) google-api-core threads ...", flush=True)
        operations_c = start(3 * round_index + 2)
        phases["c"].append(
            measured("c. api-core result() threads", emulator, args.ops, functools.partial(run_api_core, operations_c))
        )
    return phases


def run_latency(emulator: EmulatorProcess, args: argparse.Namespace) -> tuple[list[float], int]:
    """Phase d: seconds from each operation's end_time to the waiter reporting it, and the polls made."""
    print(f"(d) time to report, {args.latency_ops} operations, qps budget {args.qps:g} ...", flush=True)
    planned = durations(args.latency_ops, args.min_duration / 2, args.max_duration / 2, 1000)
    operations = asyncio.run(create_operations(emulator.target, planned, args.concurrency))
    delays: list[float] = []

    def on_report(operation: Any) -> None:
        end = operation.metadata.end_time
        delays.append(time.time() - (end.seconds + end.nanos / 1e9))

    polls = asyncio.run(
        waiter_run(
            emulator.target,
            [operation.name for operation in operations],
            Meter(emulator),
            interval=args.latency_interval,
            concurrency=args.concurrency,
            qps=args.qps,
            on_report=on_report,
        )
    )
    return delays, polls


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.rss_child is not None:
        print(json.dumps(asyncio.run(rss_child_main(args.rss_child))))
        return 0

    started = time.perf_counter()
    emulator = EmulatorProcess()
    print(f"emulator at {emulator.target} (pid {emulator.process.pid}); {os.cpu_count()} CPUs", flush=True)
    try:
        phases = run_cpu_rounds(emulator, args)
        delays, latency_polls = run_latency(emulator, args)
    finally:
        emulator.stop()
    print(f"(e) memory with {args.pending} pending operations (fresh process) ...", flush=True)
    memory = measure_rss(args.pending)
    total = time.perf_counter() - started

    bare, waiter, api_core = (pooled(phases[key]) for key in "abc")
    print()
    print(
        f"{args.ops} operations per phase and round, {args.rounds} rounds, lasting "
        f"{args.min_duration:g}-{args.max_duration:g} s, polled every {args.interval:g} s, "
        f"{args.concurrency} RPCs in flight at most (api-core: one thread per operation)"
    )
    header = f"{'phase':<32}{'polls':>8}{'polls/op':>10}{'CPU s':>8}{'wall s':>8}{'CPU/poll':>12}{'server CPU':>12}"
    print(header)
    print("-" * len(header))
    for phase in (bare, waiter, api_core):
        print(
            f"{phase.label:<32}{phase.polls:>8}{phase.polls_per_operation:>10.2f}{phase.cpu:>8.2f}{phase.wall:>8.2f}"
            f"{phase.cpu_per_poll_us:>9.0f} us{100 * phase.server_cpu / phase.wall:>11.0f}%"
        )

    def ratios(numerator: str, denominator: str) -> str:
        each = [
            top.cpu_per_poll_us / bottom.cpu_per_poll_us
            for top, bottom in zip(phases[numerator], phases[denominator], strict=True)
        ]
        listed = ", ".join(f"{value:.2f}" for value in each)
        return f"min {min(each):.2f}, median {statistics.median(each):.2f}; rounds: {listed}"

    b_over_a = waiter.cpu_per_poll_us / bare.cpu_per_poll_us
    c_over_b = api_core.cpu_per_poll_us / waiter.cpu_per_poll_us
    per_operation = (api_core.cpu / api_core.operations) / (waiter.cpu / waiter.operations)
    print()
    print(f"CPU per poll, waiter / bare loop (b/a):   {b_over_a:5.2f}  ({ratios('b', 'a')})  target <= 1.15")
    print(f"CPU per poll, api-core / waiter (c/b):    {c_over_b:5.2f}  ({ratios('c', 'b')})  target >= 2.5")
    print(f"CPU per operation, api-core / waiter:     {per_operation:5.2f}")
    limit = args.latency_interval * 1.1
    p50, p99 = statistics.median(delays), percentile(delays, 0.99)
    print(
        f"time to report, interval {args.latency_interval:g} s, qps budget {args.qps:g}: "
        f"median {p50:.3f} s, p99 {p99:.3f} s  target p99 <= {limit:.2f} s"
    )
    print(
        f"GetOperation calls per completed operation: bare {bare.polls_per_operation:.2f}, "
        f"waiter {waiter.polls_per_operation:.2f}, api-core {api_core.polls_per_operation:.2f} "
        f"(phase d: {latency_polls / len(delays):.2f})"
    )
    print(
        f"memory, {memory['pending']:.0f} pending operations: {memory['bytes_per_op_added']:.0f} B/op tracked, "
        f"{memory['bytes_per_op_polled']:.0f} B/op with last seen state  target <= 1024 B "
        f"(names, held by the caller: {memory['names_bytes_per_op']:.0f} B/op)"
    )
    print(f"total {total:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
