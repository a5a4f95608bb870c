"""Per-scope rounds: a swept scope waits in the scheduler's heap as one item, its operations in its table.

Over real gRPC on loopback (the in-test servicer of ``timed_servicer.py``, and
the emulator). What is checked: the heap holds one item per swept scope (not
one per operation) while the operations' states are updated in place from
each listing; deadlines, closed waiters and two waiters tracking the same
operation keep working; poll intervals still grow as the policy says.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.protobuf import wrappers_pb2
from timed_servicer import Server, serving

from lro_grpc._batch import BatchScheduler
from lro_grpc._batch._ports import QUEUED, Entry, Ticket
from lro_grpc._batch._scope_table import ScopeTable
from lro_grpc._generated import financialservices_v1_pb2 as fs
from lro_grpc._generated import financialservices_v1_pb2_grpc as fs_grpc
from lro_grpc.aio import AsyncOperationsClient
from lro_grpc.emulator import DURATION_HEADER, Emulator
from lro_grpc.errors import BatchTimeoutError
from lro_grpc.policies import PollPolicy, RetryPolicy

POLL = PollPolicy(initial=0.05, multiplier=1.0, maximum=0.05, jitter=0.0)
"""Look every 50 ms."""

NO_RETRY = RetryPolicy(initial=0.01, multiplier=1, maximum=0.01, jitter=0, max_attempts=1, timeout=5)


def fs_name(location: str, index: int) -> str:
    return f"projects/p/locations/{location}/operations/op-{index}"


@contextlib.asynccontextmanager
async def client_for(target: str, **options: Any) -> AsyncIterator[AsyncOperationsClient]:
    settings: dict[str, Any] = {"retry_policy": NO_RETRY, "poll_policy": POLL, **options}
    async with AsyncOperationsClient(target, **settings) as client:
        yield client


def live_heap_items(scheduler: BatchScheduler) -> tuple[list[Entry], list[Ticket]]:
    """The heap's live items: operations queued on their own, and swept scopes' next rounds."""
    entries: list[Entry] = []
    tickets: list[Ticket] = []
    for _, seq, item in scheduler._heap:
        if item.seq == seq and item.state == QUEUED:
            if isinstance(item, Ticket):
                tickets.append(item)
            else:
                entries.append(item)
    return entries, tickets


async def rounds_of(server: Server, count: int, task: asyncio.Task[Any]) -> bool:
    """Until the server has answered ``count`` more listings; ``False`` if ``task`` ended first."""
    target = server.calls["ListOperations"] + count
    while server.calls["ListOperations"] < target:
        if task.done():
            return False
        await asyncio.sleep(0.01)
    return True


async def test_a_swept_scope_is_one_heap_item_and_its_operations_are_updated_in_place() -> None:
    server = Server()
    names = [
        server.add(fs_name(location, index), 3600) for location in ("us-east1", "europe-west1") for index in range(200)
    ]
    async with serving(server) as target, client_for(target) as client:
        timeout = 3.0

        async def wait() -> None:
            async for _ in client.as_completed(names, timeout=timeout):
                pass

        started = time.monotonic()
        task = asyncio.create_task(wait())
        scheduler = client._batch_scheduler()
        await rounds_of(server, 6, task)
        peaks: list[int] = []
        for _ in range(5):
            if not await rounds_of(server, 2, task):
                break
            entries, tickets = live_heap_items(scheduler)
            peaks.append(len(entries))
            assert len(tickets) <= 2
        with pytest.raises(BatchTimeoutError) as caught:
            await task
        ended = time.monotonic()

    # Between rounds the heap holds the two scopes' next rounds and the few operations
    # spot checked (their own GetOperation), never the 400 operations one by one.
    assert peaks and max(peaks) <= 40, peaks
    # The deadline fired on time for swept operations (a loaded machine may be late, not early).
    assert timeout <= ended - started <= timeout + 2.0
    # Every operation is reported running with the state its last listing showed (updated in place).
    pending = {operation.name: operation.raw for operation in caught.value.pending}
    assert sorted(pending) == sorted(names)
    for pb in pending.values():
        seen = wrappers_pb2.StringValue()
        assert not pb.done and pb.metadata.Unpack(seen)
        assert float(seen.value.removeprefix("seen at ")) >= started + 0.5


async def test_an_unchanged_listed_state_keeps_its_bytes() -> None:
    """The emulator's Financial Services metadata does not change while an operation runs."""
    with Emulator() as emu:
        target = emu.target
        async with grpc.aio.insecure_channel(target) as channel:
            aml = fs_grpc.AMLStub(channel)
            names = []
            for index in range(30):
                request = fs.CreateInstanceRequest(parent="projects/p/locations/us-east1", instance_id=f"i-{index}")
                operation = await aml.CreateInstance(request, metadata=[(DURATION_HEADER, "3600")])
                names.append(operation.name)
        async with client_for(target) as client:
            task = asyncio.create_task(client.wait_all(names, timeout=30))
            scheduler = client._batch_scheduler()
            assert scheduler._sweeper is not None
            scope = scheduler._sweeper.scope_of(names[0])
            assert scope is not None
            while scope.table.rounds < 2 and not task.done():
                await asyncio.sleep(0.01)
            before = {name: (entry.joined, entry.last_seen) for name, entry in scope.table.members.items()}
            rounds = scope.table.rounds
            while scope.table.rounds < rounds + 3 and not task.done():
                await asyncio.sleep(0.01)
            after = {name: (entry.joined, entry.last_seen) for name, entry in scope.table.members.items()}
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # Those that stayed in the table all along (not spot checked: those left it for their GetOperation).
    kept = [name for name in before.keys() & after.keys() if before[name][0] == after[name][0] and before[name][1]]
    assert len(kept) >= 20
    assert all(after[name][1] == before[name][1] for name in kept)
    stored_again = [name for name in kept if after[name][1] is not before[name][1]]
    assert not stored_again, (len(stored_again), len(kept))  # the same bytes object: not stored again


