"""A user's script, type-checked with ``mypy --strict`` against the installed wheel (tools/check_wheel.py).

It is never run: it only has to type-check, which proves the wheel ships ``py.typed``
and annotations a strict user can build on.
"""

from __future__ import annotations

from datetime import timedelta

from lro_grpc import OperationsClient, PollPolicy, WaitTimeoutError
from lro_grpc.emulator import Emulator


def newest_done(client: OperationsClient, parent: str) -> list[str]:
    """Names of the done operations under ``parent``."""
    return [op.name for op in client.list(parent, filter="done=true")]


def main() -> None:
    """Wait for one operation of the emulator."""
    with Emulator() as emulator, OperationsClient(emulator.target) as client:
        op = client.get("projects/p/locations/us-central1/operations/op-1")
        try:
            op.result(timeout=timedelta(seconds=5).total_seconds(), poll_policy=PollPolicy(initial=0.1))
        except WaitTimeoutError as error:
            print(error)
        print(newest_done(client, "projects/p/locations/us-central1"))
