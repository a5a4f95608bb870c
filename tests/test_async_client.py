"""AsyncOperationsClient over real gRPC on loopback (mirrors test_client.py)."""

from __future__ import annotations

import asyncio
import re
import time

import google.auth.credentials
import grpc
import pytest
from google.longrunning import operations_pb2
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from servicer import FAST_POLL, FAST_RETRY, Fault, ScriptedOperations, pack

from lro_grpc import (
    AnyDecodeError,
    AsyncOperation,
    AsyncOperationsClient,
    InvalidNameError,
    OperationCancelledError,
    OperationError,
    OperationNotFoundError,
    PollPolicy,
    RetryPolicy,
    RpcError,
    UnknownTypeError,
    WaitTimeoutError,
    _core,
)
from lro_grpc._channels import EMULATOR_HOST_ENV
from lro_grpc._generated import financialservices_v1_pb2 as fs
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


async def test_get_returns_typed_metadata(aclient: AsyncOperationsClient, servicer: ScriptedOperations) -> None:
    servicer.add(running())
    op = await aclient.get(FS_NAME)
    assert isinstance(op, AsyncOperation)
    assert (op.name, op.done) == (FS_NAME, False)
    assert isinstance(op.metadata, fs.OperationMetadata)
    assert (op.metadata.verb, op.metadata.target) == ("create", f"{PARENT}/instances/i1")
    assert op.response is None and op.error is None
    assert servicer.methods_called() == ["GetOperation"]


async def test_result_of_done_operation_needs_no_rpc(
    aclient: AsyncOperationsClient, servicer: ScriptedOperations
) -> None:
    servicer.add(succeeded())
    op = await aclient.get(FS_NAME)
    instance = await op.result(timeout=5)
    assert isinstance(instance, fs.Instance)
    assert instance.state == fs.Instance.State.ACTIVE
    assert servicer.methods_called() == ["GetOperation"]


async def test_result_polls_until_done(aclient: AsyncOperationsClient, servicer: ScriptedOperations) -> None:
    servicer.script(FS_NAME, running(), running(), succeeded())
    op = await aclient.get(FS_NAME)
    instance = await op.result(timeout=5)
    assert isinstance(instance, fs.Instance)
    assert op.done and servicer.methods_called() == ["GetOperation"] * 3


async def test_refresh_updates_the_handle(aclient: AsyncOperationsClient, servicer: ScriptedOperations) -> None:
    servicer.script(FS_NAME, running(), succeeded())
    op = await aclient.get(FS_NAME)
    assert not op.done
    await op.refresh()
    assert op.done and isinstance(op.response, fs.Instance)


async def test_list_fetches_pages_lazily(aclient: AsyncOperationsClient, servicer: ScriptedOperations) -> None:
    servicer.add(*(running(f"{PARENT}/operations/op-{index}") for index in range(5)))
    pager = aclient.list(PARENT, page_size=2)
    assert servicer.calls_to("ListOperations") == []
    iterator = aiter(pager)
    first = [await anext(iterator), await anext(iterator)]
    assert len(servicer.calls_to("ListOperations")) == 1
    third = await anext(iterator)
    assert len(servicer.calls_to("ListOperations")) == 2
    rest = [op async for op in iterator]
    names = [op.name for op in [*first, third, *rest]]
    assert names == [f"{PARENT}/operations/op-{index}" for index in range(5)]
    requests = [call.request for call in servicer.calls_to("ListOperations")]
    assert [request.page_token for request in requests] == ["", "2", "4"]
    assert all(request.page_size == 2 and request.name == PARENT for request in requests)
    assert pager.next_page_token == "" and pager.pages_fetched == 3
    assert isinstance(first[0].metadata, fs.OperationMetadata)


async def test_list_filter_partial_success_and_pages(
    aclient: AsyncOperationsClient, servicer: ScriptedOperations
) -> None:
    servicer.add(running(f"{PARENT}/operations/a"), succeeded(f"{PARENT}/operations/b"))
    servicer.unreachable = ["projects/my-proj/locations/europe-west4"]
    pager = aclient.list(PARENT, filter="done=false", return_partial_success=True)
    pages = [page async for page in pager.pages]
    assert [[op.name for op in page.operations] for page in pages] == [[f"{PARENT}/operations/a"]]
    assert pager.unreachable == ["projects/my-proj/locations/europe-west4"]
    request = servicer.calls_to("ListOperations")[0].request
    assert (request.filter, request.return_partial_success, request.page_size) == ("done=false", True, 0)


