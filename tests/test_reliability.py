"""What OperationsClient promises when a server misbehaves (mirrored by test_async_reliability.py).

Over real gRPC on loopback: the scripted servicer, or a raw-bytes server for
answers no well-behaved server sends.
"""

from __future__ import annotations

import time

import grpc
import pytest
from google.longrunning import operations_pb2
from google.rpc import code_pb2, status_pb2
from raw_server import RawOperations, serve_raw
from servicer import FAST_POLL, FAST_RETRY, Fault, ScriptedOperations, pack

from lro_grpc import (
    InvalidNameError,
    OperationError,
    OperationNotFoundError,
    OperationsClient,
    RetryPolicy,
    RpcError,
    WaitTimeoutError,
)
from lro_grpc._generated import financialservices_v1_pb2 as fs
from lro_grpc.names import MAX_NAME_LENGTH

FS_NAME = "projects/my-proj/locations/us-central1/operations/op-123"
PARENT = "projects/my-proj/locations/us-central1"


def running(name: str = FS_NAME) -> operations_pb2.Operation:
    return operations_pb2.Operation(name=name, metadata=pack(fs.OperationMetadata(verb="create")), done=False)


def succeeded(name: str = FS_NAME) -> operations_pb2.Operation:
    op = running(name)
    op.done = True
    op.response.CopyFrom(pack(fs.Instance(name=f"{PARENT}/instances/i1")))
    return op


# -- item: a wait looks once before it gives up ---------------------------------------------------------


def test_result_timeout_zero_looks_once(client: OperationsClient, servicer: ScriptedOperations) -> None:
    servicer.add(succeeded())
    instance = client.operation(FS_NAME).result(timeout=0)
    assert isinstance(instance, fs.Instance) and instance.name == f"{PARENT}/instances/i1"
    assert servicer.methods_called() == ["GetOperation"]


def test_result_timeout_zero_on_running_operation_times_out_after_one_look(
    client: OperationsClient, servicer: ScriptedOperations
) -> None:
    servicer.add(running())
    op = client.operation(FS_NAME)
    with pytest.raises(WaitTimeoutError) as caught:
        op.result(timeout=0)
    assert servicer.methods_called() == ["GetOperation"]
    assert caught.value.operation is op and op.metadata is not None  # the look's state is kept


def test_wait_timeout_zero_looks_once(client: OperationsClient, servicer: ScriptedOperations) -> None:
    servicer.add(succeeded())
    assert client.wait(FS_NAME, timeout=0).done
    assert servicer.methods_called() == ["GetOperation"]


# -- item: a listing ends -------------------------------------------------------------------------------


def cycling_pages(request_bytes: bytes) -> bytes:
    """Pages whose tokens go '' -> a -> b -> a -> ... for ever."""
    request = operations_pb2.ListOperationsRequest.FromString(request_bytes)
    following = {"": "a", "a": "b", "b": "a"}[request.page_token]
    page = operations_pb2.ListOperationsResponse(next_page_token=following)
    page.operations.append(running(f"{PARENT}/operations/op-{request.page_token or 'first'}"))
    return page.SerializeToString()


def test_list_stops_at_a_repeated_page_token() -> None:
    raw = RawOperations(ListOperations=cycling_pages)
    with serve_raw(raw) as target, OperationsClient(target, retry_policy=FAST_RETRY, poll_policy=FAST_POLL) as client:
        seen: list[str] = []
        with pytest.raises(RpcError) as caught:
            for op in client.list(PARENT):
                seen.append(op.name)
    assert caught.value.code is grpc.StatusCode.INTERNAL and caught.value.method == "ListOperations"
    assert "'a'" in str(caught.value) and PARENT in str(caught.value)
    assert seen == [f"{PARENT}/operations/op-first", f"{PARENT}/operations/op-a"]  # the repeating page is not yielded
    assert raw.count("ListOperations") == 3


# -- item: an undecodable answer reads one way ---------------------------------------------------------


def undecodable(request_bytes: bytes) -> bytes:
    return b"\xff\xff\xff"  # not a google.longrunning.Operation


def test_undecodable_answer_is_an_internal_rpc_error() -> None:
    raw = RawOperations(GetOperation=undecodable)
    with serve_raw(raw) as target, OperationsClient(target, retry_policy=FAST_RETRY, poll_policy=FAST_POLL) as client:
        with pytest.raises(RpcError) as from_get:
            client.get(FS_NAME)
        with pytest.raises(RpcError) as from_result:
            client.operation(FS_NAME).result(timeout=5)
    for caught in (from_get, from_result):
        error = caught.value
        assert error.code is grpc.StatusCode.INTERNAL
        assert (error.method, error.operation_name) == ("GetOperation", FS_NAME)
        assert str(error) == (
            f"GetOperation for {FS_NAME!r} failed: INTERNAL: "
            "the server's answer could not be decoded as google.longrunning.Operation"
        )
    assert raw.count("GetOperation") == 2  # INTERNAL is not retried


