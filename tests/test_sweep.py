"""Sweeping list scopes: one ListOperations listing answers for many operations.

Over real gRPC on loopback: an in-test servicer whose operations finish at
set times and whose listings can be made hostile (filters ignored or
rejected, running operations left out, errors mid-listing, unreachable
locations, a page token that repeats), and the emulator.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
from google.longrunning import operations_pb2
from google.protobuf import wrappers_pb2
from sent_calls import SentCalls, assert_calls_per_second
from timed_servicer import Server, serving

from lro_grpc._batch import BatchScheduler, BatchWaiter, ListScope, list_scope, wait_all
from lro_grpc._batch._sweep import FINANCIAL_SERVICES_PAGE_SIZE, SERVICE_MANAGEMENT_PAGE_SIZE
from lro_grpc._generated import financialservices_v1_pb2 as fs
from lro_grpc._generated import financialservices_v1_pb2_grpc as fs_grpc
from lro_grpc._generated import servicemanagement_v1_pb2 as sm
from lro_grpc._generated import servicemanagement_v1_pb2_grpc as sm_grpc
from lro_grpc.aio import AsyncOperationsClient
from lro_grpc.client import OperationsClient
from lro_grpc.emulator import DURATION_HEADER, OUTCOME_HEADER, Emulator, Faults
from lro_grpc.names import FINANCIAL_SERVICES_LOCATIONS
from lro_grpc.policies import PollPolicy, RetryPolicy

POLL = PollPolicy(initial=0.05, multiplier=1.0, maximum=0.05, jitter=0.0)
"""Look every 50 ms."""

NO_RETRY = RetryPolicy(initial=0.01, multiplier=1, maximum=0.01, jitter=0, max_attempts=1, timeout=5)
"""One attempt per call: the tests count calls exactly."""


def fs_name(location: str, index: int) -> str:
    return f"projects/p/locations/{location}/operations/op-{index}"


def sm_name(service: str, index: int) -> str:
    return f"operations/rollouts.{service}:r{index}"


# --------------------------------------------------------------------------- scope parsing


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "projects/p/locations/us-central1/operations/op-1",
            ListScope("projects/p/locations/us-central1", "done=false", FINANCIAL_SERVICES_PAGE_SIZE),
        ),
        (
            "operations/rollouts.endpointsapis.appspot.com:2016-07-16r2",
            ListScope(
                "operations",
                "serviceName=endpointsapis.appspot.com AND status=in_progress",
                SERVICE_MANAGEMENT_PAGE_SIZE,
            ),
        ),
        (
            "operations/serviceConfigs.my-api.endpoints.p.cloud.goog:5f1c2d",
            ListScope(
                "operations",
                "serviceName=my-api.endpoints.p.cloud.goog AND status=in_progress",
                SERVICE_MANAGEMENT_PAGE_SIZE,
            ),
        ),
        (
            "operations/services.svc.example.com:0a1b",
            ListScope("operations", "serviceName=svc.example.com AND status=in_progress", SERVICE_MANAGEMENT_PAGE_SIZE),
        ),
        ("operations/rollouts.svc.example.com", None),  # no id after the service
        ("operations/rollouts.:r1", None),  # no service
        ('operations/rollouts.svc"x:r1', None),  # a quote could change the filter's meaning
        ("operations/some-opaque-id", None),  # no service to list by
        ("operations/tenancyUnits.svc.example.com:1", None),  # not a documented shape
    ],
)
def test_list_scope_of_every_name_shape(name: str, expected: ListScope | None) -> None:
    assert list_scope(name) == expected


@contextlib.asynccontextmanager
async def client_for(target: str, **options: Any) -> AsyncIterator[AsyncOperationsClient]:
    settings: dict[str, Any] = {"retry_policy": NO_RETRY, "poll_policy": POLL, **options}
    async with AsyncOperationsClient(target, **settings) as client:
        yield client


async def report_times(
    client: AsyncOperationsClient, names: list[str], *, timeout: float = 30
) -> dict[str, tuple[float, operations_pb2.Operation]]:
    """Every reported operation: when it was reported, and its final state."""
    reported: dict[str, tuple[float, operations_pb2.Operation]] = {}
    async for op in client.as_completed(names, timeout=timeout):
        assert op.name not in reported, f"{op.name} reported twice"
        reported[op.name] = (time.monotonic(), op.raw)
    return reported


def assert_each_reported_once_after_it_finished(
    server: Server, names: list[str], reported: dict[str, tuple[float, operations_pb2.Operation]]
) -> None:
    assert sorted(reported) == sorted(names)
    for name, (at, pb) in reported.items():
        op = server.ops[name]
        assert at >= op.finish_at, f"{name} reported {op.finish_at - at:.3f} s before it finished"
        assert pb.done
        if op.fail:
            assert pb.error.message == "it broke"
        else:
            value = wrappers_pb2.StringValue()
            assert pb.response.Unpack(value) and value.value == f"result of {name}"


def spread(server: Server, names: list[str], low: float, high: float, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    return [server.add(name, rng.uniform(low, high), fail=index % 9 == 0) for index, name in enumerate(names)]


# --------------------------------------------------------------------------- behaviour


async def test_a_sweep_answers_for_a_whole_location_with_about_one_get_per_operation() -> None:
    server = Server()
    names = spread(server, [fs_name("us-east1", index) for index in range(300)], 0.1, 1.0)
    async with serving(server) as target, client_for(target) as client:
        reported = await report_times(client, names)

    assert_each_reported_once_after_it_finished(server, names, reported)
    # One GetOperation per operation (after it left the listing), a few more
    # for listings that raced with an operation finishing; ~20 rounds of one page.
    assert server.calls["GetOperation"] <= 1.2 * len(names)
    assert 5 <= server.calls["ListOperations"] <= 40
    # Running listings; and a done listing once, which this server answers as if
    # it were the running one (it ignores the filter): not used again.
    filters = [request.filter for request in server.list_requests]
    assert filters.count("done=true") <= 1 and set(filters) <= {"done=false", "done=true"}
    assert {request.name for request in server.list_requests} == {"projects/p/locations/us-east1"}


async def test_without_sweeping_every_operation_is_polled_on_its_own() -> None:
    server = Server()
    names = spread(server, [fs_name("us-east1", index) for index in range(100)], 0.1, 1.0)
    async with serving(server) as target, client_for(target, batch_sweep=False) as client:
        reported = await report_times(client, names)

    assert_each_reported_once_after_it_finished(server, names, reported)
    assert server.calls["ListOperations"] == 0
    # Each looked at on its own, and again while running (a quiet machine makes ~11 polls each at
    # 50 ms over 0.1-1.0 s; a loaded one fewer, as each look comes late).
    assert server.calls["GetOperation"] > len(names)


async def test_operations_left_out_of_listings_are_never_declared_done_by_their_absence() -> None:
    server = Server()
    server.listings.omit_running = 0.2
    names = spread(server, [fs_name("europe-west1", index) for index in range(200)], 0.1, 0.8)
    async with serving(server) as target, client_for(target) as client:
        reported = await report_times(client, names)

    assert_each_reported_once_after_it_finished(server, names, reported)
    # Each left-out running operation cost a GetOperation that said "running".
    assert server.calls["GetOperation"] > len(names)


async def test_a_server_that_ignores_the_filter_reports_done_operations_without_a_get() -> None:
    server = Server()
    server.listings.ignore_filter = True
    names = spread(server, [fs_name("asia-south1", index) for index in range(50)], 0.1, 0.5)
    async with serving(server) as target, client_for(target) as client:
        reported = await report_times(client, names)

    assert_each_reported_once_after_it_finished(server, names, reported)
    # Done operations came straight from listings; only when a single operation
    # is left due is one GetOperation the cheaper look (ties go to polling).
    # Besides, spot checks (a GetOperation of a listed operation): one per
    # round, a few more in the first rounds, before any operation finished.
    assert server.calls["GetOperation"] <= 2 + 2 * server.calls["ListOperations"]
    assert server.calls["ListOperations"] >= 3


@pytest.mark.parametrize("code", [grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNIMPLEMENTED])
async def test_a_rejected_filter_is_remembered_for_the_clients_lifetime(code: grpc.StatusCode) -> None:
    server = Server()
    server.listings.reject = code
    first = spread(server, [fs_name("europe-west2", index) for index in range(20)], 0.05, 0.3)
    second = spread(server, [fs_name("europe-west2", index) for index in range(20, 40)], 0.05, 0.3, seed=2)
    async with serving(server) as target, client_for(target) as client:
        reported = await report_times(client, first)
        reported.update(await report_times(client, second))

    assert_each_reported_once_after_it_finished(server, first + second, reported)
    assert server.calls["ListOperations"] == 1


@pytest.mark.parametrize("fault", ["error on page 2", "unreachable", "repeating page token"])
async def test_an_incomplete_listing_is_discarded_and_the_scope_polled_one_by_one(fault: str) -> None:
    server = Server()
    if fault == "error on page 2":
        server.listings.fail_page = 1
    elif fault == "unreachable":
        server.listings.unreachable = ["projects/p/locations/europe-west4"]
    else:
        server.listings.repeat_token = True
    server.listings.page_cap = 10  # several pages
    # Finishing over 0.1-1.2 s: room for two rounds or more on a loaded machine too.
    names = spread(server, [fs_name("europe-west4", index) for index in range(40)], 0.1, 1.2)
    async with serving(server) as target, client_for(target) as client:
        reported = await report_times(client, names)

    assert_each_reported_once_after_it_finished(server, names, reported)
    assert server.calls["ListOperations"] >= 2  # tried again each round: not remembered as rejected
    # No listing could report any operation: each came out of its own GetOperation.
    assert server.calls["GetOperation"] >= len(names)


async def test_a_few_operations_in_a_busy_location_are_polled_one_by_one() -> None:
    server = Server()
    for index in range(2990):  # other callers' operations, running for the whole test
        server.add(fs_name("us-central1", 10_000 + index), 3600)
    names = spread(server, [fs_name("us-central1", index) for index in range(3)], 0.5, 1.0)
    async with serving(server) as target, client_for(target) as client:
        reported = await report_times(client, names)

    assert_each_reported_once_after_it_finished(server, names, reported)
    # One listing (3 pages) taught the client that the location holds 2,993
    # running operations: from then on 3 GetOperations per round are cheaper.
    assert server.calls["ListOperations"] == 3
    # Several rounds of 3 GetOperations followed and no listing again (a quiet machine makes
    # about 10 rounds before the operations end; a loaded one fewer, as each round comes late).
    assert server.calls["GetOperation"] >= 3 * 2


async def test_the_page_size_the_server_gives_is_learned() -> None:
    server = Server()
    server.listings.page_cap = 25
    for index in range(500):
        server.add(fs_name("us-central1", 10_000 + index), 3600)
    names = spread(server, [fs_name("us-central1", index) for index in range(12)], 0.3, 0.8)
    async with serving(server) as target, client_for(target) as client:
        reported = await report_times(client, names)

    assert_each_reported_once_after_it_finished(server, names, reported)
    # The first listing stops where it costs as many calls as the 12 operations
    # it claimed (12 pages of 25), and teaches that the location holds at
    # least 300 running: from then on one by one.
    assert server.calls["ListOperations"] == 12


async def test_list_pages_count_against_the_calls_per_second_budget() -> None:
    qps = 40.0
    server = Server()
    server.listings.page_cap = 5  # every round is several pages
    names = spread(server, [fs_name("us-east1", index) for index in range(40)], 0.2, 0.8)
    sent = SentCalls()
    async with serving(server) as target, client_for(target, batch_qps=qps, interceptors=[sent]) as client:
        reported = await report_times(client, names)

    assert_each_reported_once_after_it_finished(server, names, reported)
    assert server.calls["ListOperations"] >= 8
    # Every page and every GetOperation the client sent is under the budget, counted where
    # the client sends it (see sent_calls.py: arrivals at the server bunch up under load).
    assert len(sent.times()) == len(server.call_times)
    assert len(sent.times("ListOperations")) == server.calls["ListOperations"]
    assert_calls_per_second(sent.times(), qps, windows=(0.1, 0.5))


async def test_resource_exhausted_on_a_listing_pauses_the_scheduler(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="lro_grpc.batch")
    server = Server()
    server.listings.refuse = 1
    names = spread(server, [fs_name("us-east1", index) for index in range(30)], 0.05, 0.2)
    async with serving(server) as target, client_for(target) as client:
        started = time.monotonic()
        reported = await report_times(client, names)

    assert_each_reported_once_after_it_finished(server, names, reported)
    first_report = min(at for at, _ in reported.values())
    assert first_report - started >= 0.3  # the RetryInfo delay, for every operation
    pauses = [record for record in caplog.records if record.name == "lro_grpc.batch" and "pauses" in record.message]
    assert len(pauses) == 1 and pauses[0].levelno == logging.INFO


async def test_a_discarded_listing_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="lro_grpc.batch")
    server = Server()
    server.listings.unreachable = ["projects/p/locations/far-away"]
    names = spread(server, [fs_name("us-east1", index) for index in range(5)], 0.05, 0.1)
    async with serving(server) as target, client_for(target) as client:
        await report_times(client, names)

    messages = [record.getMessage() for record in caplog.records if record.name == "lro_grpc.batch"]
    assert any("discarded" in message and "far-away" in message for message in messages)


async def test_service_management_scopes_are_listed_by_service() -> None:
    server = Server()
    names = [
        *spread(server, [sm_name("a.example.com", index) for index in range(30)], 0.1, 0.5),
        *spread(server, [sm_name("b.example.com", index) for index in range(30)], 0.1, 0.5, seed=3),
    ]
    async with serving(server) as target, client_for(target) as client:
        reported = await report_times(client, names)

    assert_each_reported_once_after_it_finished(server, names, reported)
    filters = {request.filter for request in server.list_requests}
    running = {text for text in filters if text.endswith("status=in_progress")}
    assert running == {
        "serviceName=a.example.com AND status=in_progress",
        "serviceName=b.example.com AND status=in_progress",
    }
    # And a done listing of each service (this server answers it as the running one: not used again).
    assert {text.split(" AND startTime")[0] for text in filters - running} <= {
        "serviceName=a.example.com AND status=done",
        "serviceName=b.example.com AND status=done",
    }
    assert {request.page_size for request in server.list_requests} == {SERVICE_MANAGEMENT_PAGE_SIZE}
    # About one GetOperation per operation, and one spot check per round.
    assert server.calls["GetOperation"] <= 1.2 * len(names) + server.calls["ListOperations"]


async def test_a_batch_mixing_apis_and_scopes_of_one_and_many_operations() -> None:
    server = Server()
    big = spread(server, [fs_name("us-central1", index) for index in range(10_000)], 0.2, 1.5)
    lone_fs = [server.add(fs_name("europe-west1", 0), 0.3)]
    lone_sm = [server.add(sm_name("lone.example.com", 0), 0.3)]
    unscoped = [server.add("operations/opaque-id-1", 0.3)]
    many_sm = spread(server, [sm_name("many.example.com", index) for index in range(200)], 0.2, 1.0, seed=4)
    names = [*big, *lone_fs, *lone_sm, *unscoped, *many_sm]
    random.Random(5).shuffle(names)
    async with serving(server) as target, client_for(target, poll_policy=PollPolicy(0.2, 1, 0.2, 0)) as client:
        reported = await report_times(client, names, timeout=60)

    assert_each_reported_once_after_it_finished(server, names, reported)
    # The lone operations and the one without a scope were polled on their own.
    for name in [*lone_fs, *lone_sm, *unscoped]:
        assert server.gets[name] >= 1
    assert server.calls["GetOperation"] <= 1.2 * len(names)


def test_the_sync_client_sweeps_too() -> None:
    server = Server()
    names = spread(server, [fs_name("us-east1", index) for index in range(100)], 0.1, 0.5)

    async def serve_until(stop: threading.Event, ready: Callable[[str], None]) -> None:
        async with serving(server) as target:
            ready(target)
            while not stop.is_set():
                await asyncio.sleep(0.01)

    stop = threading.Event()
    targets: list[str] = []
    ready = threading.Event()
    thread = threading.Thread(
        target=asyncio.run, args=(serve_until(stop, lambda t: (targets.append(t), ready.set())),), daemon=True
    )
    thread.start()
    try:
        assert ready.wait(10)
        with OperationsClient(targets[0], retry_policy=NO_RETRY, poll_policy=POLL) as client:
            results = client.wait_all(names, timeout=30)
    finally:
        stop.set()
        thread.join(10)

    assert [op.name for op in results] == names
    assert all(op.done for op in results)
    assert server.calls["ListOperations"] >= 1
    assert server.calls["GetOperation"] <= 1.2 * len(names)


async def test_a_waiter_of_its_own_sweeps_with_its_clients_listing() -> None:
    server = Server()
    names = spread(server, [fs_name("us-east1", index) for index in range(50)], 0.1, 0.4)
    async with serving(server) as target, client_for(target) as client:
        waiter: BatchWaiter[Any] = BatchWaiter(client, names, timeout=30, qps=1000)
        assert waiter.scheduler is not client._batch_scheduler()
        assert isinstance(waiter.scheduler, BatchScheduler) and waiter.scheduler.sweeps
        results = [op async for op in waiter]

    assert sorted(op.name for op in results) == sorted(names)
    assert server.calls["ListOperations"] >= 1


async def test_wait_all_through_the_module_function_sweeps() -> None:
    server = Server()
    names = spread(server, [fs_name("us-east1", index) for index in range(40)], 0.1, 0.4)
    async with serving(server) as target, client_for(target) as client:
        results = await wait_all(client, names, timeout=30)
        calls = dict(client._batch_scheduler().calls)

    assert [op.name for op in results] == names
    assert calls["ListOperations"] == server.calls["ListOperations"] >= 1
    assert calls["GetOperation"] == server.calls["GetOperation"]


# --------------------------------------------------------------------------- against the emulator


async def start_instances(target: str, durations: list[float], *, project: str) -> list[str]:
    """One CreateInstance per duration, spread over the eight locations; every seventh one fails."""
    semaphore = asyncio.Semaphore(50)
    async with grpc.aio.insecure_channel(target) as channel:
        aml = fs_grpc.AMLStub(channel)

        async def create(index: int, duration: float) -> str:
            metadata = [(DURATION_HEADER, repr(duration))]
            if index % 7 == 0:
                metadata.append((OUTCOME_HEADER, "fail"))
            location = FINANCIAL_SERVICES_LOCATIONS[index % len(FINANCIAL_SERVICES_LOCATIONS)]
            request = fs.CreateInstanceRequest(
                parent=f"projects/{project}/locations/{location}", instance_id=f"instance-{index}"
            )
            async with semaphore:
                operation = await aml.CreateInstance(request, metadata=metadata)
            return str(operation.name)

        return list(await asyncio.gather(*(create(index, duration) for index, duration in enumerate(durations))))


@pytest.mark.parametrize(
    "faults",
    [
        Faults(),
        Faults(list_filter="ignore"),
        Faults(list_filter="reject"),
        Faults(list_omit_running=0.2, seed=11),
    ],
    ids=["obeyed", "ignored", "rejected", "20% left out"],
)
async def test_sweeping_the_emulator_reports_every_operation_once_with_its_outcome(faults: Faults) -> None:
    rng = random.Random(12)
    durations = [rng.uniform(0.2, 1.5) for _ in range(400)]
    with Emulator(faults=faults) as emu:
        names = await start_instances(emu.target, durations, project="sweep")
        others = await start_instances(emu.target, [3600.0] * 80, project="sweep-others")
        assert others  # other callers' running operations do not concern the batch
        async with client_for(emu.target, poll_policy=PollPolicy(0.2, 1, 0.2, 0)) as client:
            reported = [op async for op in client.as_completed(names, timeout=60)]
            calls = dict(client._batch_scheduler().calls)

    assert sorted(op.name for op in reported) == sorted(names)
    for op in reported:
        index = names.index(op.name)
        assert op.done
        if index % 7 == 0:
            assert op.error is not None
        else:
            assert op.error is None and isinstance(op.response, fs.Instance)
    # What polling each operation every 0.2 s until it is done would cost.
    one_by_one = sum(int(duration / 0.2) + 1 for duration in durations)
    if faults.list_filter == "reject":
        assert calls["ListOperations"] == len(FINANCIAL_SERVICES_LOCATIONS)  # once per location, then remembered
    elif faults.list_omit_running:
        # Each left-out running operation costs a GetOperation; still far below polling one by one.
        assert calls["GetOperation"] + calls["ListOperations"] <= 0.5 * one_by_one
    else:
        assert calls["GetOperation"] <= 1.5 * len(names)
        assert calls["GetOperation"] + calls["ListOperations"] <= 0.3 * one_by_one


async def test_sweeping_service_management_operations_of_the_emulator_by_service() -> None:
    rng = random.Random(13)
    services = ["alpha.example.com", "beta.example.com"]
    with Emulator() as emu:
        async with grpc.aio.insecure_channel(emu.target) as channel:
            manager = sm_grpc.ServiceManagerStub(channel)
            names = []
            for index in range(60):
                request = sm.SubmitConfigSourceRequest(
                    service_name=services[index % 2],
                    config_source=sm.ConfigSource(
                        files=[sm.ConfigFile(file_path="api.yaml", file_contents=b"type: google.api.Service")]
                    ),
                )
                duration = f"{rng.uniform(0.2, 1.2):.3f}"
                operation = await manager.SubmitConfigSource(request, metadata=((DURATION_HEADER, duration),))
                names.append(operation.name)
        async with client_for(emu.target, poll_policy=PollPolicy(0.2, 1, 0.2, 0)) as client:
            reported = [op async for op in client.as_completed(names, timeout=60)]
            calls = dict(client._batch_scheduler().calls)

    assert sorted(op.name for op in reported) == sorted(names)
    assert all(isinstance(op.response, sm.SubmitConfigSourceResponse) for op in reported)
    assert calls["ListOperations"] >= 2  # the emulator accepts serviceName=... AND status=in_progress
    assert calls["GetOperation"] <= 1.5 * len(names)