async def test_cancel_is_best_effort_and_ends_cancelled(
    aclient: AsyncOperationsClient, servicer: ScriptedOperations
) -> None:
    servicer.add(running())
    op = await aclient.get(FS_NAME)
    await op.cancel()
    assert not op.done  # cancelling does not change the handle: the outcome comes from polling
    with pytest.raises(OperationCancelledError) as caught:
        await op.result(timeout=5)
    assert caught.value.code is grpc.StatusCode.CANCELLED
    assert servicer.methods_called() == ["GetOperation", "CancelOperation", "GetOperation"]


async def test_delete_then_get_is_not_found(aclient: AsyncOperationsClient, servicer: ScriptedOperations) -> None:
    servicer.add(succeeded())
    await aclient.delete(FS_NAME)
    with pytest.raises(OperationNotFoundError, match="expired") as caught:
        await aclient.get(FS_NAME)
    assert caught.value.code is grpc.StatusCode.NOT_FOUND
    assert isinstance(caught.value.__cause__, grpc.RpcError)
    assert servicer.methods_called() == ["DeleteOperation", "GetOperation"]  # NOT_FOUND is not retried


async def test_wait_uses_wait_operation(aclient: AsyncOperationsClient, servicer: ScriptedOperations) -> None:
    servicer.script(SM_NAME, running(SM_NAME), succeeded(SM_NAME))
    op = await aclient.wait(SM_NAME, timeout=5)
    assert op.done and isinstance(op.response, fs.Instance)
    calls = servicer.calls_to("WaitOperation")
    assert len(calls) == 2 and servicer.calls_to("GetOperation") == []
    asked = calls[0].request.timeout.ToTimedelta().total_seconds()
    assert 0 < asked <= 5
    # gRPC core may round the encoded grpc-timeout header up a little (to keep it
    # short), so the server can see slightly more than the client's 5 s.
    assert calls[0].time_remaining is not None and calls[0].time_remaining <= 5 * 1.02


async def test_wait_falls_back_to_polling_and_remembers(
    aclient: AsyncOperationsClient, servicer: ScriptedOperations
) -> None:
    servicer.wait_implemented = False
    servicer.script(FS_NAME, running(), succeeded())
    assert aclient.wait_rpc_available
    assert (await aclient.wait(FS_NAME, timeout=5)).done
    assert servicer.methods_called() == ["WaitOperation", "GetOperation", "GetOperation"]
    assert not aclient.wait_rpc_available
    servicer.calls.clear()
    assert (await aclient.wait(FS_NAME, timeout=5)).done
    assert servicer.methods_called() == ["GetOperation"]


async def test_every_stub_method_is_wrapped(aclient: AsyncOperationsClient, servicer: ScriptedOperations) -> None:
    service = operations_pb2.DESCRIPTOR.services_by_name["Operations"]
    servicer.add(running(), succeeded(SM_NAME))
    await aclient.get(FS_NAME)
    [op async for op in aclient.list(PARENT)]
    await aclient.wait(SM_NAME, timeout=5)
    await aclient.cancel(FS_NAME)
    await aclient.delete(FS_NAME)
    assert set(servicer.methods_called()) == {method.name for method in service.methods}


# -- headers -----------------------------------------------------------------------------------------


async def test_request_headers(aclient: AsyncOperationsClient, servicer: ScriptedOperations) -> None:
    servicer.add(succeeded(SM_NAME))
    await aclient.get(SM_NAME)
    [op async for op in aclient.list(PARENT)]
    get_headers = servicer.calls_to("GetOperation")[0].metadata
    assert get_headers["x-goog-request-params"] == "name=operations/rollouts.endpointsapis.appspot.com%3A2016-07-16r2"
    api_client = get_headers["x-goog-api-client"].split()
    assert api_client[0].startswith("gl-python/") and api_client[1] == f"grpc/{grpc.__version__}"
    assert any(part.startswith("gax/lro-grpc") for part in api_client)
    list_headers = servicer.calls_to("ListOperations")[0].metadata
    assert list_headers["x-goog-request-params"] == f"name={PARENT}"


# -- retries -----------------------------------------------------------------------------------------


async def test_unavailable_is_retried(aclient: AsyncOperationsClient, servicer: ScriptedOperations) -> None:
    servicer.add(running())
    servicer.inject("GetOperation", Fault(grpc.StatusCode.UNAVAILABLE), Fault(grpc.StatusCode.UNAVAILABLE))
    assert (await aclient.get(FS_NAME)).name == FS_NAME
    assert len(servicer.calls_to("GetOperation")) == 3