# -- item: an answer about another operation is refused ------------------------------------------------


def someone_else(request_bytes: bytes) -> bytes:
    return succeeded(f"{PARENT}/operations/someone-else").SerializeToString()


def test_answer_about_another_operation_is_refused() -> None:
    raw = RawOperations(GetOperation=someone_else, WaitOperation=someone_else)
    with serve_raw(raw) as target, OperationsClient(target, retry_policy=FAST_RETRY, poll_policy=FAST_POLL) as client:
        with pytest.raises(RpcError) as from_get:
            client.get(FS_NAME)
        handle = client.operation(FS_NAME)
        with pytest.raises(RpcError) as from_result:
            handle.result(timeout=5)
        with pytest.raises(RpcError) as from_wait:
            client.wait(FS_NAME, timeout=5)
    assert (from_wait.value.method, from_result.value.method) == ("WaitOperation", "GetOperation")
    for caught in (from_get, from_result, from_wait):
        assert caught.value.code is grpc.StatusCode.INTERNAL and caught.value.operation_name == FS_NAME
        assert f"{PARENT}/operations/someone-else" in str(caught.value) and repr(FS_NAME) in str(caught.value)
    assert handle.name == FS_NAME and not handle.done  # the handle never took the other record


# -- item: an error of code 0 is read one way ------------------------------------------------------------


def done_with_error_code_ok(message: str = "") -> operations_pb2.Operation:
    op = running()
    op.done = True
    op.error.CopyFrom(status_pb2.Status(code=code_pb2.OK, message=message))
    return op


@pytest.mark.parametrize("message", ["", "all good"])
def test_error_of_code_ok_is_a_failure_of_code_unknown(
    client: OperationsClient, servicer: ScriptedOperations, message: str
) -> None:
    servicer.add(done_with_error_code_ok(message))
    op = client.get(FS_NAME)
    assert op.failed and op.response is None
    error = op.error
    assert isinstance(error, OperationError) and error.code is grpc.StatusCode.UNKNOWN
    assert "code 0 (OK) and no response" in str(error) and message in str(error)
    with pytest.raises(OperationError) as caught:
        op.result(timeout=5)
    assert caught.value.code is grpc.StatusCode.UNKNOWN
    assert "failed code=2" in repr(op)


def test_done_without_error_has_not_failed(client: OperationsClient, servicer: ScriptedOperations) -> None:
    servicer.add(succeeded())
    op = client.get(FS_NAME)
    assert not op.failed and op.error is None


# -- item: sizes -----------------------------------------------------------------------------------------

RECEIVE_LIMIT = 64 * 1024
"""The test clients' receive limit (the library's own is 64 MiB; a small one keeps the test light)."""

OVERSIZE = 200_000


def oversize_operation(request_bytes: bytes) -> bytes:
    op = succeeded()
    op.response.value = b"x" * OVERSIZE
    return op.SerializeToString()


def oversize_page(request_bytes: bytes) -> bytes:
    page = operations_pb2.ListOperationsResponse(next_page_token="more")
    op = succeeded()
    op.response.value = b"x" * OVERSIZE
    page.operations.append(op)
    return page.SerializeToString()


def assert_size_error(error: RpcError, method: str) -> None:
    assert error.code is grpc.StatusCode.RESOURCE_EXHAUSTED and error.method == method
    assert f"over the limit of {RECEIVE_LIMIT} bytes" in str(error) and "not retried" in str(error)


def test_oversize_answer_fails_at_once_naming_size_and_limit() -> None:
    raw = RawOperations(GetOperation=oversize_operation, ListOperations=oversize_page)
    with serve_raw(raw) as target:
        channel = grpc.insecure_channel(target, options=[("grpc.max_receive_message_length", RECEIVE_LIMIT)])
        # Slow retries: a retried size failure would show in the call counts and the time taken.
        slow_retry = RetryPolicy(initial=1, maximum=1, jitter=0, max_attempts=8)
        with channel, OperationsClient(channel, retry_policy=slow_retry, poll_policy=FAST_POLL) as client:
            started = time.monotonic()
            with pytest.raises(RpcError) as from_get:
                client.get(FS_NAME)
            with pytest.raises(RpcError) as from_result:
                client.operation(FS_NAME).result(timeout=None)
            with pytest.raises(RpcError) as from_list:
                list(client.list(PARENT))
            elapsed = time.monotonic() - started
    for caught, method in ((from_get, "GetOperation"), (from_result, "GetOperation"), (from_list, "ListOperations")):
        assert_size_error(caught.value, method)
    assert (raw.count("GetOperation"), raw.count("ListOperations")) == (2, 1)
    assert elapsed < 1  # no backoff slept


