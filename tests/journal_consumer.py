"""A batch job for the journal crash test: waits on operations with a journal, printing each outcome.

Usage: ``python journal_consumer.py TARGET JOURNAL NAMES_FILE sync|async|hold``. Prints one
``NAME CODE`` line per outcome handed to it, flushed at once (what the job "handled"),
then ``END`` when the iteration ends normally. ``hold`` takes one outcome (sync client)
and then sleeps with it in hand, never asking for the next.
"""

from __future__ import annotations

import asyncio
import sys
import time

from lro_grpc import AsyncOperationsClient, OperationsClient, PollPolicy

POLL = PollPolicy(initial=0.2, multiplier=1.0, maximum=0.2, jitter=0.0)


HANDLING = 0.0005  # seconds each outcome is held after it is printed: a kill can land while one is in hand


def report(name: str, code: int) -> None:
    sys.stdout.write(f"{name} {code}\n")
    sys.stdout.flush()


def run_sync(target: str, journal: str, names: list[str]) -> None:
    with OperationsClient(target) as client:
        for operation in client.as_completed(names, journal=journal, poll_policy=POLL):
            report(operation.name, operation.raw.error.code)
            time.sleep(HANDLING)


async def run_async(target: str, journal: str, names: list[str]) -> None:
    async with AsyncOperationsClient(target) as client:
        async for operation in client.as_completed(names, journal=journal, poll_policy=POLL):
            report(operation.name, operation.raw.error.code)
            await asyncio.sleep(HANDLING)


def main() -> None:
    target, journal, names_file, mode = sys.argv[1:5]
    with open(names_file) as file:
        names = file.read().split()
    if mode == "hold":
        with OperationsClient(target) as client:
            operations = client.as_completed(names, journal=journal, poll_policy=POLL)
            first = next(operations)
            report(first.name, first.raw.error.code)
            time.sleep(3600)
            operations.close()
    if mode == "sync":
        run_sync(target, journal, names)
    else:
        asyncio.run(run_async(target, journal, names))
    report("END", 0)


if __name__ == "__main__":
    main()