async def test_retries_give_up_after_max_attempts(aclient: AsyncOperationsClient, servicer: ScriptedOperations) -> None:
    servicer.add(running())
    servicer.inject("GetOperation", *[Fault(grpc.StatusCode.UNAVAILABLE, "down")] * FAST_RETRY.max_attempts)
    with pytest.raises(RpcError, match="UNAVAILABLE: down") as caught:
        await aclient.get(FS_NAME)
    assert caught.value.code is grpc.StatusCode.UNAVAILABLE
    assert isinstance(caught.value.__cause__, grpc.RpcError)
    assert len(servicer.calls_to("GetOperation")) == FAST_RETRY.max_attempts


async def test_non_read_deadline_exceeded_is_not_retried(
    aclient: AsyncOperationsClient, servicer: ScriptedOperations
) -> None:
    servicer.add(running())
    servicer.inject("CancelOperation", Fault(grpc.StatusCode.DEADLINE_EXCEEDED))
    with pytest.raises(RpcError):
        await aclient.cancel(FS_NAME)
    assert len(servicer.calls_to("CancelOperation")) == 1


async def test_resource_exhausted_honours_retry_info(
    aclient: AsyncOperationsClient, servicer: ScriptedOperations
) -> None:
    servicer.add(running())
    servicer.inject("GetOperation", Fault(grpc.StatusCode.RESOURCE_EXHAUSTED, "quota", retry_delay=0.3))
    await aclient.get(FS_NAME)
    first, second = servicer.calls_to("GetOperation")
    assert second.received_at - first.received_at >= 0.3  # FAST_RETRY alone would wait 0.01 s


async def test_resource_exhausted_while_polling_slows_down(target: str, servicer: ScriptedOperations) -> None:
    servicer.script(FS_NAME, running(), running(), succeeded())
    # One attempt per RPC: a quota error while polling must not count as a failed retry.
    no_retries = RetryPolicy(initial=0.01, maximum=0.01, max_attempts=1)
    async with AsyncOperationsClient(target, retry_policy=no_retries, poll_policy=FAST_POLL) as client:
        op = await client.get(FS_NAME)
        servicer.inject("GetOperation", Fault(grpc.StatusCode.RESOURCE_EXHAUSTED, retry_delay=0.25))
        assert isinstance(await op.result(timeout=5), fs.Instance)
    polls = servicer.calls_to("GetOperation")
    assert len(polls) == 4
    assert polls[2].received_at - polls[1].received_at >= 0.25


# -- deadlines ---------------------------------------------------------------------------------------


async def test_result_deadline_precision(aclient: AsyncOperationsClient, servicer: ScriptedOperations) -> None:
    servicer.add(running())
    op = aclient.operation(FS_NAME)
    timeout = 1.0
    start = time.monotonic()
    with pytest.raises(WaitTimeoutError) as caught:
        await op.result(timeout=timeout, poll_policy=PollPolicy(initial=0.3, multiplier=1, maximum=0.3, jitter=0))
    elapsed = time.monotonic() - start
    # Not early (the last look is made just before the deadline) and not late.
    assert timeout - 0.1 <= elapsed <= timeout + 0.1
    polls = servicer.calls_to("GetOperation")
    # Polls at about 0, 0.3, 0.6, then a last one just before the deadline instead of giving up at 0.6.
    assert len(polls) >= 3
    assert polls[-1].received_at - start >= timeout - _core.FINAL_POLL_RESERVE - 0.05
    assert polls[-1].time_remaining is not None and polls[-1].time_remaining <= _core.FINAL_POLL_RESERVE + 0.01
    for poll in polls:  # no RPC was allowed to run past the deadline
        assert poll.time_remaining is not None
        assert poll.received_at + poll.time_remaining <= start + timeout + 0.02
    assert caught.value.operation is op and caught.value.timeout == timeout
    assert isinstance(op.metadata, fs.OperationMetadata)  # the last seen state


async def test_rpc_in_flight_does_not_outlive_deadline(
    aclient: AsyncOperationsClient, servicer: ScriptedOperations
) -> None:
    servicer.add(running())
    servicer.inject("GetOperation", Fault(hang=5))
    start = time.monotonic()
    with pytest.raises(WaitTimeoutError):
        await aclient.operation(FS_NAME).result(timeout=0.5)
    assert time.monotonic() - start <= 0.6
    (poll,) = servicer.calls_to("GetOperation")
    assert poll.time_remaining is not None and poll.time_remaining <= 0.5 * 1.02  # grpc-timeout rounding