def test_names_too_long_are_rejected_before_any_rpc(client: OperationsClient, servicer: ScriptedOperations) -> None:
    too_long = "operations/" + "x" * MAX_NAME_LENGTH
    for call in (client.get, client.cancel, client.delete, client.operation, client.wait):
        with pytest.raises(InvalidNameError, match="characters"):
            call(too_long)
    with pytest.raises(InvalidNameError):
        client.list("projects/" + "p" * MAX_NAME_LENGTH + "/locations/l")
    assert servicer.methods_called() == []


def test_longest_name_reaches_a_server_with_default_limits(
    client: OperationsClient, servicer: ScriptedOperations
) -> None:
    # Every character percent-encoded: the largest routing header a name may give.
    longest = "operations/" + ":" * (MAX_NAME_LENGTH - len("operations/"))
    with pytest.raises(OperationNotFoundError):  # the server read the request: it answered NOT_FOUND
        client.get(longest)
    (call,) = servicer.calls_to("GetOperation")
    assert call.request.name == longest


# -- item: every single call has an overall timeout ------------------------------------------------------


def test_default_overall_timeout_is_sixty_seconds(target: str) -> None:
    assert RetryPolicy().timeout == 60.0
    with OperationsClient(target) as client:
        assert client.retry_policy.timeout == 60.0


@pytest.mark.parametrize("method", ["GetOperation", "ListOperations", "CancelOperation", "DeleteOperation"])
def test_hung_server_call_ends_at_its_overall_timeout(target: str, servicer: ScriptedOperations, method: str) -> None:
    servicer.add(running())
    servicer.inject(method, *[Fault(hang=5)] * 20)
    calls = {
        "GetOperation": lambda c: c.get(FS_NAME, timeout=0.6),
        "ListOperations": lambda c: list(c.list(PARENT, timeout=0.6)),
        "CancelOperation": lambda c: c.cancel(FS_NAME, timeout=0.6),
        "DeleteOperation": lambda c: c.delete(FS_NAME, timeout=0.6),
    }
    # Many attempts allowed, each of 0.25 s: only the call's timeout can end it this soon.
    retry = RetryPolicy(initial=0.01, maximum=0.01, jitter=0, max_attempts=100, timeout=30)
    with OperationsClient(target, retry_policy=retry, rpc_timeout=0.25) as client:
        started = time.monotonic()
        with pytest.raises(RpcError) as caught:
            calls[method](client)
        elapsed = time.monotonic() - started
    assert caught.value.code is grpc.StatusCode.DEADLINE_EXCEEDED and caught.value.method == method
    received = servicer.calls_to(method)
    reads = method in ("GetOperation", "ListOperations")
    assert len(received) >= (2 if reads else 1)  # reads are retried, within the timeout
    for call in received:  # no attempt was given time past the overall timeout
        assert call.time_remaining is not None and call.received_at + call.time_remaining <= started + 0.6 + 0.05
    assert elapsed < 3


def test_retry_policy_timeout_bounds_calls_without_their_own(target: str, servicer: ScriptedOperations) -> None:
    servicer.add(running())
    servicer.inject("GetOperation", *[Fault(hang=5)] * 20)
    retry = RetryPolicy(initial=0.01, maximum=0.01, jitter=0, max_attempts=100, timeout=0.6)
    with OperationsClient(target, retry_policy=retry, rpc_timeout=0.25) as client:
        started = time.monotonic()
        with pytest.raises(RpcError, match="DEADLINE_EXCEEDED"):
            client.operation(FS_NAME).refresh()
    assert time.monotonic() - started < 3
    assert len(servicer.calls_to("GetOperation")) >= 2


def test_overall_timeout_is_checked_before_any_rpc(client: OperationsClient, servicer: ScriptedOperations) -> None:
    with pytest.raises(ValueError, match="-1"):
        client.get(FS_NAME, timeout=-1)
    with pytest.raises(TypeError, match="'soon'"):
        client.cancel(FS_NAME, timeout="soon")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="nan"):
        client.list(PARENT, timeout=float("nan"))
    assert servicer.methods_called() == []


# -- item: the deadline is the client's -------------------------------------------------------------------


def test_wait_on_a_hung_server_ends_at_the_deadline(client: OperationsClient, servicer: ScriptedOperations) -> None:
    # Every look hangs: the wait ends on its last attempt's timeout, which the client bounds on its own clock.
    servicer.add(running())
    servicer.inject("GetOperation", *[Fault(hang=5)] * 10)
    op = client.operation(FS_NAME)
    started = time.monotonic()
    with pytest.raises(WaitTimeoutError) as caught:
        op.result(timeout=0.5)
    assert time.monotonic() - started < 1.5  # loose: benchmarks/sync_deadline_under_load.py measures it
    assert caught.value.operation is op and caught.value.timeout == 0.5
    (call,) = servicer.calls_to("GetOperation")
    assert call.time_remaining is not None and call.time_remaining <= 0.5 * 1.02
