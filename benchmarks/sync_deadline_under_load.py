"""How late a sync ``Operation.result(timeout=T)`` gives up while other processes load the CPU.

Run with ``.venv/bin/python benchmarks/sync_deadline_under_load.py``. It starts
the emulator in its own process with a frozen clock (the operation never
finishes), starts ``--busy`` processes that spin (``while True: pass``), and
waits on the operation ``--waits`` times with timeouts between 0.3 and 1 s,
measuring how far past ``T`` each ``WaitTimeoutError`` came. With
``--latency-ms`` above the timeouts, every poll hangs, so each wait ends on
its last RPC's deadline: the case where the library's bound on its own wait
matters. The contract: no later than ``T + 100 ms``. The busy processes are
killed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator

import grpc

from lro_grpc import OperationsClient, PollPolicy, WaitTimeoutError
from lro_grpc.emulator import Emulator, Faults
from lro_grpc.types import financialservices_v1, financialservices_v1_grpc


@contextlib.contextmanager
def spinning(count: int) -> Iterator[None]:
    """``count`` processes that keep a CPU busy until the block ends."""
    processes = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield
    finally:
        for process in processes:
            process.kill()
        for process in processes:
            process.wait()


@contextlib.contextmanager
def emulator(latency_ms: float, *, in_process: bool) -> Iterator[str]:
    """The emulator on a frozen clock, in a process of its own or in this one; yields its target."""
    if in_process:
        with Emulator(speed=0, faults=Faults(latency=latency_ms / 1000)) as embedded:
            yield embedded.target
        return
    command = [sys.executable, "-m", "lro_grpc", "emulator", "--port", "0", "--speed", "0"]
    if latency_ms:
        command += ["--latency-ms", str(latency_ms)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        target = process.stdout.readline().strip()
        if not target:
            raise SystemExit("the emulator did not start")
        yield target
    finally:
        process.terminate()
        process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--waits", type=int, default=50, help="timed-out waits to measure (default: %(default)s)")
    parser.add_argument("--busy", type=int, default=2, help="spinning processes (default: %(default)s)")
    parser.add_argument(
        "--latency-ms", type=float, default=0, help="emulator latency per call; above 1000 every poll hangs"
    )
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="run the emulator in this process (its threads then compete with the client's for the GIL)",
    )
    args = parser.parse_args()

    with emulator(args.latency_ms, in_process=args.in_process) as target:
        with grpc.insecure_channel(target) as channel:
            started = financialservices_v1_grpc.AMLStub(channel).CreateInstance(
                financialservices_v1.CreateInstanceRequest(parent="projects/p/locations/us-central1", instance_id="i1"),
                timeout=args.latency_ms / 1000 + 10,
            )
        policy = PollPolicy(initial=0.07, multiplier=1.3, maximum=0.2)
        timeouts = [0.3, 0.5, 0.75, 1.0]
        lateness: list[float] = []
        with OperationsClient(target) as client, spinning(args.busy):
            for index in range(args.waits):
                timeout = timeouts[index % len(timeouts)]
                start = time.monotonic()
                try:
                    client.operation(started.name).result(timeout=timeout, poll_policy=policy)
                except WaitTimeoutError:
                    pass
                else:
                    raise SystemExit("the operation finished on a frozen clock")
                lateness.append((time.monotonic() - start - timeout) * 1000)
    lateness.sort()
    print(
        f"{args.waits} waits, {args.busy} busy processes, emulator "
        f"{'in process' if args.in_process else 'in its own process'}, latency {args.latency_ms:g} ms: "
        f"WaitTimeoutError vs T: min {lateness[0]:+.1f} ms, median {statistics.median(lateness):+.1f} ms, "
        f"p90 {lateness[int(0.9 * (len(lateness) - 1))]:+.1f} ms, worst {lateness[-1]:+.1f} ms (contract: <= +100 ms)"
    )


if __name__ == "__main__":
    main()
