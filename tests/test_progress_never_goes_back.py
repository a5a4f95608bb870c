"""The wait progress bar only moves forward, whatever order polls and the waiter's counts arrive in."""

from __future__ import annotations

import io
import random
import re

from google.longrunning import operations_pb2

from lro_grpc import _progress
from lro_grpc._batch import BatchProgress
from lro_grpc._generated import servicemanagement_v1_pb2 as sm
from lro_grpc.registry import default_registry

DRAWN = re.compile(r"\]\s+(\d+)% (\d+)/(\d+) done")


def running(name: str, percentage: int) -> operations_pb2.Operation:
    operation = operations_pb2.Operation(name=name)
    operation.metadata.Pack(sm.OperationMetadata(progress_percentage=percentage))
    return operation


def finished(name: str) -> operations_pb2.Operation:
    operation = operations_pb2.Operation(name=name, done=True)
    operation.metadata.Pack(sm.OperationMetadata(progress_percentage=100))
    return operation


def drawn(stream: io.StringIO) -> list[tuple[int, int]]:
    """The (percentage, done) pairs of every redraw, in order."""
    return [(int(match.group(1)), int(match.group(2))) for match in DRAWN.finditer(stream.getvalue())]


def test_an_operation_polled_done_before_the_count_rises_does_not_pull_the_bar_back() -> None:
    # The sequence of the report: 4 of 6 done, a fifth at 70% is polled done before the
    # waiter's count rises to 5.
    names = [f"operations/op-{index}" for index in range(6)]
    stream = io.StringIO()
    display = _progress.BatchDisplay(_progress.ProgressBar(stream, min_interval=0), names, default_registry())
    for name in names[:4]:
        display.on_poll(finished(name))
    display.on_progress(BatchProgress(done=4, failed=0, pending=2))
    display.on_poll(running(names[4], 70))
    display.on_poll(running(names[5], 10))
    display.on_poll(finished(names[4]))  # done, not yet counted by the waiter
    display.on_progress(BatchProgress(done=5, failed=0, pending=1))
    display.on_poll(running(names[5], 90))
    display.on_poll(finished(names[5]))
    display.on_progress(BatchProgress(done=6, failed=0, pending=0))
    display.close()
    percentages = [percentage for percentage, _ in drawn(stream)]
    assert percentages == sorted(percentages), percentages
    assert percentages[-1] == 100


def test_random_orders_of_polls_and_counts_never_go_back() -> None:
    rng = random.Random(18)
    for _ in range(200):
        count = rng.randint(1, 8)
        names = [f"operations/op-{index}" for index in range(count)]
        # Each operation's own states in order (rising percentages, then done); operations interleave at random.
        states = {
            name: [running(name, percentage) for percentage in sorted(rng.sample(range(100), rng.randint(0, 3)))]
            + [finished(name)]
            for name in names
        }
        turns = [name for name in names for _ in states[name]]
        rng.shuffle(turns)
        stream = io.StringIO()
        display = _progress.BatchDisplay(_progress.ProgressBar(stream, min_interval=0), names, default_registry())
        done = 0
        for name in turns:
            operation = states[name].pop(0)
            display.on_poll(operation)
            if operation.done and rng.random() < 0.7:  # the waiter's count rises, sometimes only later
                done += 1
                display.on_progress(BatchProgress(done=done, failed=0, pending=count - done))
        display.on_progress(BatchProgress(done=count, failed=0, pending=0))
        display.close()
        pairs = drawn(stream)
        percentages = [percentage for percentage, _ in pairs]
        assert percentages == sorted(percentages), pairs
        assert [done_count for _, done_count in pairs] == sorted(done_count for _, done_count in pairs)
        assert percentages[-1] == 100
