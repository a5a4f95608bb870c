"""OpenTelemetry: spans per wait and per batch, RPC/poll/retry counters, time to done, batch pending.

The SDK's in-memory exporters collect what lro_grpc reports; opentelemetry-instrumentation-grpc
adds its CLIENT span per RPC, which lro_grpc must not double.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.longrunning import operations_pb2
from opentelemetry import metrics, trace
from opentelemetry.instrumentation.grpc import GrpcInstrumentorClient
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from servicer import Fault, ScriptedOperations, serve

from lro_grpc import AsyncOperationsClient, BatchTimeoutError, OperationsClient, PollPolicy, RetryPolicy
from lro_grpc.emulator import Emulator

PARENT = "projects/p/locations/us-central1"
FAST = PollPolicy(initial=0.02, multiplier=1.0, maximum=0.02, jitter=0.0)

SPANS = InMemorySpanExporter()
METRICS = InMemoryMetricReader()


@pytest.fixture(scope="module", autouse=True)
def _sdk() -> None:
    # OpenTelemetry's global providers can be set once per process: here, when this module
    # runs (not at collection), so the rest of the suite runs without an SDK. lro_grpc's
    # tracer and meter, possibly made earlier, are proxies that follow the providers set.
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(SPANS))
    trace.set_tracer_provider(provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[METRICS]))


@pytest.fixture(autouse=True)
def _fresh_spans(_sdk: None) -> None:
    SPANS.clear()


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(speed=0) as emulator:
        yield emulator


def ours(kind: str) -> list[ReadableSpan]:
    return [span for span in SPANS.get_finished_spans() if span.name == f"lro_grpc.{kind}"]


def points(name: str) -> list[Any]:
    """Every data point of the metric ``name`` (cumulative: totals since the start)."""
    data = METRICS.get_metrics_data()
    found = []
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == name:
                    found.extend(metric.data.data_points)
    return found


def total(name: str, **attributes: object) -> float:
    return sum(
        point.value for point in points(name) if all(point.attributes.get(k) == v for k, v in attributes.items())
    )


def test_a_wait_is_one_span_with_its_polls_and_outcome_and_counts_its_rpcs(emu: Emulator) -> None:
    name = emu.start_operation(PARENT, duration=10)
    calls_before = total("lro_grpc.rpc.calls", **{"rpc.method": "GetOperation", "rpc.grpc.status_code": "OK"})
    polls_before = total("lro_grpc.polls", **{"lro.api": "financialservices"})
    timer = threading.Timer(0.2, emu.advance, args=(10,))
    timer.start()
    with OperationsClient(emu.target, poll_policy=FAST) as client:
        client.operation(name).result(timeout=30)
    timer.join()
    (span,) = ours("wait")
    assert span.kind is trace.SpanKind.INTERNAL
    assert span.attributes is not None
    assert span.attributes["lro.operation.name"] == name and span.attributes["lro.api"] == "financialservices"
    assert span.attributes["lro.outcome"] == "succeeded"
    polls = span.attributes["lro.polls"]
    assert isinstance(polls, int) and polls >= 2
    assert total("lro_grpc.polls", **{"lro.api": "financialservices"}) - polls_before == polls
    calls = total("lro_grpc.rpc.calls", **{"rpc.method": "GetOperation", "rpc.grpc.status_code": "OK"})
    assert calls - calls_before == polls
    histogram = [p for p in points("lro_grpc.operation.time_to_done") if p.attributes["lro.outcome"] == "succeeded"]
    assert histogram and histogram[0].count >= 1 and histogram[0].sum > 0


def test_retries_and_failed_attempts_are_counted(servicer: ScriptedOperations, client: OperationsClient) -> None:
    name = "projects/p/locations/us-central1/operations/op-1"
    servicer.add(operations_pb2.Operation(name=name, done=True))
    servicer.inject("GetOperation", Fault(grpc.StatusCode.UNAVAILABLE))
    labels = {"rpc.method": "GetOperation", "rpc.grpc.status_code": "UNAVAILABLE"}
    retries, failures = total("lro_grpc.retries", **labels), total("lro_grpc.rpc.calls", **labels)
    client.get(name)
    assert total("lro_grpc.retries", **labels) - retries == 1
    assert total("lro_grpc.rpc.calls", **labels) - failures == 1
    assert ours("wait") == []  # a get is not a wait


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_a_get_with_the_clients_own_settings_is_counted_as_before(servicer: ScriptedOperations, is_async: bool) -> None:
    # Settings under which a get makes its first attempt itself when nothing counts attempts
    # (lro_grpc._fast_get); with a meter provider set, each attempt is counted as the plan counts it.
    name = "projects/p/locations/us-central1/operations/op-2"
    servicer.add(operations_pb2.Operation(name=name, done=True))
    retry = RetryPolicy(initial=0.01, jitter=0, max_attempts=4, timeout=5)
    failed = {"rpc.method": "GetOperation", "rpc.grpc.status_code": "UNAVAILABLE"}
    answered = {"rpc.method": "GetOperation", "rpc.grpc.status_code": "OK"}
    before = [total("lro_grpc.retries", **failed), total("lro_grpc.rpc.calls", **failed)]
    before.append(total("lro_grpc.rpc.calls", **answered))

    async def twice_async(target: str) -> None:
        async with AsyncOperationsClient(target, retry_policy=retry, rpc_timeout=1.0) as client:
            assert client._direct_get
            await client.get(name)
            await client.get(name)

    with serve(servicer) as target:
        servicer.inject("GetOperation", Fault(), Fault(grpc.StatusCode.UNAVAILABLE))
        if is_async:
            asyncio.run(twice_async(target))
        else:
            with OperationsClient(target, retry_policy=retry, rpc_timeout=1.0) as client:
                assert client._direct_get
                client.get(name)  # the first answer (until then the plan makes every call)
                client.get(name)  # UNAVAILABLE, then the answer
    after = [total("lro_grpc.retries", **failed), total("lro_grpc.rpc.calls", **failed)]
    after.append(total("lro_grpc.rpc.calls", **answered))
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 2]
    assert len(servicer.calls_to("GetOperation")) == 3


def test_a_timed_out_wait_says_so(servicer: ScriptedOperations, client: OperationsClient) -> None:
    name = "operations/slow"
    servicer.add(operations_pb2.Operation(name=name))
    with pytest.raises(TimeoutError):
        client.operation(name).result(timeout=0.2)
    (span,) = ours("wait")
    assert span.attributes is not None and span.attributes["lro.outcome"] == "timeout"
    assert span.status.status_code is trace.StatusCode.ERROR


def test_a_batch_is_one_span_and_its_pending_count_returns_to_zero(emu: Emulator) -> None:
    names = [emu.start_operation(PARENT, duration=0) for _ in range(4)]
    names.append(emu.start_operation(PARENT, duration=0, fail=True))
    running = emu.start_operation(PARENT, duration=600)
    pending_before = total("lro_grpc.batch.pending")
    with OperationsClient(emu.target, poll_policy=FAST) as client:
        client.wait_all(names, timeout=30)
        completed = client.as_completed([*names, running], timeout=30)
        next(completed)
        assert total("lro_grpc.batch.pending") - pending_before == 5  # 6 waited for, one seen
        completed.close()
        with pytest.raises(BatchTimeoutError):
            client.wait_all([running], timeout=0.3)
    assert total("lro_grpc.batch.pending") == pending_before
    first, second, third = ours("batch")
    assert first.attributes is not None and dict(first.attributes) == {
        "lro.batch.size": 5,
        "lro.batch.completed": 5,
        "lro.batch.failed": 1,
        "lro.outcome": "completed",
    }
    assert second.attributes is not None and second.attributes["lro.batch.size"] == 6
    assert third.attributes is not None and third.attributes["lro.outcome"] == "timeout"


async def test_async_client_spans_and_batches(emu: Emulator) -> None:
    names = [emu.start_operation(PARENT, duration=0) for _ in range(2)]
    async with AsyncOperationsClient(emu.target, poll_policy=FAST) as client:
        await client.operation(names[0]).result(timeout=30)
        assert [op.name async for op in client.as_completed(names, timeout=30)]
    (wait,) = ours("wait")
    (batch,) = ours("batch")
    assert wait.attributes is not None and wait.attributes["lro.outcome"] == "succeeded"
    assert batch.attributes is not None and batch.attributes["lro.batch.completed"] == 2


def test_rpc_spans_come_from_grpc_instrumentation_only_and_nest_under_the_wait(emu: Emulator) -> None:
    instrumentor = GrpcInstrumentorClient()
    instrumentor.instrument()
    try:
        name = emu.start_operation(PARENT, duration=0)
        SPANS.clear()
        with OperationsClient(emu.target, poll_policy=FAST) as client:
            client.operation(name).result(timeout=30)
    finally:
        instrumentor.uninstrument()
    (wait,) = ours("wait")
    rpc_spans = [span for span in SPANS.get_finished_spans() if span.kind is trace.SpanKind.CLIENT]
    assert wait.attributes is not None and len(rpc_spans) == wait.attributes["lro.polls"] == 1
    assert rpc_spans[0].parent is not None and rpc_spans[0].parent.span_id == wait.context.span_id
    assert {span.name for span in SPANS.get_finished_spans()} - {"lro_grpc.wait"} == {rpc_spans[0].name}


@pytest.mark.slow  # a subprocess
def test_nothing_is_imported_without_a_wait_and_nothing_needed_without_opentelemetry() -> None:
    code = (
        "import sys\n"
        "import lro_grpc\n"
        "assert 'opentelemetry' not in sys.modules, 'imported at import time'\n"
        "sys.modules['opentelemetry'] = None  # as if not installed\n"
        "from lro_grpc.emulator import Emulator\n"
        "with Emulator(speed=0) as emu, lro_grpc.OperationsClient(emu.target) as client:\n"
        "    name = emu.start_operation('projects/p/locations/l', duration=0)\n"
        "    client.operation(name).result(timeout=30)\n"
        "    client.wait_all([name], timeout=30)\n"
        "from lro_grpc import _telemetry\n"
        "assert _telemetry.instruments() is None\n"
        "print('ok')\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert completed.returncode == 0 and completed.stdout == "ok\n", completed.stderr


@pytest.mark.slow  # a subprocess: the meter provider can be set once per process
def test_calls_count_from_the_moment_a_meter_provider_is_set() -> None:
    # Before any provider is set the API drops every count, so a call makes no counter at
    # all; the calls made once one is set are counted, by the instruments made before it.
    code = (
        "from opentelemetry import metrics\n"
        "from opentelemetry.sdk.metrics import MeterProvider\n"
        "from opentelemetry.sdk.metrics.export import InMemoryMetricReader\n"
        "import lro_grpc\n"
        "from lro_grpc import _telemetry\n"
        "from lro_grpc.emulator import Emulator\n"
        "with Emulator(speed=0) as emu, lro_grpc.OperationsClient(emu.target) as client:\n"
        "    name = emu.start_operation('projects/p/locations/l', duration=0)\n"
        "    client.get(name)\n"
        "    assert _telemetry.instruments() is not None and _telemetry.observer() is None\n"
        "    reader = InMemoryMetricReader()\n"
        "    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))\n"
        "    assert _telemetry.observer() is not None\n"
        "    client.get(name)\n"
        "    client.get(name)\n"
        "    data = reader.get_metrics_data()\n"
        "calls = [\n"
        "    point.value\n"
        "    for resource in data.resource_metrics\n"
        "    for scope in resource.scope_metrics\n"
        "    for metric in scope.metrics if metric.name == 'lro_grpc.rpc.calls'\n"
        "    for point in metric.data.data_points\n"
        "]\n"
        "print(calls)\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == "[2]\n"
