"""The batch waiter (issue 4): behaviour over real gRPC on loopback.

An in-test google.longrunning.Operations servicer scripts each operation (how
many polls it answers ``done=False``, how it ends) and observes the scheduler
from the server side: arrival time of every GetOperation, the most calls in
progress at once, RESOURCE_EXHAUSTED refusals. The same logic serves a
grpc.aio server (async tests) and a threaded grpc server (sync tests). The
last tests run thousands of operations against the project's emulator.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import threading
import time
from collections.abc import AsyncIterator, Collection, Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from google.longrunning import operations_pb2
from google.protobuf import any_pb2, wrappers_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from sent_calls import SentCalls, assert_calls_per_second
from servicer import DELIVERY_ALLOWANCE, LATE_UNDER_LOAD

from lro_grpc._batch import (
    SYNTHETIC_ERROR_DOMAIN,
    BatchProgress,
    BatchSource,
    BatchTimeoutError,
    BatchWaiter,
    SyncBatchRunner,
    as_completed,
    coalesce,
    wait_all,
)
from lro_grpc._core import RpcFailure
from lro_grpc._generated import financialservices_v1_pb2 as fs
from lro_grpc._generated import financialservices_v1_pb2_grpc as fs_grpc
from lro_grpc._generated import operations_pb2_grpc
from lro_grpc.aio import AsyncOperationsClient
from lro_grpc.client import OperationsClient
from lro_grpc.emulator import DURATION_HEADER, OUTCOME_HEADER, Emulator, Faults
from lro_grpc.errors import InvalidNameError
from lro_grpc.policies import Deadline, PollPolicy

FAST = PollPolicy(initial=0.005, multiplier=1.0, maximum=0.005, jitter=0.0)
"""Poll every 5 ms: tests run many poll rounds quickly."""


@dataclasses.dataclass
class Script:
    """How one operation behaves: ``polls_before_done`` ``done=False`` answers, then ``outcome``."""

    polls_before_done: int = 0
    outcome: str = "success"  # success | fail | cancelled | never
    latency: float = 0.0  # seconds each GetOperation of this operation is held


@dataclasses.dataclass
class Refusal:
    """Answer the next ``count`` calls with RESOURCE_EXHAUSTED (RetryInfo ``delay`` if not None)."""

    count: int
    delay: float | None


class Behaviour:
    """The shared, thread-safe logic of the test servicer."""

    def __init__(self) -> None:
        self.scripts: dict[str, Script] = {}
        self.polls: dict[str, int] = {}
        self.calls: list[tuple[float, str]] = []
        self.refused_at: list[float] = []
        self.refusals: list[Refusal] = []
        self.transient: dict[str, int] = {}  # name -> UNAVAILABLE answers still to give
        self.denied: set[str] = set()
        self.deadlines: dict[str, list[float | None]] = {}  # name -> each call's deadline (async servicer)
        self.latency = 0.0
        self.active = 0
        self.max_active = 0
        self._lock = threading.Lock()

    def script(self, name: str, script: Script | None = None) -> str:
        self.scripts[name] = script or Script()
        return name

    def enter(self, name: str) -> tuple[float, grpc.StatusCode | None, str, tuple[tuple[str, bytes], ...]]:
        """Record a call; returns (hold seconds, abort code or None, details, trailers)."""
        with self._lock:
            now = time.monotonic()
            self.calls.append((now, name))
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            script = self.scripts.get(name)
            hold = self.latency + (script.latency if script else 0.0)
            if self.refusals:
                refusal = self.refusals[0]
                refusal.count -= 1
                if refusal.count <= 0:
                    self.refusals.pop(0)
                self.refused_at.append(now)
                trailers: tuple[tuple[str, bytes], ...] = ()
                if refusal.delay is not None:
                    info = error_details_pb2.RetryInfo()
                    info.retry_delay.FromNanoseconds(int(refusal.delay * 1e9))
                    status = status_pb2.Status(code=code_pb2.RESOURCE_EXHAUSTED, message="quota")
                    status.details.add().Pack(info)
                    trailers = (("grpc-status-details-bin", status.SerializeToString()),)
                return 0.0, grpc.StatusCode.RESOURCE_EXHAUSTED, "quota exceeded", trailers
            if self.transient.get(name, 0) > 0:
                self.transient[name] -= 1
                return 0.0, grpc.StatusCode.UNAVAILABLE, "try again", ()
            if name in self.denied:
                return 0.0, grpc.StatusCode.PERMISSION_DENIED, "no access", ()
            if script is None:
                return hold, grpc.StatusCode.NOT_FOUND, f"operation {name} not found", ()
            return hold, None, "", ()

    def leave(self) -> None:
        with self._lock:
            self.active -= 1

    def answer(self, name: str) -> operations_pb2.Operation:
        with self._lock:
            script = self.scripts[name]
            seen = self.polls.get(name, 0)
            self.polls[name] = seen + 1
        operation = operations_pb2.Operation(name=name)
        # The metadata says how many polls the server has answered: tests see "last seen state" in it.
        operation.metadata.Pack(wrappers_pb2.Int64Value(value=seen + 1))
        if script.outcome == "never" or seen < script.polls_before_done:
            return operation
        operation.done = True
        if script.outcome == "success":
            operation.response.Pack(wrappers_pb2.StringValue(value=f"result of {name}"))
        elif script.outcome == "fail":
            operation.error.CopyFrom(status_pb2.Status(code=code_pb2.FAILED_PRECONDITION, message="it broke"))
        elif script.outcome == "cancelled":
            operation.error.CopyFrom(status_pb2.Status(code=code_pb2.CANCELLED, message="cancelled"))
        else:
            raise AssertionError(f"unknown outcome {script.outcome!r}")
        return operation

    def call_times(self, name: str | None = None) -> list[float]:
        return [at for at, called in self.calls if name is None or called == name]


class AsyncServicer(operations_pb2_grpc.OperationsServicer):  # type: ignore[misc]
    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour

    async def GetOperation(
        self, request: operations_pb2.GetOperationRequest, context: grpc.aio.ServicerContext
    ) -> operations_pb2.Operation:
        now = time.monotonic()
        remaining = context.time_remaining()
        deadline = None if remaining is None else now + remaining
        self.behaviour.deadlines.setdefault(request.name, []).append(deadline)
        hold, code, details, trailers = self.behaviour.enter(request.name)
        try:
            if hold:
                await asyncio.sleep(hold)
            if code is not None:
                await context.abort(code, details, trailing_metadata=trailers)
            return self.behaviour.answer(request.name)
        finally:
            self.behaviour.leave()


class SyncServicer(operations_pb2_grpc.OperationsServicer):  # type: ignore[misc]
    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour

    def GetOperation(
        self, request: operations_pb2.GetOperationRequest, context: grpc.ServicerContext
    ) -> operations_pb2.Operation:
        hold, code, details, trailers = self.behaviour.enter(request.name)
        try:
            if hold:
                time.sleep(hold)
            if code is not None:
                context.set_trailing_metadata(trailers)
                context.abort(code, details)
            return self.behaviour.answer(request.name)
        finally:
            self.behaviour.leave()


@contextlib.asynccontextmanager
async def async_server(behaviour: Behaviour) -> AsyncIterator[str]:
    server = grpc.aio.server()
    operations_pb2_grpc.add_OperationsServicer_to_server(AsyncServicer(behaviour), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(None)


@contextlib.contextmanager
def sync_server(behaviour: Behaviour) -> Iterator[str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    operations_pb2_grpc.add_OperationsServicer_to_server(SyncServicer(behaviour), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(None).wait()


class StubSource:
    """A batch source over a raw grpc.aio stub: handles are the raw Operation messages.

    Its ``fetch`` returns a failed call as an ``RpcFailure`` value, as the real
    client's does (see ``lro_grpc._batch._ports.Fetch``).
    """

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.stub = operations_pb2_grpc.OperationsStub(channel)

    async def fetch(
        self, name: str, *, deadline: Deadline, rpc_timeout: float | None
    ) -> operations_pb2.Operation | RpcFailure:
        timeout = deadline.clip(rpc_timeout, time.monotonic())
        try:
            response: operations_pb2.Operation = await self.stub.GetOperation(
                operations_pb2.GetOperationRequest(name=name), timeout=timeout
            )
        except grpc.aio.AioRpcError as error:
            return RpcFailure.from_grpc_error(error)
        return response

    def _batch_source(self) -> BatchSource[operations_pb2.Operation]:
        return BatchSource(fetch=self.fetch, wrap=lambda pb: pb)


@contextlib.asynccontextmanager
async def open_stub_source(target: str) -> AsyncIterator[StubSource]:
    async with grpc.aio.insecure_channel(target) as channel:
        yield StubSource(channel)


def unpack_int(any_value: any_pb2.Any) -> int:
    value = wrappers_pb2.Int64Value()
    assert any_value.Unpack(value)
    return int(value.value)


# --------------------------------------------------------------------------- fixtures and helpers


@dataclasses.dataclass
class Served:
    behaviour: Behaviour
    channel: grpc.aio.Channel
    sent: SentCalls  # every call the channel started, on the client's side

    def source(self) -> StubSource:
        return StubSource(self.channel)


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    behaviour = Behaviour()
    sent = SentCalls()
    async with async_server(behaviour) as target, grpc.aio.insecure_channel(target, interceptors=[sent]) as channel:
        yield Served(behaviour, channel, sent)


def scheduler_tasks() -> list[asyncio.Task[object]]:
    return [task for task in asyncio.all_tasks() if task.get_name().startswith("lro-grpc-batch")]


def error_info(pb: operations_pb2.Operation) -> error_details_pb2.ErrorInfo:
    info = error_details_pb2.ErrorInfo()
    assert len(pb.error.details) == 1
    assert pb.error.details[0].Unpack(info)
    return info


# --------------------------------------------------------------------------- reporting


async def test_reports_each_operation_once_as_soon_as_it_finishes(served: Served) -> None:
    behaviour = served.behaviour
    names = [behaviour.script(f"operations/op-{i}", Script(polls_before_done=i % 4)) for i in range(20)]

    seen = [op.name async for op in as_completed(served.source(), names, poll_policy=FAST, timeout=10)]

    assert sorted(seen) == sorted(names)
    # Operations done at the first poll are all reported before any that needed four polls.
    last_quick = max(seen.index(name) for name in names if behaviour.scripts[name].polls_before_done == 0)
    first_slow = min(seen.index(name) for name in names if behaviour.scripts[name].polls_before_done == 3)
    assert last_quick < first_slow
    # One GetOperation per poll, none after an operation was seen done.
    assert behaviour.polls == {name: behaviour.scripts[name].polls_before_done + 1 for name in names}
    assert scheduler_tasks() == []


async def test_wait_all_returns_input_order_and_polls_a_duplicate_once(served: Served) -> None:
    behaviour = served.behaviour
    first = behaviour.script("operations/first", Script(polls_before_done=3))
    second = behaviour.script("operations/second")
    third = behaviour.script("operations/third", Script(polls_before_done=1))

    results = await wait_all(served.source(), [first, second, first, third], poll_policy=FAST, timeout=10)

    assert [op.name for op in results] == [first, second, first, third]
    assert results[0] is results[2]
    assert all(op.done for op in results)
    assert behaviour.polls[first] == 4


async def test_failed_cancelled_not_found_and_denied_are_outcomes(served: Served) -> None:
    behaviour = served.behaviour
    ok = behaviour.script("operations/ok", Script(polls_before_done=1))
    failed = behaviour.script("operations/failed", Script(polls_before_done=1, outcome="fail"))
    cancelled = behaviour.script("operations/cancelled", Script(outcome="cancelled"))
    missing = "operations/missing"
    denied = behaviour.script("operations/denied")
    behaviour.denied.add(denied)
    flaky = behaviour.script("operations/flaky")
    behaviour.transient[flaky] = 2  # UNAVAILABLE twice: polled again, not failed
    snapshots: list[BatchProgress] = []

    results = await wait_all(
        served.source(),
        [ok, failed, cancelled, missing, denied, flaky],
        poll_policy=FAST,
        timeout=10,
        progress=snapshots.append,
    )

    by_name = {op.name: op for op in results}
    assert all(op.done for op in results)
    assert by_name[ok].HasField("response")
    assert by_name[failed].error.code == code_pb2.FAILED_PRECONDITION
    assert by_name[cancelled].error.code == code_pb2.CANCELLED
    assert by_name[flaky].HasField("response")
    assert len(behaviour.call_times(flaky)) == 3
    assert by_name[missing].error.code == code_pb2.NOT_FOUND
    assert "record expired" in by_name[missing].error.message
    assert error_info(by_name[missing]).domain == SYNTHETIC_ERROR_DOMAIN
    assert by_name[denied].error.code == code_pb2.PERMISSION_DENIED
    assert error_info(by_name[denied]).reason == "PERMISSION_DENIED"
    # Server-side errors carry no synthetic marker.
    assert len(by_name[failed].error.details) == 0
    assert snapshots[0] == BatchProgress(done=0, failed=0, pending=6, timed_out=0)
    assert snapshots[-1] == BatchProgress(done=6, failed=4, pending=0, timed_out=0)
    assert snapshots[-1].succeeded == 2 and snapshots[-1].total == 6
    assert [snapshot.done for snapshot in snapshots] == sorted(snapshot.done for snapshot in snapshots)


async def test_progress_is_reported_after_each_operation(served: Served) -> None:
    behaviour = served.behaviour
    names = [behaviour.script(f"operations/p{i}", Script(polls_before_done=i)) for i in range(4)]
    snapshots: list[BatchProgress] = []

    async for _ in as_completed(served.source(), names, poll_policy=FAST, progress=snapshots.append):
        pass

    assert snapshots == [
        BatchProgress(done=0, failed=0, pending=4),
        BatchProgress(done=1, failed=0, pending=3),
        BatchProgress(done=2, failed=0, pending=2),
        BatchProgress(done=3, failed=0, pending=1),
        BatchProgress(done=4, failed=0, pending=0),
    ]


# --------------------------------------------------------------------------- one scheduler per client


@contextlib.asynccontextmanager
async def served_client(**options: Any) -> AsyncIterator[tuple[Behaviour, AsyncOperationsClient]]:
    """The test servicer and a real AsyncOperationsClient on it (batch limits and other options as given)."""
    behaviour = Behaviour()
    async with async_server(behaviour) as target, AsyncOperationsClient(target, **options) as client:
        yield behaviour, client


async def test_batches_of_one_client_share_its_calls_per_second_budget() -> None:
    qps = 100.0
    sent = SentCalls()
    async with served_client(batch_qps=qps, interceptors=[sent]) as (behaviour, client):
        first = [behaviour.script(f"operations/one{i}", Script(polls_before_done=1)) for i in range(20)]
        second = [behaviour.script(f"operations/two{i}", Script(polls_before_done=1)) for i in range(20)]

        await asyncio.gather(
            client.wait_all(first, poll_policy=FAST, timeout=20),
            client.wait_all(second, poll_policy=FAST, timeout=20),
        )

    times = behaviour.call_times()
    assert len(times) == 80 and len(sent.times("GetOperation")) == 80
    both = {name.removeprefix("operations/")[:3] for _, name in behaviour.calls[:40]}
    assert both == {"one", "two"}  # the two batches ran at the same time
    # Counted where the client sends them (see sent_calls.py: arrivals at a server on the
    # same loop bunch up under load); one budget for both batches, no burst.
    assert_calls_per_second(sent.times(), qps, windows=(0.05, 0.2, 0.5))
    # Two budgets of 100/s would have taken half as long (at the server: delivery delays only lengthen it).
    assert times[-1] - times[0] >= 0.9 * (len(times) - 1) / qps


async def test_batches_of_one_client_share_its_bound_on_rpcs_in_flight() -> None:
    async with served_client(batch_max_in_flight=3) as (behaviour, client):
        behaviour.latency = 0.01
        batches = [
            [behaviour.script(f"operations/b{batch}-{i}", Script(polls_before_done=1)) for i in range(10)]
            for batch in range(3)
        ]

        await asyncio.gather(*(client.wait_all(names, poll_policy=FAST, timeout=20) for names in batches))

    assert behaviour.max_active == 3
    assert len(behaviour.calls) == 60


async def test_resource_exhausted_pauses_every_batch_of_the_client() -> None:
    async with served_client(batch_max_in_flight=2) as (behaviour, client):
        first = [behaviour.script(f"operations/one{i}", Script(latency=0.1)) for i in range(5)]
        second = [behaviour.script(f"operations/two{i}", Script(latency=0.1)) for i in range(5)]
        behaviour.refusals.append(Refusal(count=1, delay=0.6))

        await asyncio.gather(
            client.wait_all(first, poll_policy=FAST, timeout=10),
            client.wait_all(second, poll_policy=FAST, timeout=10),
        )

    (refused_at,) = behaviour.refused_at
    calls = behaviour.call_times()
    assert calls[0] == refused_at and len(calls) == 11
    # The call sent with the refused one was in flight already; after it, nobody
    # (of either batch) is polled before the server's delay has passed.
    assert min(calls[2:]) >= refused_at + 0.6


async def test_each_batch_has_its_own_deadline_on_the_shared_scheduler() -> None:
    sent = SentCalls()
    async with served_client(interceptors=[sent]) as (behaviour, client):
        stuck = behaviour.script("operations/stuck", Script(outcome="never"))
        slow = [behaviour.script(f"operations/slow{i}", Script(polls_before_done=60)) for i in range(3)]

        raised_at: list[float] = []

        async def short() -> BatchTimeoutError:
            with pytest.raises(BatchTimeoutError) as caught:
                await client.wait_all([stuck], poll_policy=FAST, timeout=0.2)
            raised_at.append(time.monotonic())
            return caught.value

        started = time.monotonic()
        error, results = await asyncio.gather(short(), client.wait_all(slow, poll_policy=FAST, timeout=20))
        assert client._batch_scheduler().waiters == 0

    assert error.pending_names == [stuck] and error.timeout == 0.2
    assert raised_at[0] - started >= 0.2
    assert all(op.done and op.error is None for op in results)
    # Counted where the client sends them: the short batch was polled until its deadline and not
    # after it, while the other batch went on polling on the same scheduler.
    stuck_looks = sent.times("GetOperation", name=stuck)
    slow_looks = sent.times("GetOperation", name=slow[0])
    assert stuck_looks and stuck_looks[-1] <= raised_at[0] < slow_looks[-1]
    assert len(behaviour.call_times(slow[0])) == 61


async def test_breaking_out_of_one_batch_leaves_the_others_running() -> None:
    sent = SentCalls()
    async with served_client(interceptors=[sent]) as (behaviour, client):
        quick = [behaviour.script(f"operations/quick{i}", Script(polls_before_done=i + 3)) for i in range(3)]
        forever = behaviour.script("operations/forever", Script(outcome="never"))
        others = [behaviour.script(f"operations/other{i}", Script(polls_before_done=20)) for i in range(3)]

        async def first_only() -> None:
            async for _ in client.as_completed([*quick, forever], poll_policy=FAST):
                break

        results_task = asyncio.ensure_future(client.wait_all(others, poll_policy=FAST, timeout=20))
        await first_only()
        # Breaking out of an ``async for`` leaves the generator to the event loop's finalizer, which
        # closes it a loop iteration or two later (Python's rule for async generators): let it.
        for _ in range(5):
            await asyncio.sleep(0)
        closed_at = time.monotonic()
        results = await results_task
        await asyncio.sleep(0.05)
        assert scheduler_tasks() == []  # no batch left: the scheduler has stopped
        assert [op.name async for op in client.as_completed(quick, poll_policy=FAST)]  # and starts again

    assert all(op.done for op in results)
    assert len(behaviour.call_times(forever)) >= 3
    # Counted where the client sends them (a request already on the wire at the break may land
    # at the server after it, later still on a loaded machine): nothing for the abandoned batch
    # after the break, while the other batch went on.
    assert [at for at in sent.times("GetOperation", name=forever) if at > closed_at] == []
    assert max(sent.times("GetOperation", name=others[0])) > closed_at
    assert behaviour.polls["operations/other0"] == 21


async def test_closing_the_client_ends_its_batches() -> None:
    behaviour = Behaviour()
    forever = behaviour.script("operations/forever", Script(outcome="never"))
    async with async_server(behaviour) as target:
        client = AsyncOperationsClient(target)
        waiter = BatchWaiter(client, [forever], poll_policy=FAST)

        async def consume() -> None:
            async for _ in waiter:
                pass

        task = asyncio.ensure_future(consume())
        await asyncio.sleep(0.05)
        await client.close()
        with pytest.raises(RuntimeError, match="closed while waiting"):
            await task
        assert scheduler_tasks() == []
        with pytest.raises(RuntimeError, match="closed"):
            BatchWaiter(client, [forever])


async def test_explicit_limits_give_a_waiter_a_scheduler_of_its_own() -> None:
    async with served_client(batch_qps=10) as (_, client):
        shared = BatchWaiter(client, ["operations/a"])
        own = BatchWaiter(client, ["operations/a"], qps=1000)
        assert shared.scheduler is client._batch_scheduler()
        assert shared.scheduler.qps == 10
        assert own.scheduler is not shared.scheduler and own.scheduler.qps == 1000
    with pytest.raises(ValueError, match="batch_qps"):
        AsyncOperationsClient("127.0.0.1:1", batch_qps=-1)
    with pytest.raises(TypeError, match="batch_max_in_flight"):
        AsyncOperationsClient("127.0.0.1:1", batch_max_in_flight=2.5)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- scheduling limits


@pytest.mark.parametrize("max_in_flight", [1, 4])
async def test_rpcs_in_flight_never_exceed_the_bound(served: Served, max_in_flight: int) -> None:
    behaviour = served.behaviour
    behaviour.latency = 0.01
    names = [behaviour.script(f"operations/b{i}", Script(polls_before_done=1)) for i in range(30)]

    await wait_all(served.source(), names, poll_policy=FAST, max_in_flight=max_in_flight, timeout=20)

    assert behaviour.max_active == max_in_flight
    assert len(behaviour.calls) == 60


async def test_calls_per_second_budget_is_shared_by_all_operations(served: Served) -> None:
    behaviour = served.behaviour
    names = [behaviour.script(f"operations/q{i}", Script(polls_before_done=1)) for i in range(40)]
    qps = 100.0

    await wait_all(served.source(), names, poll_policy=FAST, qps=qps, timeout=20)

    times = behaviour.call_times()
    assert len(times) == 80 and len(served.sent.times()) == 80
    # A bucket of one token: any window of w seconds holds at most 1 + qps * w calls, counted
    # where the client sends them (see sent_calls.py).
    assert_calls_per_second(served.sent.times(), qps, windows=(0.05, 0.2, 0.5))
    assert times[-1] - times[0] >= 0.9 * (len(times) - 1) / qps


async def test_nothing_starves_with_many_operations_and_one_slot(served: Served) -> None:
    behaviour = served.behaviour
    names = [behaviour.script(f"operations/s{i:03}", Script(outcome="never")) for i in range(60)]

    with pytest.raises(BatchTimeoutError):
        # (1.5 s: two rounds of 60 calls one at a time fit on a loaded machine too; 0.5 s did not)
        await wait_all(served.source(), names, poll_policy=FAST, max_in_flight=1, timeout=1.5)

    counts = [behaviour.polls.get(name, 0) for name in names]
    assert min(counts) >= 2
    assert max(counts) - min(counts) <= 1  # round robin: earliest due first


async def test_resource_exhausted_pauses_every_operation_for_the_retry_info_delay(served: Served) -> None:
    behaviour = served.behaviour
    # Answered calls are held a while, the refusal is immediate: the client learns of the
    # refusal while the other first calls are still in flight.
    names = [behaviour.script(f"operations/r{i}", Script(latency=0.15)) for i in range(20)]
    # Longer than the global backoff used without RetryInfo (at most 1 s at first): honoured, not guessed.
    behaviour.refusals.append(Refusal(count=1, delay=1.1))

    results = await wait_all(served.source(), names, poll_policy=FAST, max_in_flight=4, timeout=10)

    assert all(op.HasField("response") for op in results)  # the refused operation was polled again
    (refused_at,) = behaviour.refused_at
    calls = behaviour.call_times()
    assert calls[0] == refused_at
    # After the first four calls (sent together), nobody is polled until the server's delay has passed.
    assert len(calls) == 21
    assert min(calls[4:]) >= refused_at + 1.1


async def test_resource_exhausted_without_retry_info_backs_off_globally(served: Served) -> None:
    behaviour = served.behaviour
    names = [behaviour.script(f"operations/g{i}", Script(latency=0.15)) for i in range(10)]
    behaviour.refusals.append(Refusal(count=1, delay=None))

    results = await wait_all(served.source(), names, poll_policy=FAST, max_in_flight=2, timeout=10)

    assert all(op.HasField("response") for op in results)
    (refused_at,) = behaviour.refused_at
    calls = behaviour.call_times()
    assert calls[0] == refused_at and len(calls) == 11
    assert min(calls[2:]) >= refused_at + 0.5  # the first global backoff is 0.5 to 1 s


# --------------------------------------------------------------------------- deadline


async def test_deadline_reports_running_operations_with_their_last_seen_state(served: Served) -> None:
    behaviour = served.behaviour
    quick = behaviour.script("operations/quick")
    slow = behaviour.script("operations/slow", Script(outcome="never"))
    slower = behaviour.script("operations/slower", Script(outcome="never"))
    snapshots: list[BatchProgress] = []
    yielded: list[str] = []
    started = time.monotonic()

    with pytest.raises(BatchTimeoutError) as caught:
        async for op in as_completed(
            served.source(), [slow, quick, slower], poll_policy=FAST, timeout=1.0, progress=snapshots.append
        ):
            yielded.append(op.name)
    elapsed = time.monotonic() - started

    # (1 s: long enough for the quick one's first answer on a loaded machine)
    assert 1.0 <= elapsed <= 1.0 + LATE_UNDER_LOAD  # see LATE_UNDER_LOAD (servicer.py)
    assert yielded == [quick]
    error = caught.value
    assert isinstance(error, TimeoutError)
    assert error.pending_names == [slow, slower]
    assert error.timeout == 1.0
    assert error.results is None
    for pb in error.pending:
        assert not pb.done
        assert 1 <= unpack_int(pb.metadata) <= behaviour.polls[pb.name]
    assert snapshots[-1] == BatchProgress(done=1, failed=0, pending=0, timed_out=2)
    assert scheduler_tasks() == []


async def test_deadline_cuts_the_rpc_in_flight_and_reports_unpolled_operations_by_name(served: Served) -> None:
    behaviour = served.behaviour
    stuck = behaviour.script("operations/stuck", Script(latency=5.0))
    unpolled = behaviour.script("operations/unpolled")
    started = time.monotonic()

    with pytest.raises(BatchTimeoutError) as caught:
        await wait_all(served.source(), [unpolled, stuck, unpolled], max_in_flight=1, timeout=1.0)
    elapsed = time.monotonic() - started

    assert 1.0 <= elapsed <= 1.0 + LATE_UNDER_LOAD  # not the 5 s the server holds the call
    # The call in flight was given no time past the batch's deadline (as sent, and as the server saw it).
    (look,) = served.sent.sent("GetOperation", name=stuck)
    assert look.timeout is not None and look.at + look.timeout <= started + 1.0 + DELIVERY_ALLOWANCE
    (deadline_at,) = behaviour.deadlines[stuck]
    assert deadline_at is not None and deadline_at <= started + 1.0 + DELIVERY_ALLOWANCE
    error = caught.value
    # wait_all: every name's state, in input order (stuck was added... after unpolled; one slot).
    assert error.results is not None
    assert [pb.name for pb in error.results] == [unpolled, stuck, unpolled]
    assert error.results[0].done
    assert error.pending_names == [stuck]
    assert not error.pending[0].HasField("metadata")  # no answer ever arrived: name only


async def test_wait_all_timeout_keeps_finished_results(served: Served) -> None:
    behaviour = served.behaviour
    done = behaviour.script("operations/done-one", Script(polls_before_done=2))
    never = behaviour.script("operations/never", Script(outcome="never"))

    with pytest.raises(BatchTimeoutError) as caught:
        await wait_all(served.source(), [never, done], poll_policy=FAST, timeout=0.2)

    results = caught.value.results
    assert results is not None
    assert [pb.name for pb in results] == [never, done]
    assert not results[0].done and unpack_int(results[0].metadata) >= 1
    assert results[1].done and results[1].HasField("response")


# --------------------------------------------------------------------------- adding, closing


async def test_operations_added_while_iterating_are_reported(served: Served) -> None:
    behaviour = served.behaviour
    first = behaviour.script("operations/first")
    later = [behaviour.script(f"operations/later-{i}", Script(polls_before_done=i)) for i in range(3)]
    waiter = BatchWaiter(served.source(), [first], poll_policy=FAST, timeout=10)
    reported: list[str] = []

    async for op in waiter:
        reported.append(op.name)
        if op.name == first:
            # The last one reported so far: adding now must keep the iteration going.
            assert waiter.add([*later, first, later[0]]) == 3

    assert reported[0] == first
    assert sorted(reported) == sorted([first, *later])
    assert waiter.progress == BatchProgress(done=4, failed=0, pending=0)
    assert behaviour.polls[first] == 1
    with pytest.raises(RuntimeError, match="finished"):
        waiter.add(["operations/too-late"])


async def test_keep_open_waits_for_more_until_input_is_closed(served: Served) -> None:
    behaviour = served.behaviour
    first = behaviour.script("operations/k1")
    second = behaviour.script("operations/k2", Script(polls_before_done=2))
    waiter = BatchWaiter(served.source(), [first], poll_policy=FAST, keep_open=True, timeout=10)

    async def producer() -> None:
        await asyncio.sleep(0.1)
        waiter.add([second], poll_policy=PollPolicy(initial=0.02, multiplier=1, maximum=0.02, jitter=0))
        await asyncio.sleep(0.1)
        waiter.close_input()

    task = asyncio.create_task(producer())
    reported = [op.name async for op in waiter]
    await task

    assert reported == [first, second]


async def test_breaking_out_stops_the_scheduler(served: Served) -> None:
    behaviour = served.behaviour
    names = [behaviour.script(f"operations/x{i}", Script(polls_before_done=i)) for i in range(5)]
    names.append(behaviour.script("operations/forever", Script(outcome="never")))

    async with BatchWaiter(served.source(), names, poll_policy=FAST) as waiter:
        async for _ in waiter:
            break
        assert scheduler_tasks()
    assert scheduler_tasks() == []
    # Counted where the client sends them (a request already on the wire when the scheduler
    # stopped may still reach a loaded server later): no poll is sent after it stopped.
    sent = len(served.sent.calls)
    await asyncio.sleep(0.1)
    assert len(served.sent.calls) == sent


async def test_an_unexpected_client_error_ends_the_batch(served: Served) -> None:
    behaviour = served.behaviour
    good = behaviour.script("operations/good", Script(outcome="never"))

    class Rejecting(StubSource):
        async def fetch(
            self, name: str, *, deadline: Deadline, rpc_timeout: float | None
        ) -> operations_pb2.Operation | RpcFailure:
            if name.endswith("/rejected"):
                raise ValueError(f"malformed operation name {name!r}")
            return await super().fetch(name, deadline=deadline, rpc_timeout=rpc_timeout)

    with pytest.raises(ValueError, match="malformed"):
        await wait_all(Rejecting(served.channel), [good, "operations/rejected"], poll_policy=FAST, timeout=10)
    assert scheduler_tasks() == []


async def test_arguments_are_checked_before_any_rpc(served: Served) -> None:
    source = served.source()
    with pytest.raises(TypeError, match="single str"):
        BatchWaiter(source, "operations/abc")
    with pytest.raises(TypeError, match="42"):
        BatchWaiter(source, [42])  # type: ignore[list-item]
    with pytest.raises(InvalidNameError, match="'operations'"):
        BatchWaiter(source, ["operations/fine", "operations"])
    with pytest.raises(InvalidNameError, match="projects/p/operations/x"):
        BatchWaiter(source).add(["projects/p/operations/x"])
    with pytest.raises(ValueError, match="max_in_flight"):
        BatchWaiter(source, max_in_flight=0)
    with pytest.raises(TypeError, match="max_in_flight"):
        BatchWaiter(source, max_in_flight=True)
    with pytest.raises(ValueError, match="qps"):
        BatchWaiter(source, qps=0)
    with pytest.raises(ValueError, match="timeout"):
        BatchWaiter(source, timeout=-1)
    with pytest.raises(TypeError, match="poll_policy"):
        BatchWaiter(source, poll_policy="fast")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="progress"):
        BatchWaiter(source, progress="print")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="BatchSource"):
        BatchWaiter(object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="single str"):
        await wait_all(source, "operations/abc")
    assert served.behaviour.calls == []


async def test_an_empty_batch_finishes_at_once(served: Served) -> None:
    assert await wait_all(served.source(), []) == []
    assert [op async for op in as_completed(served.source(), [])] == []


def test_poll_times_are_coalesced_within_a_fortieth_of_the_delay() -> None:
    rng = random.Random(7)
    for delay in (0.05, 1.0, 2.0, 5.0, 45.0):
        for _ in range(200):
            due = rng.uniform(0, 10_000)
            assert abs(coalesce(due, delay) - due) <= delay / 40
    # Grids of different delays share points: polls due together start together.
    assert coalesce(100.01, 2.0) == coalesce(100.02, 5.0) == 100.0
    assert coalesce(12.3456, 0.01) == 12.3456  # short delays are left alone


# --------------------------------------------------------------------------- the synchronous runner


@pytest.fixture
def sync_served() -> Iterator[tuple[Behaviour, str]]:
    behaviour = Behaviour()
    with sync_server(behaviour) as target:
        yield behaviour, target


def test_sync_batches_in_several_threads_share_the_clients_scheduler(sync_served: tuple[Behaviour, str]) -> None:
    behaviour, target = sync_served
    behaviour.latency = 0.01
    batches = [
        [behaviour.script(f"operations/t{batch}-{i}", Script(polls_before_done=2)) for i in range(8)]
        for batch in range(4)
    ]
    results: dict[int, list[str]] = {}
    with OperationsClient(target, batch_max_in_flight=2) as client:

        def run(index: int) -> None:
            results[index] = [op.name for op in client.wait_all(batches[index], poll_policy=FAST, timeout=20)]

        threads = [threading.Thread(target=run, args=(index,)) for index in range(len(batches))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    assert results == dict(enumerate(batches))
    assert behaviour.max_active == 2  # four batches at once, one bound
    assert len(behaviour.calls) == 4 * 8 * 3
    assert batch_threads() == []


class Handle:
    """What a sync client's _wrap would make; remembers the thread it was made on."""

    def __init__(self, pb: operations_pb2.Operation) -> None:
        self.pb = pb
        self.name = pb.name
        self.done = pb.done
        self.thread = threading.current_thread()


