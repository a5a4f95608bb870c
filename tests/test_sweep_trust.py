"""Sweeping against listings that never end or never change (page budgets, spot checks, distrust).

Over real gRPC on loopback, with the timed servicer of ``test_sweep.py`` made
hostile in two ways its GetOperation stays truthful:

* every ListOperations answers an empty page naming a fresh next page;
* every ListOperations shows each operation of the scope as running, those
  that finished too (a listing stale for ever), or only until some moment.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import random
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.longrunning import operations_pb2
from timed_servicer import Server, serving

from lro_grpc._batch._trust import CHECK_EVERY, MAX_EMPTY_PAGES, QUIET_ROUNDS, ScopeTrust
from lro_grpc.aio import AsyncOperationsClient
from lro_grpc.errors import BatchTimeoutError
from lro_grpc.policies import PollPolicy, RetryPolicy

NO_RETRY = RetryPolicy(initial=0.01, multiplier=1, maximum=0.01, jitter=0, max_attempts=1, timeout=5)


def poll_every(seconds: float) -> PollPolicy:
    return PollPolicy(initial=seconds, multiplier=1.0, maximum=seconds, jitter=0.0)


def fs_name(location: str, index: int) -> str:
    return f"projects/p/locations/{location}/operations/op-{index}"


class EndlessEmptyPages(Server):
    """Listings of empty pages, each naming a fresh next page (until ``give_up_after`` pages in all)."""

    def __init__(self, give_up_after: int = 200_000) -> None:
        super().__init__()
        self._tokens = itertools.count(1)
        self.give_up_after = give_up_after

    async def ListOperations(
        self, request: operations_pb2.ListOperationsRequest, context: grpc.aio.ServicerContext
    ) -> operations_pb2.ListOperationsResponse:
        self.calls["ListOperations"] += 1
        self.list_requests.append(request)
        number = next(self._tokens)
        return operations_pb2.ListOperationsResponse(
            next_page_token="" if number >= self.give_up_after else f"t{number}"
        )


class StaleListings(Server):
    """Listings that show every operation of the scope running, finished or not, until ``honest_from``."""

    def __init__(self, honest_from: float = float("inf")) -> None:
        super().__init__()
        self.honest_from = honest_from
        self.get_times: dict[str, list[tuple[float, bool]]] = {}  # per name: (when, said done)
        self.list_times: list[float] = []  # arrival of each stale listing page

    async def GetOperation(
        self, request: operations_pb2.GetOperationRequest, context: grpc.aio.ServicerContext
    ) -> operations_pb2.Operation:
        pb = await super().GetOperation(request, context)
        self.get_times.setdefault(request.name, []).append((time.monotonic(), pb.done))
        return pb

    async def ListOperations(
        self, request: operations_pb2.ListOperationsRequest, context: grpc.aio.ServicerContext
    ) -> operations_pb2.ListOperationsResponse:
        now = time.monotonic()
        if now >= self.honest_from:
            return await super().ListOperations(request, context)
        self.calls["ListOperations"] += 1
        self.list_times.append(now)
        frozen = [op for op in sorted(self.ops.values(), key=lambda op: op.name) if self._in_scope(op, request)]
        offset = int(request.page_token or "0")
        size = request.page_size or 50
        page = [self.state(op, min(now, op.finish_at - 1e-3)) for op in frozen[offset : offset + size]]
        response = operations_pb2.ListOperationsResponse(operations=page)
        if offset + size < len(frozen):
            response.next_page_token = str(offset + size)
        return response


@contextlib.asynccontextmanager
async def client_for(target: str, interval: float, **options: Any) -> AsyncIterator[AsyncOperationsClient]:
    async with AsyncOperationsClient(
        target, retry_policy=NO_RETRY, poll_policy=poll_every(interval), **options
    ) as client:
        yield client


async def report_times(client: AsyncOperationsClient, names: list[str], timeout: float) -> dict[str, Any]:
    reported: dict[str, tuple[float, operations_pb2.Operation]] = {}
    async for op in client.as_completed(names, timeout=timeout):
        assert op.name not in reported, f"{op.name} reported twice"
        reported[op.name] = (time.monotonic(), op.raw)
    return reported


def spread(server: Server, names: list[str], low: float, high: float, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    return [server.add(name, rng.uniform(low, high), fail=index % 9 == 0) for index, name in enumerate(names)]


def assert_reported_once_after_end(server: Server, names: list[str], reported: dict[str, Any]) -> list[float]:
    """Every operation reported once, done, none before its end; returns each one's delay after its end."""
    assert sorted(reported) == sorted(names), f"{len(set(names) - set(reported))} of {len(names)} never reported"
    delays = []
    for name, (at, pb) in reported.items():
        end = server.ops[name].finish_at
        assert at >= end and pb.done
        assert bool(pb.HasField("error")) == server.ops[name].fail
        delays.append(at - end)
    return delays


