"""Service Management: a scope's running and finished operations listed in one walk, when that is cheaper.

Over real gRPC on loopback: the timed servicer of ``test_sweep.py`` taught the
three Service Management filters a sweep writes (``status=in_progress``,
``status=done`` and neither: both at once), honest, rejecting the last one, or
leaving out of it what finished in the last moments; and the emulator.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.longrunning import operations_pb2
from timed_servicer import Op, Server, serving

from lro_grpc._batch._done_listing import DoneListing, combined_filter, done_filter
from lro_grpc._batch._scopes import list_scope
from lro_grpc._generated import servicemanagement_v1_pb2 as sm
from lro_grpc.aio import AsyncOperationsClient
from lro_grpc.policies import PollPolicy, RetryPolicy

NO_RETRY = RetryPolicy(initial=0.01, multiplier=1, maximum=0.01, jitter=0, max_attempts=1, timeout=5)
POLL = PollPolicy(initial=0.1, multiplier=1.0, maximum=0.1, jitter=0.0)
SERVICES = ("alpha.example.com", "beta.example.com")


def sm_name(service: str, index: int) -> str:
    return f"operations/rollouts.{service}:r{index}"


def is_combined(text: str) -> bool:
    return text.startswith("serviceName=") and "status=" not in text


class ServiceListings(Server):
    """Service Management listings by status: running, finished, or both (``mode``: obey, reject, stale)."""

    def __init__(self, mode: str = "obey", *, stale_for: float = 0.0) -> None:
        super().__init__()
        self.mode = mode
        self.stale_for = stale_for  # the combined listing leaves out what finished less than this ago

    async def ListOperations(
        self, request: operations_pb2.ListOperationsRequest, context: grpc.aio.ServicerContext
    ) -> operations_pb2.ListOperationsResponse:
        if "status=in_progress" in request.filter:
            return await super().ListOperations(request, context)
        self.calls["ListOperations"] += 1
        self.list_requests.append(request)
        combined = is_combined(request.filter)
        if combined and self.mode == "reject":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"filter {request.filter!r} is not supported")
        now = time.monotonic()
        shown = [op for op in sorted(self.ops.values(), key=lambda op: op.name) if self._shown(op, request, now)]
        offset = int(request.page_token or "0")
        size = request.page_size or 50
        response = operations_pb2.ListOperationsResponse(
            operations=[self.state(op, now) for op in shown[offset : offset + size]]
        )
        if offset + size < len(shown):
            response.next_page_token = str(offset + size)
        return response

    def _shown(self, op: Op, request: operations_pb2.ListOperationsRequest, now: float) -> bool:
        if not self._in_scope(op, request):
            return False
        if not is_combined(request.filter):
            return now >= op.finish_at  # status=done
        return now < op.finish_at or now >= op.finish_at + self.stale_for

    def combined_walks(self) -> int:
        return sum(1 for request in self.list_requests if is_combined(request.filter) and not request.page_token)


@contextlib.asynccontextmanager
async def client_for(target: str, **options: Any) -> AsyncIterator[AsyncOperationsClient]:
    settings: dict[str, Any] = {"retry_policy": NO_RETRY, "poll_policy": POLL, **options}
    async with AsyncOperationsClient(target, **settings) as client:
        yield client


def add_batch(server: Server, count: int, low: float, high: float) -> list[str]:
    """``count`` operations over the two services, finishing evenly ``low`` to ``high`` s from now; each 9th fails."""
    step = (high - low) / max(1, count - 1)
    return [
        server.add(sm_name(SERVICES[index % 2], index), low + step * index, fail=index % 9 == 0)
        for index in range(count)
    ]


async def reported_after_their_end(server: Server, client: AsyncOperationsClient, names: list[str]) -> None:
    reported: dict[str, operations_pb2.Operation] = {}
    async for op in client.as_completed(names, timeout=30):
        assert op.name not in reported, f"{op.name} reported twice"
        assert time.monotonic() >= server.ops[op.name].finish_at, f"{op.name} reported before its end"
        assert op.done and (op.error is not None) == server.ops[op.name].fail
        reported[op.name] = op.raw
    assert sorted(reported) == sorted(names)


def test_the_cost_model_combines_only_when_it_saves_and_the_done_side_is_known() -> None:
    done = DoneListing()
    assert not done.worth_combining(450, 100)  # the finished side never measured
    done.size, done.departures = 50, 28
    # Apart: 5 pages of 450 running, then the cheaper of 28 GetOperations and a walk of 78 finished.
    # Together: 5 pages of 500. Each page weighs 1 + 0.04 per operation.
    assert done.worth_combining(450, 100)
    done.size = 5000  # a finished side far larger than what leaves per round: apart is cheaper
    assert not done.worth_combining(450, 100)
    done.size, done.combined_refused = 50, True
    assert not done.worth_combining(450, 100)


def test_each_api_has_a_combined_filter() -> None:
    sm_scope = list_scope(sm_name("alpha.example.com", 1))
    fs_scope = list_scope("projects/p/locations/us-east1/operations/op-1")
    assert sm_scope is not None and fs_scope is not None
    since = 1_700_000_400.0  # 2023-11-14T22:20:00Z; the filter reaches 300 s further back
    assert combined_filter(sm_scope, since) == 'serviceName=alpha.example.com AND startTime>="2023-11-14T22:15:00Z"'
    assert done_filter(sm_scope, since) == (
        'serviceName=alpha.example.com AND status=done AND startTime>="2023-11-14T22:15:00Z"'
    )
    assert combined_filter(sm_scope, None) is None
    # Financial Services' one filter field is done: both together is the whole location, no filter.
    assert combined_filter(fs_scope, since) == combined_filter(fs_scope, None) == ""


async def test_rounds_walk_running_and_finished_operations_together_once_the_finished_side_is_known() -> None:
    server = ServiceListings()
    names = add_batch(server, 600, 0.3, 3.0)
    async with serving(server) as target, client_for(target, poll_policy=PollPolicy(0.2, 1, 0.2, 0)) as client:
        await reported_after_their_end(server, client, names)

    # After the first done walks measured the finished side, rounds list both at once ...
    assert server.combined_walks() >= 10
    # ... and the whole wait takes fewer calls than running listings with done walks
    # or GetOperations (about 150 against 185-190 here, 300 operations a service).
    assert server.calls["GetOperation"] + server.calls["ListOperations"] <= 0.3 * len(names)


async def test_a_rejected_combined_filter_is_asked_once_per_scope_and_the_running_listing_kept() -> None:
    server = ServiceListings("reject")
    names = add_batch(server, 400, 0.3, 2.0)
    async with serving(server) as target, client_for(target) as client:
        await reported_after_their_end(server, client, names)
        sweeper = client._batch_scheduler()._sweeper
        assert sweeper is not None
        scopes = [sweeper.scope_of(sm_name(service, 0)) for service in SERVICES]

    assert server.combined_walks() == len(SERVICES)
    for scope in scopes:
        assert scope is not None and scope.done.combined_refused and not scope.rejected and not scope.done.refused
    running_after = [request for request in server.list_requests if request.filter.endswith("status=in_progress")]
    assert len(running_after) >= 10


@pytest.mark.parametrize("stale_for", [0.3, 3600.0], ids=["stale a while", "never lists finished"])
async def test_operations_a_combined_listing_leaves_out_come_out_through_getoperation(stale_for: float) -> None:
    # Absent from a listing of both running and finished operations: only a GetOperation may say it is done.
    server = ServiceListings("stale", stale_for=stale_for)
    names = add_batch(server, 300, 0.3, 2.0)
    async with serving(server) as target, client_for(target) as client:
        await reported_after_their_end(server, client, names)

    assert server.combined_walks() >= 3
    finished_by_get = sum(1 for name in names if server.gets.get(name, 0) >= 1)
    assert finished_by_get >= 0.5 * len(names)


class Tracked:
    """An operation as the sweeper tracks it, with a Service Management start time."""

    def __init__(self, started: float) -> None:
        pb = operations_pb2.Operation(name=sm_name("alpha.example.com", int(started)))
        metadata = sm.OperationMetadata()
        metadata.start_time.FromSeconds(int(started))
        pb.metadata.Pack(metadata)
        self.last_seen: bytes | None = pb.SerializeToString()


def test_the_start_of_a_combined_listing_is_read_again_only_when_the_scope_grew() -> None:
    scope = list_scope(sm_name("alpha.example.com", 1))
    assert scope is not None
    done = DoneListing()
    early, late = Tracked(1000.0), Tracked(2000.0)
    assert done.combined_since(scope, 5000.0, [early, late]) == 1000.0
    # The early one finished: the start is kept (a wider listing, never a narrower one) ...
    assert done.combined_since(scope, 5000.0, [late]) == 1000.0
    # ... until the scope tracks more than it did: read again.
    assert done.combined_since(scope, 5000.0, [late, Tracked(3000.0)]) == 2000.0
    assert done.combined_since(scope, 5000.0, [late, Tracked(3000.0), Tracked(500.0)]) == 500.0
