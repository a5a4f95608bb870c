"""Done listings: the operations that left a running listing are confirmed by a listing of finished ones.

Over real gRPC on loopback: the timed servicer of ``test_sweep.py`` taught to
answer ``done=true`` (honouring it, ignoring it, rejecting it, mixing in
another location's operations, or leaving out what finished in the last half
second), and the emulator for both APIs.
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
from google.longrunning import operations_pb2
from timed_servicer import Server, serving

from lro_grpc._generated import servicemanagement_v1_pb2 as sm
from lro_grpc._generated import servicemanagement_v1_pb2_grpc as sm_grpc
from lro_grpc.aio import AsyncOperationsClient
from lro_grpc.emulator import DURATION_HEADER, OUTCOME_HEADER, Emulator, Faults
from lro_grpc.policies import PollPolicy, RetryPolicy

NO_RETRY = RetryPolicy(initial=0.01, multiplier=1, maximum=0.01, jitter=0, max_attempts=1, timeout=5)
POLL = PollPolicy(initial=0.1, multiplier=1.0, maximum=0.1, jitter=0.0)


def fs_name(location: str, index: int) -> str:
    return f"projects/p/locations/{location}/operations/op-{index}"


class DoneListings(Server):
    """The timed servicer, whose ListOperations also answers ``done=true`` (as ``mode`` says)."""

    def __init__(self, mode: str = "obey", *, stale_for: float = 0.0) -> None:
        super().__init__()
        self.mode = mode
        self.stale_for = stale_for  # a done operation is listed only this long after it finished

    async def ListOperations(
        self, request: operations_pb2.ListOperationsRequest, context: grpc.aio.ServicerContext
    ) -> operations_pb2.ListOperationsResponse:
        if request.filter not in ("done=true", "") or self.mode == "ignore":
            return await super().ListOperations(request, context)
        self.calls["ListOperations"] += 1
        self.list_requests.append(request)
        if self.mode == "reject" and request.filter:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "done=true is not supported")
        now = time.monotonic()
        # No filter (running and finished together): the running ones too, a finished one as late as on done=true.
        finished = [
            op
            for op in sorted(self.ops.values(), key=lambda op: op.name)
            if self._in_scope(op, request)
            and (now >= op.finish_at + self.stale_for or (not request.filter and now < op.finish_at))
        ]
        offset = int(request.page_token or "0")
        size = request.page_size or 50
        page = [self.state(op, now) for op in finished[offset : offset + size]]
        if self.mode == "other scope":
            page.append(operations_pb2.Operation(name=fs_name("far-away", 1), done=True))
        response = operations_pb2.ListOperationsResponse(operations=page)
        if offset + size < len(finished):
            response.next_page_token = str(offset + size)
        return response

    def done_walks(self) -> int:
        """Walks that list finished operations: ``done=true``, or running and finished together (no filter)."""
        return sum(
            1 for request in self.list_requests if request.filter in ("done=true", "") and not request.page_token
        )


@contextlib.asynccontextmanager
async def client_for(target: str, **options: Any) -> AsyncIterator[AsyncOperationsClient]:
    settings: dict[str, Any] = {"retry_policy": NO_RETRY, "poll_policy": POLL, **options}
    async with AsyncOperationsClient(target, **settings) as client:
        yield client


async def reported_after_their_end(server: Server, client: AsyncOperationsClient, names: list[str]) -> list[float]:
    """Wait for ``names``; check each is reported once, with its outcome, not before its end; the delays."""
    reported: dict[str, tuple[float, operations_pb2.Operation]] = {}
    async for op in client.as_completed(names, timeout=30):
        assert op.name not in reported, f"{op.name} reported twice"
        reported[op.name] = (time.monotonic(), op.raw)
    assert sorted(reported) == sorted(names)
    delays = []
    for name, (at, pb) in reported.items():
        op = server.ops[name]
        assert at >= op.finish_at and pb.done
        assert pb.HasField("error") == op.fail
        assert op.fail or pb.HasField("response")
        delays.append(at - op.finish_at)
    return delays


def spread(server: Server, names: list[str], low: float, high: float, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    return [server.add(name, rng.uniform(low, high), fail=index % 9 == 0) for index, name in enumerate(names)]


async def test_operations_leaving_the_running_listing_are_reported_from_the_done_listing() -> None:
    server = DoneListings()
    names = spread(server, [fs_name("us-east1", index) for index in range(400)], 0.2, 2.0)
    async with serving(server) as target, client_for(target) as client:
        await reported_after_their_end(server, client, names)

    # Most outcomes came from listings of finished operations (done=true, or both together, whichever is
    # cheaper): GetOperations are spot checks and
    # the few rounds where one operation left the listing, far from one each.
    assert server.done_walks() >= 5
    assert server.calls["GetOperation"] <= 0.3 * len(names)


async def test_financial_services_rounds_list_the_whole_location_once_that_is_cheaper() -> None:
    # Many leave each round and few finished ones are kept: one walk of the location, no filter, costs less than
    # the running listing followed by a done walk (or a GetOperation each), and reports what finished on the way.
    server = DoneListings()
    names = spread(server, [fs_name("us-east1", index) for index in range(600)], 0.3, 3.0)
    async with serving(server) as target, client_for(target) as client:
        await reported_after_their_end(server, client, names)

    whole = sum(1 for request in server.list_requests if request.filter == "" and not request.page_token)
    assert whole >= 3
    assert server.calls["GetOperation"] <= 0.3 * len(names)


@pytest.mark.parametrize("mode", ["ignore", "reject", "other scope"])
async def test_a_done_filter_ignored_or_rejected_is_used_once_then_getoperation(mode: str) -> None:
    server = DoneListings(mode)
    names = spread(server, [fs_name("us-east1", index) for index in range(200)], 0.2, 1.5)
    async with serving(server) as target, client_for(target) as client:
        await reported_after_their_end(server, client, names)

    assert server.done_walks() == 1  # remembered: not asked again
    assert server.calls["GetOperation"] >= 0.9 * len(names)


async def test_operations_a_stale_done_listing_leaves_out_come_out_through_getoperation() -> None:
    server = DoneListings(stale_for=6.0)  # shows each finished operation only 6 s after its end
    names = spread(server, [fs_name("us-east1", index) for index in range(300)], 0.2, 1.5)
    async with serving(server) as target, client_for(target) as client:
        delays = await reported_after_their_end(server, client, names)

    # Not waited for until the done listing shows them: each got its GetOperation
    # in the round it left the running listing (what passes 2 rounds is a loaded machine's).
    assert max(delays) < 3.0
    assert server.calls["GetOperation"] >= len(names)
    assert server.done_walks() >= 3


# --------------------------------------------------------------------------- against the emulator


async def test_sweeping_the_emulator_confirms_financial_services_operations_by_done_listings() -> None:
    rng = random.Random(21)
    durations = [rng.uniform(0.2, 1.5) for _ in range(600)]
    with Emulator() as emu:
        names = [
            emu.start_operation(f"projects/done/locations/{('us-east1', 'europe-west1')[index % 2]}", duration=duration)
            for index, duration in enumerate(durations)
        ]
        async with client_for(emu.target, poll_policy=PollPolicy(0.2, 1, 0.2, 0)) as client:
            reported = [op async for op in client.as_completed(names, timeout=60)]
            calls = dict(client._batch_scheduler().calls)

    assert sorted(op.name for op in reported) == sorted(names) and all(op.done for op in reported)
    assert calls["GetOperation"] + calls["ListOperations"] <= 0.3 * len(names)


@pytest.mark.parametrize("faults", [Faults(), Faults(list_filter="ignore")], ids=["obeyed", "ignored"])
async def test_sweeping_the_emulator_confirms_service_management_operations_by_done_listings(faults: Faults) -> None:
    rng = random.Random(22)
    services = ["alpha.example.com", "beta.example.com"]
    with Emulator(faults=faults) as emu:
        async with grpc.aio.insecure_channel(emu.target) as channel:
            manager = sm_grpc.ServiceManagerStub(channel)

            async def submit(index: int) -> str:
                request = sm.SubmitConfigSourceRequest(
                    service_name=services[index % 2],
                    config_source=sm.ConfigSource(
                        files=[sm.ConfigFile(file_path="api.yaml", file_contents=b"type: google.api.Service")]
                    ),
                )
                metadata = [(DURATION_HEADER, f"{rng.uniform(0.3, 1.5):.3f}")]
                if index % 7 == 0:
                    metadata.append((OUTCOME_HEADER, "fail"))
                operation = await manager.SubmitConfigSource(request, metadata=metadata)
                return str(operation.name)

            names = list(await asyncio.gather(*(submit(index) for index in range(300))))
        async with client_for(emu.target, poll_policy=PollPolicy(0.2, 1, 0.2, 0)) as client:
            reported = [op async for op in client.as_completed(names, timeout=60)]
            calls = dict(client._batch_scheduler().calls)

    assert sorted(op.name for op in reported) == sorted(names)
    for op in reported:
        assert op.done and (op.error is not None) == (names.index(op.name) % 7 == 0)
        assert op.error is not None or isinstance(op.response, sm.SubmitConfigSourceResponse)
    if faults.list_filter == "obey":
        assert calls["GetOperation"] <= 0.3 * len(names)
    else:  # listed done operations come straight from the running listings; no done listing needed
        assert calls["GetOperation"] <= 0.3 * len(names)
