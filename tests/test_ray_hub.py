"""The cluster waiter's hub on its own (no Ray running): calls share tracking, outcomes are kept, idle names stop.

The hub is what the actor runs; here it runs on the test's event loop against the emulator,
whose GetOperation calls are counted per name.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from counting import GetCounter
from timed_servicer import Server, serving

from lro_grpc import AsyncOperationsClient
from lro_grpc.emulator import Emulator
from lro_grpc.policies import PollPolicy

pytest.importorskip("ray")
from lro_grpc.ray._hub import Chunk, WaitHub  # the package imports Ray

POLL = PollPolicy(initial=0.05, multiplier=1.0, maximum=0.05, jitter=0.0)


@pytest.fixture
def counter(monkeypatch: pytest.MonkeyPatch) -> GetCounter:
    counting = GetCounter()
    counting.install(monkeypatch)
    return counting


async def collect(stream: AsyncIterator[Chunk]) -> tuple[list[str], list[str] | None]:
    names: list[str] = []
    timed_out = None
    async for chunk in stream:
        names.extend(name for name, _ in chunk.outcomes)
        timed_out = chunk.timed_out
    return names, timed_out


async def test_two_calls_on_overlapping_names_track_each_name_once(counter: GetCounter) -> None:
    with Emulator(speed=0) as emu:
        names = [emu.start_operation("projects/p/locations/us-east1", duration=10) for _ in range(6)]
        hub = WaitHub(lambda: AsyncOperationsClient(emu.target, batch_sweep=False, poll_policy=POLL))
        try:
            first = asyncio.ensure_future(collect(hub.stream(names[:4], timeout=30, poll_policy=None)))
            second = asyncio.ensure_future(collect(hub.stream(names[2:], timeout=30, poll_policy=None)))
            await asyncio.sleep(0.5)
            assert hub.stats().pending == 6 and hub.stats().shared == 2
            emu.advance(10)
            (got_first, _), (got_second, _) = await asyncio.gather(first, second)
        finally:
            await hub.aclose()
    assert sorted(got_first) == sorted(names[:4]) and sorted(got_second) == sorted(names[2:])
    overlap = [counter.by_name[name] for name in names[2:4]]
    alone = [counter.by_name[name] for name in names[:2] + names[4:]]
    assert max(overlap) <= max(alone) + 1, (overlap, alone)


async def test_outcomes_that_come_while_the_caller_holds_a_chunk_end_the_same_stream() -> None:
    # The last outcomes may come while the stream is suspended at a yield (Ray reads it at its own pace):
    # they are the call's last chunk, not left behind for the caller to ask again in a second call.
    with Emulator(speed=0) as emu:
        first = emu.start_operation("projects/p/locations/us-east1", duration=10)
        last = emu.start_operation("projects/p/locations/us-east1", duration=20)
        hub = WaitHub(lambda: AsyncOperationsClient(emu.target, batch_sweep=False, poll_policy=POLL))
        stream = hub.stream([first, last], timeout=30, poll_policy=None)
        try:
            pending = asyncio.ensure_future(stream.__anext__())
            await asyncio.sleep(0.2)
            emu.advance(10)
            chunk = await asyncio.wait_for(pending, 10)
            assert [name for name, _ in chunk.outcomes] == [first]
            emu.advance(10)  # the stream is held at its yield meanwhile
            deadline = time.monotonic() + 10
            while hub.stats().pending:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)
            chunk = await asyncio.wait_for(stream.__anext__(), 10)
            assert [name for name, _ in chunk.outcomes] == [last]
            with pytest.raises(StopAsyncIteration):
                await stream.__anext__()
            assert hub.stats().calls == 1
        finally:
            await stream.aclose()
            await hub.aclose()


async def test_a_later_call_gets_a_kept_outcome_without_an_rpc(counter: GetCounter) -> None:
    with Emulator(speed=1) as emu:
        name = emu.start_operation("projects/p/locations/us-east1", duration=0)
        hub = WaitHub(lambda: AsyncOperationsClient(emu.target, poll_policy=POLL))
        try:
            assert await collect(hub.stream([name], timeout=30, poll_policy=None)) == ([name], None)
            polls = counter.total()
            assert await collect(hub.stream([name, name], timeout=30, poll_policy=None)) == ([name], None)
        finally:
            await hub.aclose()
    assert counter.total() == polls


async def test_names_no_call_waits_for_are_no_longer_polled(counter: GetCounter) -> None:
    with Emulator(speed=0) as emu:
        stuck = emu.start_operation("projects/p/locations/us-east1", duration=3600)
        hub = WaitHub(lambda: AsyncOperationsClient(emu.target, batch_sweep=False, poll_policy=POLL))
        try:
            assert await collect(hub.stream([stuck], timeout=0.3, poll_policy=None)) == ([], [stuck])
            assert hub.stats().pending == 0 and hub.stats().active_calls == 0
            await asyncio.sleep(0.1)  # a look in flight when the call ended may still land
            polls = counter.by_name[stuck]
            await asyncio.sleep(0.5)  # ten poll intervals
            assert counter.by_name[stuck] == polls
            # A new call tracks it again.
            emu.advance(3600)
            assert await collect(hub.stream([stuck], timeout=30, poll_policy=None)) == ([stuck], None)
        finally:
            await hub.aclose()


async def test_a_call_that_comes_while_its_scope_is_listed_costs_the_next_listing_not_a_get_per_name() -> None:
    # Callers of a cluster waiter come one after another (seconds apart on a loaded cluster); the names of
    # one that comes while the scope is being listed for another are held for that listing, then listed.
    server = Server()
    server.listings.gate = asyncio.Event()
    scope = "projects/p/locations/us-east1/operations"
    first = [server.add(f"{scope}/first-{index}", 3600) for index in range(20)]
    second = [server.add(f"{scope}/second-{index}", 3600) for index in range(20)]
    slow = PollPolicy(initial=1.0, multiplier=1.0, maximum=1.0, jitter=0.0)
    async with serving(server) as target:
        hub = WaitHub(lambda: AsyncOperationsClient(target, poll_policy=slow))
        try:
            calls = [asyncio.ensure_future(collect(hub.stream(first, timeout=60, poll_policy=None)))]
            await asyncio.wait_for(server.listings.waiting.wait(), 10)
            calls.append(asyncio.ensure_future(collect(hub.stream(second, timeout=60, poll_policy=None))))
            await asyncio.sleep(0.3)
            assert sum(server.gets.get(name, 0) for name in second) == 0
            server.listings.gate.set()
            deadline = time.monotonic() + 10
            while server.calls["ListOperations"] < 2:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.01)
            assert sum(server.gets.get(name, 0) for name in second) <= 1  # a spot check at most
            for name in first + second:
                server.ops[name].finish_at = time.monotonic()
            (got_first, _), (got_second, _) = await asyncio.gather(*calls)
        finally:
            await hub.aclose()
    assert sorted(got_first) == sorted(first) and sorted(got_second) == sorted(second)