async def test_a_closed_waiter_leaves_its_scope_table_and_the_other_carries_on() -> None:
    server = Server()
    first = [server.add(fs_name("us-west1", index), 3600) for index in range(100)]
    second = [server.add(fs_name("us-west1", index), 1.5 + index / 100) for index in range(100, 200)]
    async with serving(server) as target, client_for(target) as client:

        async def consume(names: list[str], into: list[str]) -> None:
            async for operation in client.as_completed(names, timeout=30):
                into.append(operation.name)

        got_first: list[str] = []
        got_second: list[str] = []
        closing = asyncio.create_task(consume(first, got_first))
        carrying_on = asyncio.create_task(consume(second, got_second))
        assert await rounds_of(server, 4, closing)
        closing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await closing
        scheduler = client._batch_scheduler()
        assert scheduler._sweeper is not None
        scope = scheduler._sweeper.scope_of(first[0])
        assert scope is not None
        waiters = {entry.waiter for entry in scheduler.sweeping} | set(scope.table.waiters)
        assert len(waiters) <= 1  # only the second waiter's operations are swept
        assert not set(scope.table.members) & set(first)
        entries, _ = live_heap_items(scheduler)
        assert not {entry.name for entry in entries} & set(first)
        await carrying_on

    assert got_first == [] and sorted(got_second) == sorted(second)


async def test_two_waiters_on_the_same_operations_are_each_told_once() -> None:
    server = Server()
    names = [server.add(fs_name("asia-east1", index), 0.2 + index / 100) for index in range(60)]
    async with serving(server) as target, client_for(target) as client:

        async def consume() -> list[str]:
            return [operation.name async for operation in client.as_completed(names, timeout=30)]

        one, other = await asyncio.gather(consume(), consume())

    assert sorted(one) == sorted(names) and sorted(other) == sorted(names)


async def test_rounds_come_further_apart_as_the_policy_says() -> None:
    server = Server()
    names = [server.add(fs_name("us-east4", index), 3.0) for index in range(100)]
    growing = PollPolicy(initial=0.05, multiplier=2.0, maximum=0.4, jitter=0.0)
    async with serving(server) as target, client_for(target, poll_policy=growing) as client:
        results = await client.wait_all(names, timeout=30)

    assert all(result.done for result in results)
    running = [request for request in server.list_requests if request.filter == "done=false"]
    # Delays of 0.05, 0.1, 0.2, then 0.4 s (each round brought forward by at most half a
    # delay): at most about 14 rounds in 3 s, where 50 ms rounds would make 60.
    assert 3 <= len(running) <= 16


def test_scopes_whose_rounds_started_together_are_next_due_together() -> None:
    # Two scopes listed at the same moment, one listing taking longer: both are next due at
    # the same point of the grid, round after round (one wake-up for both), and no round
    # comes later than a delay after the last one started, nor earlier than half a delay.
    policy = PollPolicy(initial=1.0, multiplier=1.0, maximum=1.0, jitter=0.0)
    rng = random.Random(7)
    tables = []
    for index in range(2):
        table = ScopeTable(scope=None)
        entry = Entry(object(), fs_name("us-east1" if index else "europe-west1", 0), index, policy)  # type: ignore[arg-type]
        table.track(entry)
        assert table.join(entry)
        tables.append(table)
    started = 1000.0
    for _ in range(50):
        dues = [table.next_due(started, rng.uniform(0.0, 0.012), rng) for table in tables]
        assert dues[0] == dues[1]
        assert started + 0.5 <= dues[0] <= started + 1.0
        started = dues[0]
