"""Operations that fall due while their scope's listing is in flight wait for that listing to end.

Over real gRPC on loopback: the in-test timed servicer, its listings held at a
gate the test opens, so that names are added exactly while a listing is in flight.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from timed_servicer import Server, serving

from lro_grpc._batch import BatchWaiter
from lro_grpc.aio import AsyncOperationsClient
from lro_grpc.policies import PollPolicy

POLL = PollPolicy(initial=1.0, multiplier=1.0, maximum=1.0, jitter=0.0)
"""Look every second: no second round of the scope starts by itself while the test looks."""


def names_in(server: Server, prefix: str, count: int) -> list[str]:
    return [server.add(f"projects/p/locations/us-east1/operations/{prefix}-{index}", 3600) for index in range(count)]


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def gets(server: Server, names: list[str]) -> int:
    return sum(server.gets.get(name, 0) for name in names)


async def test_names_added_while_their_scope_is_listed_cost_the_next_listing_not_a_get_each() -> None:
    server = Server()
    server.listings.gate = asyncio.Event()
    first = names_in(server, "first", 10)
    later = names_in(server, "later", 10)
    reported: list[str] = []
    async with serving(server) as target, AsyncOperationsClient(target, poll_policy=POLL) as client:
        waiter = BatchWaiter(client, first, keep_open=True, timeout=60)

        async def consume() -> None:
            async for op in waiter:
                reported.append(op.name)

        consumer = asyncio.ensure_future(consume())
        try:
            await asyncio.wait_for(server.listings.waiting.wait(), 10)  # the scope's first listing is in flight
            waiter.add(later)
            await asyncio.sleep(0.3)
            assert gets(server, later) == 0  # held for the listing, not polled one by one
            server.listings.gate.set()
            await until(lambda: server.calls["ListOperations"] >= 2)  # the next listing covers them
            assert gets(server, later) <= 1  # a spot check at most
            for name in first + later:
                server.ops[name].finish_at = time.monotonic()
            waiter.close_input()
            await asyncio.wait_for(consumer, 30)
        finally:
            consumer.cancel()
            await waiter.aclose()
    assert sorted(reported) == sorted(first + later)


async def test_a_held_operation_spends_none_of_the_calls_per_second_budget() -> None:
    server = Server()
    server.listings.gate = asyncio.Event()
    first = names_in(server, "first", 5)
    later = names_in(server, "later", 40)
    alone = server.add("projects/p/locations/europe-west1/operations/alone", 3600)  # polled on its own
    async with serving(server) as target, AsyncOperationsClient(target, poll_policy=POLL, batch_qps=10) as client:
        waiter = BatchWaiter(client, first, keep_open=True, timeout=60)
        consumer = asyncio.ensure_future(waiter.__anext__())
        try:
            await asyncio.wait_for(server.listings.waiting.wait(), 10)
            added = time.monotonic()
            waiter.add([*later, alone])  # due together, the 40 held first: 4 s of the budget if each spent a call
            await until(lambda: server.gets.get(alone, 0) > 0, timeout=10)
            assert time.monotonic() - added < 2.0
            assert gets(server, later) == 0
        finally:
            consumer.cancel()
            await waiter.aclose()