def batch_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith("lro-grpc-batch")]


def test_sync_runner_waits_and_closes_without_leaking_threads(sync_served: tuple[Behaviour, str]) -> None:
    behaviour, target = sync_served
    names = [behaviour.script(f"operations/y{i}", Script(polls_before_done=i % 3)) for i in range(12)]
    assert batch_threads() == []

    with SyncBatchRunner(lambda: open_stub_source(target), wrap=Handle) as runner:
        reported = [op.name for op in runner.as_completed(names, poll_policy=FAST, timeout=10)]
        results = runner.wait_all([names[3], names[0], names[3]], poll_policy=FAST, timeout=10)
        assert len(batch_threads()) == 1

    assert sorted(reported) == sorted(names)
    assert [op.name for op in results] == [names[3], names[0], names[3]]
    assert results[0] is results[2]
    assert all(op.thread is threading.current_thread() for op in results)
    assert batch_threads() == []
    with pytest.raises(RuntimeError, match="closed"):
        runner.wait_all(names)
    runner.close()  # idempotent


def test_sync_timeout_carries_wrapped_last_seen_state(sync_served: tuple[Behaviour, str]) -> None:
    behaviour, target = sync_served
    quick = behaviour.script("operations/quick")
    never = behaviour.script("operations/never", Script(outcome="never"))
    snapshots: list[BatchProgress] = []
    progress_threads: set[threading.Thread] = set()

    def progress(snapshot: BatchProgress) -> None:
        snapshots.append(snapshot)
        progress_threads.add(threading.current_thread())

    with SyncBatchRunner(lambda: open_stub_source(target), wrap=Handle) as runner:
        started = time.monotonic()
        with pytest.raises(BatchTimeoutError) as caught:
            runner.wait_all([never, quick], poll_policy=FAST, timeout=1.0, progress=progress)
        elapsed = time.monotonic() - started

    assert 1.0 <= elapsed <= 1.0 + LATE_UNDER_LOAD  # see LATE_UNDER_LOAD (servicer.py)
    error = caught.value
    assert [op.name for op in error.pending] == [never]
    assert isinstance(error.pending[0], Handle) and not error.pending[0].done
    assert error.results is not None
    assert [(op.name, op.done) for op in error.results] == [(never, False), (quick, True)]
    assert snapshots[-1] == BatchProgress(done=1, failed=0, pending=0, timed_out=1)
    assert progress_threads == {threading.current_thread()}