async def test_wait_rpc_does_not_outlive_deadline(aclient: AsyncOperationsClient, servicer: ScriptedOperations) -> None:
    servicer.add(running())
    servicer.inject("WaitOperation", Fault(hang=5))
    start = time.monotonic()
    with pytest.raises(WaitTimeoutError) as caught:
        await aclient.wait(FS_NAME, timeout=0.5)
    assert time.monotonic() - start <= 0.6
    assert caught.value.operation is not None and caught.value.operation.name == FS_NAME


async def test_timeout_none_waits_until_done(aclient: AsyncOperationsClient, servicer: ScriptedOperations) -> None:
    servicer.add(running())
    servicer.finish_at(FS_NAME, time.monotonic() + 0.3, succeeded())
    assert isinstance(await aclient.operation(FS_NAME).result(timeout=None), fs.Instance)


# -- operation outcomes and Any handling ---------------------------------------------------------------


async def test_unknown_and_corrupt_any(aclient: AsyncOperationsClient, servicer: ScriptedOperations) -> None:
    op_pb = operations_pb2.Operation(name=FS_NAME, done=True)
    op_pb.metadata.CopyFrom(any_pb2.Any(type_url="type.googleapis.com/example.v1.Unknown", value=b"\x08\x01"))
    op_pb.response.CopyFrom(any_pb2.Any(type_url="type.googleapis.com/google.cloud.financialservices.v1.Instance"))
    op_pb.response.value = b"\xff\xff\xff"
    servicer.add(op_pb)
    op = await aclient.get(FS_NAME)  # the poll itself succeeds
    assert op.done and op.metadata_any is not None
    with pytest.raises(UnknownTypeError, match=re.escape("example.v1.Unknown")):
        _ = op.metadata
    with pytest.raises(AnyDecodeError, match=re.escape("google.cloud.financialservices.v1.Instance")):
        _ = op.response
    with pytest.raises(AnyDecodeError):
        await op.result()


async def test_operation_error_details_unpacked(aclient: AsyncOperationsClient, servicer: ScriptedOperations) -> None:
    status = status_pb2.Status(code=code_pb2.FAILED_PRECONDITION, message="instance quota")
    status.details.append(pack(error_details_pb2.ErrorInfo(reason="QUOTA", domain="financialservices.googleapis.com")))
    retry_info = error_details_pb2.RetryInfo()
    retry_info.retry_delay.FromSeconds(30)
    status.details.append(pack(retry_info))
    status.details.append(any_pb2.Any(type_url="type.googleapis.com/example.v1.Detail", value=b""))
    servicer.add(operations_pb2.Operation(name=FS_NAME, done=True, error=status))
    op = await aclient.get(FS_NAME)
    error = op.error
    assert isinstance(error, OperationError) and not isinstance(error, OperationCancelledError)
    assert (error.code, error.message) == (grpc.StatusCode.FAILED_PRECONDITION, "instance quota")
    info, retry, unknown = error.details
    assert isinstance(info, error_details_pb2.ErrorInfo) and info.reason == "QUOTA"
    assert isinstance(retry, error_details_pb2.RetryInfo) and retry.retry_delay.seconds == 30
    assert isinstance(unknown, any_pb2.Any) and unknown.type_url.endswith("example.v1.Detail")
    with pytest.raises(OperationError, match="instance quota") as caught:
        await op.result()
    assert caught.value.operation is op


async def test_done_without_result_is_success_without_value(
    aclient: AsyncOperationsClient, servicer: ScriptedOperations
) -> None:
    servicer.add(operations_pb2.Operation(name=SM_NAME, done=True))
    op = await aclient.get(SM_NAME)
    assert await op.result() is None
    assert op.response is None and op.error is None


async def test_not_found_mentions_expiry(aclient: AsyncOperationsClient, servicer: ScriptedOperations) -> None:
    with pytest.raises(OperationNotFoundError, match="expired"):
        await aclient.get(FS_NAME)
    with pytest.raises(OperationNotFoundError):
        await aclient.operation(FS_NAME).result(timeout=5)


