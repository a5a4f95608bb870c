"""How close to its deadline ``Operation.result(timeout=T)`` gives up, and the cost of one get.

Run with ``.venv/bin/python benchmarks/deadline_precision.py``. It starts the
emulator in-process with a frozen clock (so the operation never finishes),
waits on it ``--waits`` times with timeouts between 0.3 and 1 s, and prints how
far from ``T`` each ``WaitTimeoutError`` came (negative: before ``T``). The
contract is: no later than ``T + 100 ms``, and no RPC outlives ``T``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import grpc

from lro_grpc import OperationsClient, PollPolicy, WaitTimeoutError
from lro_grpc.emulator import Emulator
from lro_grpc.types import financialservices_v1, financialservices_v1_grpc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--waits", type=int, default=20, help="timed-out waits to measure (default: %(default)s)")
    parser.add_argument("--gets", type=int, default=3000, help="client.get() calls to time (default: %(default)s)")
    args = parser.parse_args()

    with Emulator(speed=0) as emulator, grpc.insecure_channel(emulator.target) as channel:
        aml = financialservices_v1_grpc.AMLStub(channel)
        started = aml.CreateInstance(
            financialservices_v1.CreateInstanceRequest(parent="projects/p/locations/us-central1", instance_id="i1")
        )
        policy = PollPolicy(initial=0.07, multiplier=1.3, maximum=0.2)
        with OperationsClient(emulator.target) as client:
            offsets = []
            timeouts = [0.3, 0.5, 0.75, 1.0]
            for index in range(args.waits):
                timeout = timeouts[index % len(timeouts)]
                start = time.monotonic()
                try:
                    client.operation(started.name).result(timeout=timeout, poll_policy=policy)
                except WaitTimeoutError:
                    pass
                else:
                    raise SystemExit("the operation finished on a frozen clock")
                offsets.append((time.monotonic() - start - timeout) * 1000)
            print(
                f"WaitTimeoutError vs deadline over {len(offsets)} waits: min {min(offsets):+.1f} ms, "
                f"median {statistics.median(offsets):+.1f} ms, max {max(offsets):+.1f} ms (contract: <= +100 ms)"
            )
            start = time.monotonic()
            for _ in range(args.gets):
                client.get(started.name)
            elapsed = time.monotonic() - start
            print(
                f"client.get() against the in-process emulator: {args.gets / elapsed:.0f} calls/s "
                f"({elapsed / args.gets * 1e6:.0f} us per call, client and server in one process)"
            )


if __name__ == "__main__":
    main()