def test_sync_waiter_accepts_operations_while_iterating(sync_served: tuple[Behaviour, str]) -> None:
    behaviour, target = sync_served
    first = behaviour.script("operations/first")
    second = behaviour.script("operations/second", Script(polls_before_done=2, outcome="fail"))
    snapshots: list[BatchProgress] = []

    with SyncBatchRunner(lambda: open_stub_source(target), wrap=Handle) as runner:
        waiter = runner.waiter([first], poll_policy=FAST, timeout=10, progress=snapshots.append)
        reported = []
        for op in waiter:
            reported.append(op.name)
            if op.name == first:
                assert waiter.add([second, first]) == 1

    assert reported == [first, second]
    assert snapshots[-1] == BatchProgress(done=2, failed=1, pending=0)


def test_sync_waiter_with_a_producer_thread(sync_served: tuple[Behaviour, str]) -> None:
    behaviour, target = sync_served
    names = [behaviour.script(f"operations/z{i}", Script(polls_before_done=i % 2)) for i in range(6)]

    with SyncBatchRunner(lambda: open_stub_source(target), wrap=Handle) as runner:
        waiter = runner.waiter(names[:1], poll_policy=FAST, timeout=10, keep_open=True)

        def produce() -> None:
            for name in names[1:]:
                time.sleep(0.02)
                waiter.add([name])
            time.sleep(0.1)  # everything is reported by now: the iteration waits for more
            waiter.close_input()

        producer = threading.Thread(target=produce)
        producer.start()
        reported = [op.name for op in waiter]
        producer.join(5)

    assert sorted(reported) == sorted(names)
    assert waiter.progress == BatchProgress(done=6, failed=0, pending=0)