# --------------------------------------------------------------------------- item 1: a listing that never ends


async def test_a_listing_of_endless_empty_pages_is_cut_and_the_scope_polled_one_by_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="lro_grpc.batch")
    server = EndlessEmptyPages()
    names = spread(server, [fs_name("us-east1", index) for index in range(300)], 0.1, 1.0)
    async with serving(server) as target, client_for(target, 0.05) as client:
        reported = await report_times(client, names, timeout=20)
        calls = dict(client._batch_scheduler().calls)

    assert_reported_once_after_end(server, names, reported)
    # One round met the run of empty pages; the scope was then polled one by one
    # for DISTRUST_INTERVALS intervals at a time, with a round between each.
    assert calls["ListOperations"] == server.calls["ListOperations"]
    assert calls["ListOperations"] <= 3 * (MAX_EMPTY_PAGES + 1)
    messages = [record.getMessage() for record in caplog.records if record.name == "lro_grpc.batch"]
    distrusted = [message for message in messages if "empty pages in a row" in message]
    assert distrusted and "projects/p/locations/us-east1" in distrusted[0] and "one by one for" in distrusted[0]


async def test_a_first_listing_of_a_larger_scope_than_tracked_stops_at_its_budget_without_distrust() -> None:
    server = Server()
    server.listings.page_cap = 10
    for index in range(2000):  # other callers' running operations
        server.add(fs_name("us-central1", 10_000 + index), 3600)
    names = spread(server, [fs_name("us-central1", index) for index in range(40)], 0.3, 0.8)
    async with serving(server) as target, client_for(target, 0.05) as client:
        reported = await report_times(client, names, timeout=30)
        scheduler = client._batch_scheduler()
        assert scheduler._sweeper is not None
        scope = scheduler._sweeper.scope_of(names[0])

    assert_reported_once_after_end(server, names, reported)
    # Forty pages (the cost of the forty operations one by one) of the 201 the location needs.
    assert server.calls["ListOperations"] == 40
    assert scope is not None and scope.running >= 400 and scope.trust.offences == 0


# --------------------------------------------------------------------------- item 2: a listing that always says running


async def test_a_listing_that_always_says_running_is_caught_by_spot_checks(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="lro_grpc.batch")
    interval = 0.2
    server = StaleListings()
    names = spread(server, [fs_name("europe-west1", index) for index in range(300)], 0.3, 3.0)
    async with serving(server) as target, client_for(target, interval) as client:
        reported = await report_times(client, names, timeout=30)

    delays = assert_reported_once_after_end(server, names, reported)
    # The promise: every operation reported within 10 poll intervals of its end.
    assert max(delays) <= 10 * interval, sorted(delays)[-5:]
    messages = [record.getMessage() for record in caplog.records if record.name == "lro_grpc.batch"]
    assert any("which GetOperation saw done" in message for message in messages)


async def test_a_stale_scope_is_listed_again_after_a_while() -> None:
    interval = 0.1
    server = StaleListings(honest_from=time.monotonic() + 1.5)
    names = spread(server, [fs_name("europe-west2", index) for index in range(200)], 0.3, 5.0)
    async with serving(server) as target, client_for(target, interval) as client:
        reported = await report_times(client, names, timeout=30)
        scheduler = client._batch_scheduler()
        assert scheduler._sweeper is not None
        scope = scheduler._sweeper.scope_of(names[0])

    delays = assert_reported_once_after_end(server, names, reported)
    assert max(delays) <= 10 * interval + 0.5  # the bound plus room for a loaded machine
    assert scope is not None and scope.trust.offences >= 1
    # Listed again once honest: far fewer calls than polling each operation every 50 ms.
    honest_lists = server.calls["ListOperations"] - len(server.list_times)
    assert honest_lists >= 5
    one_by_one = sum(int((op.finish_at - server.honest_from + 1.5) / interval) + 1 for op in server.ops.values())
    assert server.calls["GetOperation"] + server.calls["ListOperations"] <= 0.6 * one_by_one


