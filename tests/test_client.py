"""Both clients over real gRPC on loopback: each test runs with OperationsClient and AsyncOperationsClient.

The ``kind`` fixture (see both_clients.py) drives either client from one
``async def`` test. Only the tests at the end, about threads, tasks and event
loops, are about one client.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time

import google.auth.credentials
import grpc
import pytest
from both_clients import AnyClient, ClientKind
from google.longrunning import operations_pb2
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from servicer import (
    DELIVERY_ALLOWANCE,
    FAST_POLL,
    FAST_RETRY,
    LATE_UNDER_LOAD,
    Fault,
    ScriptedOperations,
    pack,
)

from lro_grpc import (
    AnyDecodeError,
    AsyncOperationsClient,
    InvalidNameError,
    OperationCancelledError,
    OperationError,
    OperationNotFoundError,
    OperationsClient,
    PollPolicy,
    RetryPolicy,
    RpcError,
    UnknownTypeError,
    WaitTimeoutError,
    _core,
)
from lro_grpc._channels import EMULATOR_HOST_ENV
from lro_grpc._generated import financialservices_v1_pb2 as fs
from lro_grpc._generated import operations_pb2_grpc
from lro_grpc._generated import servicemanagement_v1_pb2 as sm

FS_NAME = "projects/my-proj/locations/us-central1/operations/op-123"
SM_NAME = "operations/rollouts.endpointsapis.appspot.com:2016-07-16r2"
PARENT = "projects/my-proj/locations/us-central1"

MALFORMED = ["", "operations/", "projects/p/operations/x", "projects/p/locations/l/operations/", "op-123"]


def running(name: str = FS_NAME) -> operations_pb2.Operation:
    metadata = fs.OperationMetadata(target=f"{PARENT}/instances/i1", verb="create", api_version="v1")
    return operations_pb2.Operation(name=name, metadata=pack(metadata), done=False)


def succeeded(name: str = FS_NAME) -> operations_pb2.Operation:
    op = running(name)
    op.done = True
    op.response.CopyFrom(pack(fs.Instance(name=f"{PARENT}/instances/i1", state=fs.Instance.State.ACTIVE)))
    return op


# -- every RPC ---------------------------------------------------------------------------------------


async def test_get_returns_typed_metadata(
    kind: ClientKind, any_client: AnyClient, servicer: ScriptedOperations
) -> None:
    servicer.add(running())
    op = await kind.call(any_client.get, FS_NAME)
    assert isinstance(op, kind.handle_class)
    assert (op.name, op.done) == (FS_NAME, False)
    assert isinstance(op.metadata, fs.OperationMetadata)
    assert (op.metadata.verb, op.metadata.target) == ("create", f"{PARENT}/instances/i1")
    assert op.response is None and op.error is None
    assert servicer.methods_called() == ["GetOperation"]


async def test_result_of_done_operation_needs_no_rpc(
    kind: ClientKind, any_client: AnyClient, servicer: ScriptedOperations
) -> None:
    servicer.add(succeeded())
    op = await kind.call(any_client.get, FS_NAME)
    instance = await kind.call(op.result, timeout=5)
    assert isinstance(instance, fs.Instance)
    assert instance.state == fs.Instance.State.ACTIVE
    assert servicer.methods_called() == ["GetOperation"]


async def test_result_polls_until_done(kind: ClientKind, any_client: AnyClient, servicer: ScriptedOperations) -> None:
    servicer.script(FS_NAME, running(), running(), succeeded())
    op = await kind.call(any_client.get, FS_NAME)
    instance = await kind.call(op.result, timeout=5)
    assert isinstance(instance, fs.Instance)
    assert op.done and servicer.methods_called() == ["GetOperation"] * 3


async def test_refresh_updates_the_handle(
    kind: ClientKind, any_client: AnyClient, servicer: ScriptedOperations
) -> None:
    servicer.script(FS_NAME, running(), succeeded())
    op = await kind.call(any_client.get, FS_NAME)
    assert not op.done
    await kind.call(op.refresh)
    assert op.done and isinstance(op.response, fs.Instance)


async def test_list_fetches_pages_lazily(kind: ClientKind, any_client: AnyClient, servicer: ScriptedOperations) -> None:
    servicer.add(*(running(f"{PARENT}/operations/op-{index}") for index in range(5)))
    pager = any_client.list(PARENT, page_size=2)
    assert servicer.calls_to("ListOperations") == []
    steps = kind.stepper(pager)
    first = [await steps.next(), await steps.next()]
    assert len(servicer.calls_to("ListOperations")) == 1
    third = await steps.next()
    assert len(servicer.calls_to("ListOperations")) == 2
    rest = await steps.rest()
    names = [op.name for op in [*first, third, *rest]]
    assert names == [f"{PARENT}/operations/op-{index}" for index in range(5)]
    requests = [call.request for call in servicer.calls_to("ListOperations")]
    assert [request.page_token for request in requests] == ["", "2", "4"]
    assert all(request.page_size == 2 and request.name == PARENT for request in requests)
    assert pager.next_page_token == "" and pager.pages_fetched == 3
    assert isinstance(first[0].metadata, fs.OperationMetadata)


async def test_list_filter_partial_success_and_pages(
    kind: ClientKind, any_client: AnyClient, servicer: ScriptedOperations
) -> None:
    servicer.add(running(f"{PARENT}/operations/a"), succeeded(f"{PARENT}/operations/b"))
    servicer.unreachable = ["projects/my-proj/locations/europe-west4"]
    pager = any_client.list(PARENT, filter="done=false", return_partial_success=True)
    pages = await kind.collect(pager.pages)
    assert [[op.name for op in page.operations] for page in pages] == [[f"{PARENT}/operations/a"]]
    assert pager.unreachable == ["projects/my-proj/locations/europe-west4"]
    request = servicer.calls_to("ListOperations")[0].request
    assert (request.filter, request.return_partial_success, request.page_size) == ("done=false", True, 0)


async def test_cancel_is_best_effort_and_ends_cancelled(
    kind: ClientKind, any_client: AnyClient, servicer: ScriptedOperations
) -> None:
    servicer.add(running())
    op = await kind.call(any_client.get, FS_NAME)
    await kind.call(op.cancel)
    assert not op.done  # cancelling does not change the handle: the outcome comes from polling
    with pytest.raises(OperationCancelledError) as caught:
        await kind.call(op.result, timeout=5)
    assert caught.value.code is grpc.StatusCode.CANCELLED
    assert servicer.methods_called() == ["GetOperation", "CancelOperation", "GetOperation"]


async def test_delete_then_get_is_not_found(
    kind: ClientKind, any_client: AnyClient, servicer: ScriptedOperations
) -> None:
    servicer.add(succeeded())
    await kind.call(any_client.delete, FS_NAME)
    with pytest.raises(OperationNotFoundError, match="expired") as caught:
        await kind.call(any_client.get, FS_NAME)
    assert caught.value.code is grpc.StatusCode.NOT_FOUND
    assert isinstance(caught.value.__cause__, grpc.RpcError)
    assert servicer.methods_called() == ["DeleteOperation", "GetOperation"]  # NOT_FOUND is not retried


async def test_wait_uses_wait_operation(kind: ClientKind, any_client: AnyClient, servicer: ScriptedOperations) -> None:
    servicer.script(SM_NAME, running(SM_NAME), succeeded(SM_NAME))
    op = await kind.call(any_client.wait, SM_NAME, timeout=5)
    assert op.done and isinstance(op.response, fs.Instance)
    calls = servicer.calls_to("WaitOperation")
    assert len(calls) == 2 and servicer.calls_to("GetOperation") == []
    asked = calls[0].request.timeout.ToTimedelta().total_seconds()
    assert 0 < asked <= 5
    # gRPC core may round the encoded grpc-timeout header up a little (to keep it
    # short), so the server can see slightly more than the client's 5 s.
    assert calls[0].time_remaining is not None and calls[0].time_remaining <= 5 * 1.02


async def test_wait_falls_back_to_polling_and_remembers(
    kind: ClientKind, any_client: AnyClient, servicer: ScriptedOperations
) -> None:
    servicer.wait_implemented = False
    servicer.script(FS_NAME, running(), succeeded())
    assert any_client.wait_rpc_available
    assert (await kind.call(any_client.wait, FS_NAME, timeout=5)).done
    assert servicer.methods_called() == ["WaitOperation", "GetOperation", "GetOperation"]
    assert not any_client.wait_rpc_available
    servicer.calls.clear()
    assert (await kind.call(any_client.wait, FS_NAME, timeout=5)).done
    assert servicer.methods_called() == ["GetOperation"]


async def test_every_stub_method_is_wrapped(
    kind: ClientKind, any_client: AnyClient, servicer: ScriptedOperations
) -> None:
    service = operations_pb2.DESCRIPTOR.services_by_name["Operations"]
    servicer.add(running(), succeeded(SM_NAME))
    await kind.call(any_client.get, FS_NAME)
    await kind.collect(any_client.list(PARENT))
    await kind.call(any_client.wait, SM_NAME, timeout=5)
    await kind.call(any_client.cancel, FS_NAME)
    await kind.call(any_client.delete, FS_NAME)
    assert set(servicer.methods_called()) == {method.name for method in service.methods}


# -- headers -----------------------------------------------------------------------------------------


async def test_request_headers(kind: ClientKind, any_client: AnyClient, servicer: ScriptedOperations) -> None:
    servicer.add(succeeded(SM_NAME))
    await kind.call(any_client.get, SM_NAME)
    await kind.collect(any_client.list(PARENT))
    get_headers = servicer.calls_to("GetOperation")[0].metadata
    assert get_headers["x-goog-request-params"] == "name=operations/rollouts.endpointsapis.appspot.com%3A2016-07-16r2"
    api_client = get_headers["x-goog-api-client"].split()
    assert api_client[0].startswith("gl-python/") and api_client[1] == f"grpc/{grpc.__version__}"
    assert any(part.startswith("gax/lro-grpc") for part in api_client)
    list_headers = servicer.calls_to("ListOperations")[0].metadata
    assert list_headers["x-goog-request-params"] == f"name={PARENT}"


# -- retries -----------------------------------------------------------------------------------------


async def test_unavailable_is_retried(kind: ClientKind, any_client: AnyClient, servicer: ScriptedOperations) -> None:
    servicer.add(running())
    servicer.inject("GetOperation", Fault(grpc.StatusCode.UNAVAILABLE), Fault(grpc.StatusCode.UNAVAILABLE))
    # timeout=None: the retries need not fit FAST_RETRY's 5 s overall timeout on a loaded machine.
    assert (await kind.call(any_client.get, FS_NAME, timeout=None)).name == FS_NAME
    assert len(servicer.calls_to("GetOperation")) == 3


async def test_retries_give_up_after_max_attempts(
    kind: ClientKind, any_client: AnyClient, servicer: ScriptedOperations
) -> None:
    servicer.add(running())
    servicer.inject("GetOperation", *[Fault(grpc.StatusCode.UNAVAILABLE, "down")] * FAST_RETRY.max_attempts)
    with pytest.raises(RpcError, match="UNAVAILABLE: down") as caught:
        # No overall timeout (FAST_RETRY's 5 s can run out first on a loaded machine):
        # the attempts alone end the retries, each bounded by the client's rpc_timeout.
        await kind.call(any_client.get, FS_NAME, timeout=None)
    assert caught.value.code is grpc.StatusCode.UNAVAILABLE
    assert isinstance(caught.value.__cause__, grpc.RpcError)
    assert len(servicer.calls_to("GetOperation")) == FAST_RETRY.max_attempts


async def test_non_read_deadline_exceeded_is_not_retried(
    kind: ClientKind, any_client: AnyClient, servicer: ScriptedOperations
) -> None:
    servicer.add(running())
    servicer.inject("CancelOperation", Fault(grpc.StatusCode.DEADLINE_EXCEEDED))
    with pytest.raises(RpcError) as caught:
        await kind.call(any_client.cancel, FS_NAME)
    assert caught.value.code is grpc.StatusCode.DEADLINE_EXCEEDED
    assert (caught.value.method, caught.value.operation_name) == ("CancelOperation", FS_NAME)
    assert len(servicer.calls_to("CancelOperation")) == 1


async def test_resource_exhausted_honours_retry_info(
    kind: ClientKind, any_client: AnyClient, servicer: ScriptedOperations
) -> None:
    servicer.add(running())
    servicer.inject("GetOperation", Fault(grpc.StatusCode.RESOURCE_EXHAUSTED, "quota", retry_delay=0.3))
    await kind.call(any_client.get, FS_NAME)
    first, second = servicer.calls_to("GetOperation")
    assert second.received_at - first.received_at >= 0.3  # FAST_RETRY alone would wait 0.01 s


async def test_resource_exhausted_while_polling_slows_down(
    kind: ClientKind, target: str, servicer: ScriptedOperations
) -> None:
    servicer.script(FS_NAME, running(), running(), succeeded())
    # One attempt per RPC: a quota error while polling must not count as a failed retry.
    no_retries = RetryPolicy(initial=0.01, maximum=0.01, max_attempts=1)
    async with kind.open(target, retry_policy=no_retries, poll_policy=FAST_POLL) as client:
        op = await kind.call(client.get, FS_NAME)
        servicer.inject("GetOperation", Fault(grpc.StatusCode.RESOURCE_EXHAUSTED, retry_delay=0.25))
        assert isinstance(await kind.call(op.result, timeout=5), fs.Instance)
    polls = servicer.calls_to("GetOperation")
    assert len(polls) == 4
    assert polls[2].received_at - polls[1].received_at >= 0.25


# -- deadlines ---------------------------------------------------------------------------------------


async def test_result_deadline_precision(kind: ClientKind, target: str, servicer: ScriptedOperations) -> None:
    servicer.add(running())
    sent = kind.sent_calls()
    timeout = 1.0
    async with kind.open(target, retry_policy=FAST_RETRY, poll_policy=FAST_POLL, interceptors=[sent]) as client:
        op = client.operation(FS_NAME)
        start = time.monotonic()
        with pytest.raises(WaitTimeoutError) as caught:
            await kind.call(
                op.result, timeout=timeout, poll_policy=PollPolicy(initial=0.3, multiplier=1, maximum=0.3, jitter=0)
            )
        elapsed = time.monotonic() - start
    # Not early: the last look is made just before the deadline (at T - FINAL_POLL_RESERVE), not one
    # interval before it, and the wait gives up only after that look.
    assert elapsed >= timeout - _core.FINAL_POLL_RESERVE - 0.02
    assert elapsed <= timeout + LATE_UNDER_LOAD  # see LATE_UNDER_LOAD; whether a look outlived it is below
    # Looks at about 0, 0.3, 0.6, then one whose time runs to the deadline (on a quiet machine a last
    # one of FINAL_POLL_RESERVE just before it), instead of giving up at 0.6. Counted as the client
    # sent them: a look of 50 ms may expire before a loaded server runs its handler, and a late
    # answer may leave no time for the last look (benchmarks/deadline_precision.py measures that).
    looks = sent.sent("GetOperation")
    assert len(looks) >= 2  # (3 or more on a quiet machine; a stall of the loaded one can skip a look)
    assert looks[-1].timeout is not None and looks[-1].at + looks[-1].timeout >= start + timeout - 0.05
    for look in looks:  # no look was given time past the deadline ...
        assert look.timeout is not None and look.at + look.timeout <= start + timeout + DELIVERY_ALLOWANCE
    polls = servicer.calls_to("GetOperation")
    assert len(polls) >= 2
    for poll in polls:  # ... nor ran past it, as the server saw it
        assert poll.deadline_at is not None
        assert poll.deadline_at <= start + timeout + DELIVERY_ALLOWANCE
        assert poll.time_remaining is not None and poll.time_remaining <= timeout * 1.02  # grpc-timeout rounding
    assert caught.value.operation is op and caught.value.timeout == timeout
    assert isinstance(op.metadata, fs.OperationMetadata)  # the last seen state
    assert op.metadata.verb == "create" and not op.done


async def test_rpc_in_flight_does_not_outlive_deadline(
    kind: ClientKind, any_client: AnyClient, servicer: ScriptedOperations
) -> None:
    servicer.add(running())
    servicer.inject("GetOperation", Fault(hang=5))
    start = time.monotonic()
    with pytest.raises(WaitTimeoutError):
        await kind.call(any_client.operation(FS_NAME).result, timeout=0.5)
    elapsed = time.monotonic() - start
    assert 0.5 - _core.FINAL_POLL_RESERVE <= elapsed <= 0.5 + LATE_UNDER_LOAD  # not the 5 s hang
    (poll,) = servicer.calls_to("GetOperation")
    assert poll.time_remaining is not None and poll.time_remaining <= 0.5 * 1.02  # grpc-timeout rounding
    assert poll.deadline_at is not None and poll.deadline_at <= start + 0.5 + DELIVERY_ALLOWANCE


async def test_wait_rpc_does_not_outlive_deadline(kind: ClientKind, target: str, servicer: ScriptedOperations) -> None:
    servicer.add(running())
    servicer.inject("WaitOperation", Fault(hang=5))
    sent = kind.sent_calls()
    async with kind.open(target, retry_policy=FAST_RETRY, poll_policy=FAST_POLL, interceptors=[sent]) as client:
        start = time.monotonic()
        with pytest.raises(WaitTimeoutError) as caught:
            await kind.call(client.wait, FS_NAME, timeout=0.5)
        elapsed = time.monotonic() - start
    assert 0.5 - _core.FINAL_POLL_RESERVE <= elapsed <= 0.5 + LATE_UNDER_LOAD  # not the 5 s hang
    assert caught.value.operation is not None and caught.value.operation.name == FS_NAME
    assert caught.value.timeout == 0.5
    # As the client sent them: a WaitOperation asking for at most 0.5 s, then any look, none given time
    # past the deadline ...
    assert sent.sent()[0].method == "WaitOperation"
    for call in sent.sent():
        assert call.timeout is not None and call.at + call.timeout <= start + 0.5 + DELIVERY_ALLOWANCE
    # ... and as the server saw them (a loaded server may not run a handler before its deadline).
    for received in servicer.calls:
        assert received.time_remaining is not None and received.time_remaining <= 0.5 * 1.02
        assert received.deadline_at is not None and received.deadline_at <= start + 0.5 + DELIVERY_ALLOWANCE
    for received in servicer.calls_to("WaitOperation"):
        assert 0 < received.request.timeout.ToTimedelta().total_seconds() <= 0.5


async def test_timeout_none_waits_until_done(kind: ClientKind, target: str, servicer: ScriptedOperations) -> None:
    servicer.script(FS_NAME, running(), running(), running(), succeeded())
    sent = kind.sent_calls()
    async with kind.open(target, retry_policy=FAST_RETRY, poll_policy=FAST_POLL, interceptors=[sent]) as client:
        handle = client.operation(FS_NAME)
        instance = await kind.call(handle.result, timeout=None)
    assert instance == fs.Instance(name=f"{PARENT}/instances/i1", state=fs.Instance.State.ACTIVE)
    assert handle.done and not handle.failed
    # It polled until the operation was done, each look bounded by rpc_timeout (10 s) alone: no overall deadline.
    assert len(servicer.calls_to("GetOperation")) == 4
    looks = sent.sent("GetOperation")
    assert len(looks) == 4 and all(look.timeout is not None and 9.9 < look.timeout <= 10 for look in looks)


# -- operation outcomes and Any handling ---------------------------------------------------------------


async def test_unknown_and_corrupt_any(kind: ClientKind, any_client: AnyClient, servicer: ScriptedOperations) -> None:
    op_pb = operations_pb2.Operation(name=FS_NAME, done=True)
    op_pb.metadata.CopyFrom(any_pb2.Any(type_url="type.googleapis.com/example.v1.Unknown", value=b"\x08\x01"))
    op_pb.response.CopyFrom(any_pb2.Any(type_url="type.googleapis.com/google.cloud.financialservices.v1.Instance"))
    op_pb.response.value = b"\xff\xff\xff"
    servicer.add(op_pb)
    op = await kind.call(any_client.get, FS_NAME)  # the poll itself succeeds
    assert op.done and op.metadata_any is not None
    with pytest.raises(UnknownTypeError, match=re.escape("example.v1.Unknown")):
        _ = op.metadata
    with pytest.raises(AnyDecodeError, match=re.escape("google.cloud.financialservices.v1.Instance")):
        _ = op.response
    with pytest.raises(AnyDecodeError):
        await kind.call(op.result)


async def test_operation_error_details_unpacked(
    kind: ClientKind, any_client: AnyClient, servicer: ScriptedOperations
) -> None:
    status = status_pb2.Status(code=code_pb2.FAILED_PRECONDITION, message="instance quota")
    status.details.append(pack(error_details_pb2.ErrorInfo(reason="QUOTA", domain="financialservices.googleapis.com")))
    retry_info = error_details_pb2.RetryInfo()
    retry_info.retry_delay.FromSeconds(30)
    status.details.append(pack(retry_info))
    status.details.append(any_pb2.Any(type_url="type.googleapis.com/example.v1.Detail", value=b""))
    servicer.add(operations_pb2.Operation(name=FS_NAME, done=True, error=status))
    op = await kind.call(any_client.get, FS_NAME)
    error = op.error
    assert isinstance(error, OperationError) and not isinstance(error, OperationCancelledError)
    assert (error.code, error.message) == (grpc.StatusCode.FAILED_PRECONDITION, "instance quota")
    info, retry, unknown = error.details
    assert isinstance(info, error_details_pb2.ErrorInfo) and info.reason == "QUOTA"
    assert isinstance(retry, error_details_pb2.RetryInfo) and retry.retry_delay.seconds == 30
    assert isinstance(unknown, any_pb2.Any) and unknown.type_url.endswith("example.v1.Detail")
    with pytest.raises(OperationError, match="instance quota") as caught:
        await kind.call(op.result)
    assert caught.value.operation is op


async def test_done_without_result_is_success_without_value(
    kind: ClientKind, any_client: AnyClient, servicer: ScriptedOperations
) -> None:
    servicer.add(operations_pb2.Operation(name=SM_NAME, done=True))
    op = await kind.call(any_client.get, SM_NAME)
    assert await kind.call(op.result) is None
    assert op.response is None and op.error is None


async def test_not_found_mentions_expiry(kind: ClientKind, any_client: AnyClient, servicer: ScriptedOperations) -> None:
    with pytest.raises(OperationNotFoundError, match="expired"):
        await kind.call(any_client.get, FS_NAME)
    with pytest.raises(OperationNotFoundError):
        await kind.call(any_client.operation(FS_NAME).result, timeout=5)


async def test_malformed_names_rejected_before_any_rpc(
    kind: ClientKind, any_client: AnyClient, servicer: ScriptedOperations
) -> None:
    for name in MALFORMED:
        for call in (any_client.get, any_client.cancel, any_client.delete, any_client.wait):
            with pytest.raises(InvalidNameError):
                await kind.call(call, name)
        with pytest.raises(InvalidNameError):
            any_client.operation(name)
    with pytest.raises(TypeError):
        await kind.call(any_client.get, 123)
    with pytest.raises(InvalidNameError):
        any_client.list("projects/p")
    with pytest.raises(ValueError, match="page_size"):
        any_client.list(PARENT, page_size=0)
    assert servicer.calls == []


async def test_handle_from_name_and_json(kind: ClientKind, any_client: AnyClient, servicer: ScriptedOperations) -> None:
    servicer.script(FS_NAME, running(), succeeded())
    handle = any_client.operation(FS_NAME)
    assert servicer.calls == [] and not handle.done
    assert isinstance(await kind.call(handle.result, timeout=5), fs.Instance)
    text = handle.to_json()
    assert '"@type": "type.googleapis.com/google.cloud.financialservices.v1.Instance"' in text
    rebuilt = kind.handle_class.from_json(text, client=any_client)
    assert rebuilt.raw == handle.raw and rebuilt.to_dict() == handle.to_dict()
    await kind.call(rebuilt.refresh)
    unbound = kind.handle_class.from_json(text)
    assert unbound.done
    with pytest.raises(RuntimeError, match="not bound to a client"):
        await kind.call(unbound.refresh)


async def test_service_management_metadata(
    kind: ClientKind, any_client: AnyClient, servicer: ScriptedOperations
) -> None:
    metadata = sm.OperationMetadata(resource_names=["services/x/rollouts/r1"], progress_percentage=40)
    servicer.add(operations_pb2.Operation(name=SM_NAME, metadata=pack(metadata)))
    assert (await kind.call(any_client.get, SM_NAME)).metadata.progress_percentage == 40


# -- channels ------------------------------------------------------------------------------------------


async def test_plaintext_only_to_loopback(kind: ClientKind, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match=re.escape("example.com")):
        kind.client_class("example.com:443", plaintext=True)
    with pytest.raises(ValueError, match="credentials"):
        kind.client_class("127.0.0.1:1", plaintext=True, credentials=object())
    monkeypatch.setenv(EMULATOR_HOST_ENV, "10.1.2.3:8080")
    with pytest.raises(ValueError, match=re.escape("10.1.2.3")):
        kind.client_class.for_api("financialservices")


async def test_for_api_uses_tls_with_credentials_to_the_default_host(kind: ClientKind) -> None:
    credentials = google.auth.credentials.AnonymousCredentials()
    for api, host in [
        ("financialservices", "financialservices.googleapis.com:443"),
        ("servicemanagement", "servicemanagement.googleapis.com:443"),
    ]:
        async with kind.closing(kind.client_class.for_api(api, credentials=credentials)) as client:
            assert client.endpoint is not None
            assert (client.endpoint.target, client.endpoint.plaintext) == (host, False)
            assert client.api is not None and client.api.name == api and client.rpc_timeout == 10.0
    async with kind.open("localhost:8443", credentials=credentials) as loopback_tls:
        assert loopback_tls.endpoint is not None and not loopback_tls.endpoint.plaintext


async def test_emulator_host_env_is_honoured(
    kind: ClientKind, target: str, servicer: ScriptedOperations, monkeypatch: pytest.MonkeyPatch
) -> None:
    servicer.add(running())
    monkeypatch.setenv(EMULATOR_HOST_ENV, target)
    async with kind.closing(kind.client_class.for_api("financialservices")) as client:
        assert client.endpoint is not None and client.endpoint.plaintext and client.endpoint.target == target
        assert (await kind.call(client.get, FS_NAME)).done is False
    assert len(servicer.calls_to("GetOperation")) == 1


async def test_given_channel_is_used_and_not_closed(
    kind: ClientKind, target: str, servicer: ScriptedOperations
) -> None:
    servicer.add(running())
    async with kind.channel(target) as channel:
        async with kind.open(channel, retry_policy=FAST_RETRY) as client:
            assert (await kind.call(client.get, FS_NAME)).name == FS_NAME
        async with kind.open(channel) as client:  # closing the first client left the channel open
            assert (await kind.call(client.get, FS_NAME)).name == FS_NAME
        # Both clients are closed; the channel still carries calls, and they reach the same server.
        stub = operations_pb2_grpc.OperationsStub(channel)
        raw = await kind.call(stub.GetOperation, operations_pb2.GetOperationRequest(name=FS_NAME))
        assert raw.name == FS_NAME and not raw.done
    assert servicer.methods_called() == ["GetOperation"] * 3


async def test_closed_client_refuses_calls(kind: ClientKind, target: str, servicer: ScriptedOperations) -> None:
    servicer.add(running())
    async with kind.open(target) as client:
        await kind.call(client.get, FS_NAME)
    with pytest.raises(RuntimeError, match="closed"):
        await kind.call(client.get, FS_NAME)
    assert servicer.methods_called() == ["GetOperation"]


# -- threads, tasks and event loops: one client each -----------------------------------------------------


def test_one_client_many_threads(client: OperationsClient, servicer: ScriptedOperations) -> None:
    names = [f"{PARENT}/operations/op-{index}" for index in range(32)]
    servicer.add(*(succeeded(name) for name in names))
    results: dict[str, object] = {}

    def fetch(name: str) -> None:
        results[name] = client.get(name).result()

    threads = [threading.Thread(target=fetch, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == sorted(names)
    assert all(isinstance(value, fs.Instance) for value in results.values())
    assert sorted(call.request.name for call in servicer.calls_to("GetOperation")) == sorted(names)


async def test_one_client_many_tasks(aclient: AsyncOperationsClient, servicer: ScriptedOperations) -> None:
    names = [f"{PARENT}/operations/op-{index}" for index in range(32)]
    servicer.add(*(succeeded(name) for name in names))

    async def fetch(name: str) -> object:
        return await (await aclient.get(name)).result()

    results = await asyncio.gather(*(fetch(name) for name in names))
    assert all(isinstance(value, fs.Instance) for value in results)
    assert sorted(call.request.name for call in servicer.calls_to("GetOperation")) == sorted(names)


def test_no_event_loop_needed_at_construction(target: str, servicer: ScriptedOperations) -> None:
    servicer.add(running())
    client = AsyncOperationsClient(target, retry_policy=FAST_RETRY)  # no loop is running here

    async def use() -> bool:
        async with client:
            return (await client.get(FS_NAME)).done

    assert asyncio.run(use()) is False