def test_closing_the_runner_stops_an_iteration_in_another_thread(sync_served: tuple[Behaviour, str]) -> None:
    behaviour, target = sync_served
    never = behaviour.script("operations/never", Script(outcome="never"))
    runner = SyncBatchRunner(lambda: open_stub_source(target), wrap=Handle)
    outcome: list[BaseException] = []
    iterating = threading.Event()

    def consume() -> None:
        try:
            iterator = runner.as_completed([never], poll_policy=FAST)
            iterating.set()
            list(iterator)
        except BaseException as error:
            outcome.append(error)

    consumer = threading.Thread(target=consume)
    consumer.start()
    assert iterating.wait(5)
    time.sleep(0.05)
    runner.close()
    consumer.join(5)

    assert not consumer.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], RuntimeError)
    assert "closed" in str(outcome[0])
    assert batch_threads() == []


# --------------------------------------------------------------------------- against the emulator


async def create_instances(
    target: str,
    durations: list[float],
    *,
    failing: Collection[int] = (),
    concurrency: int = 100,
) -> list[str]:
    """Start one CreateInstance per duration; operation ``i`` fails if ``i`` is in ``failing``."""
    semaphore = asyncio.Semaphore(concurrency)
    async with grpc.aio.insecure_channel(target) as channel:
        aml = fs_grpc.AMLStub(channel)

        async def create(index: int, duration: float) -> str:
            metadata = [(DURATION_HEADER, repr(duration))]
            if index in failing:
                metadata.append((OUTCOME_HEADER, "fail"))
            request = fs.CreateInstanceRequest(
                parent="projects/batch-test/locations/us-central1", instance_id=f"instance-{index}"
            )
            async with semaphore:
                operation = await aml.CreateInstance(request, metadata=metadata)
            return str(operation.name)

        return list(await asyncio.gather(*(create(index, duration) for index, duration in enumerate(durations))))