async def test_spot_checks_against_honest_listings_are_about_one_per_scope_every_few_rounds() -> None:
    server = StaleListings(honest_from=0.0)  # honest from the start; GetOperation answers recorded
    locations = ["us-east1", "us-central1", "asia-south1"]
    names = [*spread(server, [fs_name(location, index) for location in locations for index in range(100)], 0.3, 2.0)]
    async with serving(server) as target, client_for(target, 0.1) as client:
        reported = await report_times(client, names, timeout=30)

    assert_reported_once_after_end(server, names, reported)
    said_running = sum(1 for answers in server.get_times.values() for _, done in answers if not done)
    rounds = sum(1 for request in server.list_requests if request.filter == "done=false" and not request.page_token)
    # A GetOperation that found an operation running is a spot check (or one
    # that raced its end): about one per scope every CHECK_EVERY rounds.
    assert rounds // (2 * CHECK_EVERY) <= said_running <= 1.5 * rounds / CHECK_EVERY + 3 * len(locations)
    assert server.calls["GetOperation"] <= len(names) + 2 * rounds


def test_a_moving_listing_is_spot_checked_every_few_rounds_a_quiet_one_ever_more() -> None:
    trust = ScopeTrust()
    moving = []
    for index in range(2 * CHECK_EVERY):  # one round a second, at a 1 s interval
        trust.round_ended(departures=3, started=float(index), interval=1.0)
        moving.append(trust.spot_checks(500, 5))
    assert moving == ([0] * (CHECK_EVERY - 1) + [1]) * 2
    quiet = []
    for index in range(QUIET_ROUNDS + 3):
        trust.round_ended(departures=0, started=10.0 + index, interval=1.0)
        quiet.append(trust.spot_checks(500, 5))
    # No operation leaves: beyond QUIET_ROUNDS such rounds, every round checks, one more each time.
    assert quiet == [0, 0, 1, 2, 3, 4] and QUIET_ROUNDS == CHECK_EVERY == 3
    trust.suspect = True
    assert trust.spot_checks(500, 5) == 10  # suspect: two a page


def test_a_round_that_comes_early_neither_counts_as_quiet_nor_makes_a_spot_check() -> None:
    # Rounds 0.3 s apart at a 1 s interval (operations joining the scope between them): only
    # those half an interval or more after the last counted one count; a quiet listing is
    # judged by the time it had to change, not by how often it was asked for.
    trust = ScopeTrust()
    checks = []
    for index in range(12):
        trust.round_ended(departures=0, started=0.3 * index, interval=1.0)
        checks.append(trust.spot_checks(500, 5))
    counted = [0.0, 0.6, 1.2, 1.8, 2.4, 3.0]  # started 0.5 s or more after the last counted round
    assert trust.quiet_rounds == len(counted)
    # The counted rounds check as the rounds of a quiet listing do (see above); the others never.
    assert [checks[index] for index in range(12) if round(0.3 * index, 1) in counted] == [0, 0, 1, 2, 3, 4]
    assert sum(checks) == 10
    # A round with departures always counts, however soon it comes.
    trust.round_ended(departures=2, started=3.35, interval=1.0)
    assert trust.quiet_rounds == 0 and not trust.early
    trust.suspect = True
    trust.round_ended(departures=0, started=3.4, interval=1.0)
    assert trust.early and trust.spot_checks(500, 5) == 10  # a suspect scope is checked every round


async def test_a_spot_check_that_finds_an_operation_done_reports_it() -> None:
    """Under a listing stale for ever, with one operation only: its spot check ends it."""
    server = StaleListings()
    names = [server.add(fs_name("us-east1", index), 0.3 if index == 0 else 3600) for index in range(2)]
    async with serving(server) as target, client_for(target, 0.05) as client:
        reported: list[str] = []
        with pytest.raises(BatchTimeoutError):  # the second one never ends
            async for op in client.as_completed(names, timeout=2):
                reported.append(op.name)
    assert reported == [names[0]]


class GetsDown(Server):
    """A server whose GetOperation always fails with ``UNAVAILABLE``; its listings show every finished operation."""

    async def GetOperation(
        self, request: operations_pb2.GetOperationRequest, context: grpc.aio.ServicerContext
    ) -> operations_pb2.Operation:
        with self._lock:
            self.calls["GetOperation"] += 1
        await context.abort(grpc.StatusCode.UNAVAILABLE, "GetOperation is down")


async def test_an_operation_owed_its_own_look_is_listed_again_while_its_gets_keep_failing() -> None:
    """Left out of a listing, then GetOperation down for good: a later listing that shows it done still ends it.

    Absence only owes an operation a look of its own; once that look failed,
    a listing that names it (done or running) is as good an answer as any.
    """
    server = GetsDown()
    server.listings.ignore_filter = True  # finished operations are listed too, as done
    server.listings.omit_running = 1.0  # running ones are left out: each round owes all of them a GetOperation
    names = [server.add(fs_name("us-east1", index), 0.5) for index in range(10)]
    async with serving(server) as target, client_for(target, 0.05) as client:
        reported = await report_times(client, names, timeout=20)
    assert_reported_once_after_end(server, names, reported)
    assert server.calls["GetOperation"] >= 1  # the look each was owed was tried