async def test_malformed_names_rejected_before_any_rpc(
    aclient: AsyncOperationsClient, servicer: ScriptedOperations
) -> None:
    for name in MALFORMED:
        for call in (aclient.get, aclient.cancel, aclient.delete, aclient.wait):
            with pytest.raises(InvalidNameError):
                await call(name)
        with pytest.raises(InvalidNameError):
            aclient.operation(name)
    with pytest.raises(TypeError):
        await aclient.get(123)  # type: ignore[arg-type]
    with pytest.raises(InvalidNameError):
        aclient.list("projects/p")
    with pytest.raises(ValueError, match="page_size"):
        aclient.list(PARENT, page_size=0)
    assert servicer.calls == []


async def test_handle_from_name_and_json(aclient: AsyncOperationsClient, servicer: ScriptedOperations) -> None:
    servicer.script(FS_NAME, running(), succeeded())
    handle = aclient.operation(FS_NAME)
    assert servicer.calls == [] and not handle.done
    assert isinstance(await handle.result(timeout=5), fs.Instance)
    text = handle.to_json()
    assert '"@type": "type.googleapis.com/google.cloud.financialservices.v1.Instance"' in text
    rebuilt = AsyncOperation.from_json(text, client=aclient)
    assert rebuilt.raw == handle.raw and rebuilt.to_dict() == handle.to_dict()
    await rebuilt.refresh()
    unbound = AsyncOperation.from_json(text)
    assert unbound.done
    with pytest.raises(RuntimeError, match="not bound to a client"):
        await unbound.refresh()


async def test_service_management_metadata(aclient: AsyncOperationsClient, servicer: ScriptedOperations) -> None:
    metadata = sm.OperationMetadata(resource_names=["services/x/rollouts/r1"], progress_percentage=40)
    servicer.add(operations_pb2.Operation(name=SM_NAME, metadata=pack(metadata)))
    assert (await aclient.get(SM_NAME)).metadata.progress_percentage == 40


# -- channels ------------------------------------------------------------------------------------------


async def test_plaintext_only_to_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match=re.escape("example.com")):
        AsyncOperationsClient("example.com:443", plaintext=True)
    with pytest.raises(ValueError, match="credentials"):
        AsyncOperationsClient("127.0.0.1:1", plaintext=True, credentials=object())
    monkeypatch.setenv(EMULATOR_HOST_ENV, "10.1.2.3:8080")
    with pytest.raises(ValueError, match=re.escape("10.1.2.3")):
        AsyncOperationsClient.for_api("financialservices")


async def test_for_api_uses_tls_with_credentials_to_the_default_host() -> None:
    credentials = google.auth.credentials.AnonymousCredentials()
    for api, host in [
        ("financialservices", "financialservices.googleapis.com:443"),
        ("servicemanagement", "servicemanagement.googleapis.com:443"),
    ]:
        client = AsyncOperationsClient.for_api(api, credentials=credentials)
        assert client.endpoint is not None
        assert (client.endpoint.target, client.endpoint.plaintext) == (host, False)
        assert client.api is not None and client.api.name == api and client.rpc_timeout == 10.0
        await client.close()
    loopback_tls = AsyncOperationsClient("localhost:8443", credentials=credentials)
    assert loopback_tls.endpoint is not None and not loopback_tls.endpoint.plaintext
    await loopback_tls.close()


async def test_emulator_host_env_is_honoured(
    target: str, servicer: ScriptedOperations, monkeypatch: pytest.MonkeyPatch
) -> None:
    servicer.add(running())
    monkeypatch.setenv(EMULATOR_HOST_ENV, target)
    async with AsyncOperationsClient.for_api("financialservices") as client:
        assert client.endpoint is not None and client.endpoint.plaintext and client.endpoint.target == target
        assert (await client.get(FS_NAME)).done is False
    assert len(servicer.calls_to("GetOperation")) == 1


async def test_given_channel_is_used_and_not_closed(target: str, servicer: ScriptedOperations) -> None:
    servicer.add(running())
    async with grpc.aio.insecure_channel(target) as channel:
        async with AsyncOperationsClient(channel, retry_policy=FAST_RETRY) as client:
            await client.get(FS_NAME)
        async with AsyncOperationsClient(channel) as client:  # still open
            await client.get(FS_NAME)


async def test_closed_client_refuses_calls(target: str, servicer: ScriptedOperations) -> None:
    servicer.add(running())
    async with AsyncOperationsClient(target) as client:
        await client.get(FS_NAME)
    with pytest.raises(RuntimeError, match="closed"):
        await client.get(FS_NAME)


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