async def test_thousands_of_operations_through_the_client_against_the_emulator() -> None:
    count = 2000
    rng = random.Random(4)
    durations = [rng.uniform(0.0, 1.0) for _ in range(count)]
    failing = set(range(0, count, 7))
    with Emulator() as emu:
        names = await create_instances(emu.target, durations, failing=failing)
        snapshots: list[BatchProgress] = []
        async with AsyncOperationsClient(emu.target) as client:
            results = await wait_all(
                client,
                [*names, names[0]],
                poll_policy=PollPolicy(initial=0.3, multiplier=1.5, maximum=1.0),
                timeout=60,
                progress=snapshots.append,
            )

    assert [op.name for op in results] == [*names, names[0]]
    assert all(op.done for op in results)
    assert {index for index, op in enumerate(results[:count]) if op.error is not None} == failing
    assert isinstance(results[1].response, fs.Instance)
    assert snapshots[-1] == BatchProgress(done=count, failed=len(failing), pending=0)


async def test_emulator_refusals_and_outages_do_not_fail_operations() -> None:
    rng = random.Random(5)
    durations = [rng.uniform(0.0, 0.5) for _ in range(300)]
    with Emulator() as emu:
        names = await create_instances(emu.target, durations)
        emu.faults = Faults(resource_exhausted=0.1, unavailable=0.1, retry_delay=0.02, seed=5)
        async with AsyncOperationsClient(emu.target) as client:
            results = await wait_all(
                client, names, poll_policy=PollPolicy(initial=0.1, multiplier=1.5, maximum=0.5), timeout=60
            )

    assert all(op.done and op.error is None for op in results)


def test_sync_runner_with_the_async_client_against_the_emulator() -> None:
    rng = random.Random(6)
    durations = [rng.uniform(0.0, 0.5) for _ in range(500)]
    with Emulator() as emu:
        names = asyncio.run(create_instances(emu.target, durations))
        with SyncBatchRunner(lambda: AsyncOperationsClient(emu.target), wrap=Handle) as runner:
            reported = [
                op.name
                for op in runner.as_completed(
                    names, poll_policy=PollPolicy(initial=0.1, multiplier=1.5, maximum=0.5), timeout=60
                )
            ]

    assert sorted(reported) == sorted(names)
    assert batch_threads() == []
