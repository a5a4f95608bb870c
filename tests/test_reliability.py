"""What both clients promise when a server misbehaves (README, "Reliability"): each test runs with either client.

Over real gRPC on loopback: the scripted servicer, or a raw-bytes server for
answers no well-behaved server sends. The ``kind`` fixture (see
both_clients.py) drives OperationsClient and AsyncOperationsClient from one test.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest
from both_clients import AnyClient, ClientKind
from google.longrunning import operations_pb2
from google.rpc import code_pb2, status_pb2
from raw_server import RawOperations, serve_raw
from servicer import (
    DELIVERY_ALLOWANCE,
    FAST_POLL,
    FAST_RETRY,
    LATE_UNDER_LOAD,
    Fault,
    ScriptedOperations,
    pack,
    serve_on_loopback,
)

from lro_grpc import (
    USE_CLIENT_DEFAULT,
    BatchProgress,
    InvalidNameError,
    OperationError,
    OperationNotFoundError,
    RetryPolicy,
    RpcError,
    WaitTimeoutError,
)
from lro_grpc._core import LOOK_ONCE_TIMEOUT
from lro_grpc._generated import financialservices_v1_pb2 as fs
from lro_grpc._generated import operations_pb2_grpc
from lro_grpc.names import MAX_NAME_LENGTH

FS_NAME = "projects/my-proj/locations/us-central1/operations/op-123"
PARENT = "projects/my-proj/locations/us-central1"

GRPC_TIMEOUT_ROUNDING = 1.02
"""gRPC core may round the encoded ``grpc-timeout`` header up a little: the server sees up to 2% more."""


def running(name: str = FS_NAME) -> operations_pb2.Operation:
    return operations_pb2.Operation(name=name, metadata=pack(fs.OperationMetadata(verb="create")), done=False)


def succeeded(name: str = FS_NAME) -> operations_pb2.Operation:
    op = running(name)
    op.done = True
    op.response.CopyFrom(pack(fs.Instance(name=f"{PARENT}/instances/i1")))
    return op


# -- item: a wait looks once before it gives up ---------------------------------------------------------


async def answered_single_look(kind: ClientKind, target: str, wait: Callable[[AnyClient], Awaitable[Any]]) -> Any:
    """What a ``timeout=0`` wait returns once its one look is answered within its 50 ms.

    On a loaded machine the 50 ms can pass before the answer is read (the wait
    then raises WaitTimeoutError, as promised for a look that got no answer), so
    this tries up to ten times; every try must make exactly one look of at most
    LOOK_ONCE_TIMEOUT, as the client sent it.
    """
    for _ in range(10):
        sent = kind.sent_calls()
        async with kind.open(target, retry_policy=FAST_RETRY, poll_policy=FAST_POLL, interceptors=[sent]) as client:
            try:
                return await wait(client)
            except WaitTimeoutError:
                pass
            finally:
                (look,) = sent.sent()
                assert look.method == "GetOperation" and look.timeout is not None
                assert 0 < look.timeout <= LOOK_ONCE_TIMEOUT
    raise AssertionError("ten single looks of 50 ms in a row got no answer in time")


async def test_result_timeout_zero_looks_once(kind: ClientKind, target: str, servicer: ScriptedOperations) -> None:
    servicer.add(succeeded())
    instance = await answered_single_look(
        kind, target, lambda client: kind.call(client.operation(FS_NAME).result, timeout=0)
    )
    assert isinstance(instance, fs.Instance) and instance.name == f"{PARENT}/instances/i1"
    assert set(servicer.methods_called()) == {"GetOperation"}
    # The one look is given LOOK_ONCE_TIMEOUT (50 ms), not the client's 10 s rpc_timeout.
    for look in servicer.calls:
        assert look.time_remaining is not None and look.time_remaining <= LOOK_ONCE_TIMEOUT * GRPC_TIMEOUT_ROUNDING


async def test_result_timeout_zero_on_running_operation_times_out_after_one_look(
    kind: ClientKind, target: str, servicer: ScriptedOperations
) -> None:
    servicer.add(running())
    sent = kind.sent_calls()
    async with kind.open(target, retry_policy=FAST_RETRY, poll_policy=FAST_POLL, interceptors=[sent]) as client:
        op = client.operation(FS_NAME)
        with pytest.raises(WaitTimeoutError) as caught:
            await kind.call(op.result, timeout=0)
    # One look, as the client sent it (on a loaded machine its 50 ms may pass before the server runs it).
    assert [call.method for call in sent.sent()] == ["GetOperation"]
    assert set(servicer.methods_called()) <= {"GetOperation"} and len(servicer.calls) <= 1
    assert caught.value.operation is op and caught.value.timeout == 0
    if servicer.calls and op.metadata_any is not None:  # the look was answered in time: its state is kept
        assert op.metadata.verb == "create" and not op.done


async def test_the_single_look_is_given_at_most_fifty_milliseconds(
    kind: ClientKind, target: str, servicer: ScriptedOperations
) -> None:
    servicer.add(succeeded())
    servicer.inject("GetOperation", Fault(hang=5))
    sent = kind.sent_calls()
    async with kind.open(target, retry_policy=FAST_RETRY, poll_policy=FAST_POLL, interceptors=[sent]) as client:
        op = client.operation(FS_NAME)
        started = time.monotonic()
        with pytest.raises(WaitTimeoutError) as caught:
            await kind.call(op.result, timeout=0)
        elapsed = time.monotonic() - started
    # A hung server: the look ends at its 50 ms, not at the 5 s hang or the 10 s rpc_timeout.
    (look,) = sent.sent()
    assert look.method == "GetOperation" and look.timeout is not None and 0 < look.timeout <= LOOK_ONCE_TIMEOUT
    assert elapsed <= LOOK_ONCE_TIMEOUT + LATE_UNDER_LOAD
    assert caught.value.operation is op and not op.done
    for received in servicer.calls:  # (on a loaded machine the 50 ms may pass before the server runs it)
        assert received.time_remaining is not None
        assert received.time_remaining <= LOOK_ONCE_TIMEOUT * GRPC_TIMEOUT_ROUNDING


async def test_wait_timeout_zero_looks_once(kind: ClientKind, target: str, servicer: ScriptedOperations) -> None:
    servicer.add(succeeded())
    op = await answered_single_look(kind, target, lambda client: kind.call(client.wait, FS_NAME, timeout=0))
    assert op.done and isinstance(op.response, fs.Instance)
    assert set(servicer.methods_called()) == {"GetOperation"}  # a look, not a WaitOperation of no time


# -- item: a listing ends -------------------------------------------------------------------------------


def cycling_pages(request_bytes: bytes) -> bytes:
    """Pages whose tokens go '' -> a -> b -> a -> ... for ever."""
    request = operations_pb2.ListOperationsRequest.FromString(request_bytes)
    following = {"": "a", "a": "b", "b": "a"}[request.page_token]
    page = operations_pb2.ListOperationsResponse(next_page_token=following)
    page.operations.append(running(f"{PARENT}/operations/op-{request.page_token or 'first'}"))
    return page.SerializeToString()


async def test_list_stops_at_a_repeated_page_token(kind: ClientKind) -> None:
    raw = RawOperations(ListOperations=cycling_pages)
    with serve_raw(raw) as target:
        async with kind.open(target, retry_policy=FAST_RETRY, poll_policy=FAST_POLL) as client:
            steps = kind.stepper(client.list(PARENT))
            seen: list[str] = []
            with pytest.raises(RpcError) as caught:
                while True:
                    seen.append((await steps.next()).name)
    assert caught.value.code is grpc.StatusCode.INTERNAL and caught.value.method == "ListOperations"
    assert "'a'" in str(caught.value) and PARENT in str(caught.value)
    assert seen == [f"{PARENT}/operations/op-first", f"{PARENT}/operations/op-a"]  # the repeating page is not yielded
    assert raw.count("ListOperations") == 3


# -- item: an undecodable answer reads one way ---------------------------------------------------------


def undecodable(request_bytes: bytes) -> bytes:
    return b"\xff\xff\xff"  # not a google.longrunning.Operation


async def test_undecodable_answer_is_an_internal_rpc_error(kind: ClientKind) -> None:
    raw = RawOperations(GetOperation=undecodable)
    with serve_raw(raw) as target:
        async with kind.open(target, retry_policy=FAST_RETRY, poll_policy=FAST_POLL) as client:
            with pytest.raises(RpcError) as from_get:
                await kind.call(client.get, FS_NAME)
            with pytest.raises(RpcError) as from_result:
                await kind.call(client.operation(FS_NAME).result, timeout=5)
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


async def test_answer_about_another_operation_is_refused(kind: ClientKind) -> None:
    raw = RawOperations(GetOperation=someone_else, WaitOperation=someone_else)
    with serve_raw(raw) as target:
        async with kind.open(target, retry_policy=FAST_RETRY, poll_policy=FAST_POLL) as client:
            with pytest.raises(RpcError) as from_get:
                await kind.call(client.get, FS_NAME)
            handle = client.operation(FS_NAME)
            with pytest.raises(RpcError) as from_result:
                await kind.call(handle.result, timeout=5)
            with pytest.raises(RpcError) as from_wait:
                await kind.call(client.wait, FS_NAME, timeout=5)
    assert (from_wait.value.method, from_result.value.method) == ("WaitOperation", "GetOperation")
    for caught in (from_get, from_result, from_wait):
        assert caught.value.code is grpc.StatusCode.INTERNAL and caught.value.operation_name == FS_NAME
        assert f"{PARENT}/operations/someone-else" in str(caught.value) and repr(FS_NAME) in str(caught.value)
    assert handle.name == FS_NAME and not handle.done  # the handle never took the other record


# -- item: an error of code 0 is read one way ------------------------------------------------------------


def done_with_error_code_ok(message: str = "", name: str = FS_NAME) -> operations_pb2.Operation:
    op = running(name)
    op.done = True
    op.error.CopyFrom(status_pb2.Status(code=code_pb2.OK, message=message))
    return op


@pytest.mark.parametrize("message", ["", "all good"])
async def test_error_of_code_ok_is_a_failure_of_code_unknown(
    kind: ClientKind, any_client: AnyClient, servicer: ScriptedOperations, message: str
) -> None:
    servicer.add(done_with_error_code_ok(message))
    op = await kind.call(any_client.get, FS_NAME)
    assert op.failed and op.response is None
    error = op.error
    assert isinstance(error, OperationError) and error.code is grpc.StatusCode.UNKNOWN
    assert "code 0 (OK) and no response" in str(error) and message in str(error)
    with pytest.raises(OperationError) as caught:
        await kind.call(op.result, timeout=5)
    assert caught.value.code is grpc.StatusCode.UNKNOWN
    assert "failed code=2" in repr(op)


async def test_a_batch_counts_an_error_of_code_ok_as_failed(
    kind: ClientKind, any_client: AnyClient, servicer: ScriptedOperations
) -> None:
    ok_error = f"{PARENT}/operations/ok-error"
    fine = f"{PARENT}/operations/fine"
    servicer.add(done_with_error_code_ok("all good", ok_error), succeeded(fine))
    snapshots: list[BatchProgress] = []
    results = await kind.call(any_client.wait_all, [ok_error, fine], timeout=10, progress=snapshots.append)
    assert [op.name for op in results] == [ok_error, fine]
    assert results[0].failed and results[0].error is not None
    assert results[0].error.code is grpc.StatusCode.UNKNOWN
    assert not results[1].failed and isinstance(results[1].response, fs.Instance)
    assert snapshots[-1] == BatchProgress(done=2, failed=1, pending=0, timed_out=0)


async def test_done_without_error_has_not_failed(
    kind: ClientKind, any_client: AnyClient, servicer: ScriptedOperations
) -> None:
    servicer.add(succeeded())
    op = await kind.call(any_client.get, FS_NAME)
    assert not op.failed and op.error is None
    assert op.response == fs.Instance(name=f"{PARENT}/instances/i1")


# -- item: sizes -----------------------------------------------------------------------------------------

RECEIVE_LIMIT = 64 * 1024
"""The test clients' receive limit (the library's own is 64 MiB; a small one keeps the test light)."""

SERVER_RECEIVE_LIMIT = 16 * 1024
"""The test server's receive limit for requests (gRPC's default is 4 MiB)."""

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


def assert_size_error(error: RpcError, method: str, limit: int = RECEIVE_LIMIT) -> None:
    assert error.code is grpc.StatusCode.RESOURCE_EXHAUSTED and error.method == method
    assert f"over the limit of {limit} bytes" in str(error) and "not retried" in str(error)


async def test_oversize_answer_fails_at_once_naming_size_and_limit(kind: ClientKind) -> None:
    raw = RawOperations(GetOperation=oversize_operation, ListOperations=oversize_page)
    with serve_raw(raw) as target:
        # Slow retries: a retried size failure would show in the call counts and the time taken.
        slow_retry = RetryPolicy(initial=1, maximum=1, jitter=0, max_attempts=8)
        async with (
            kind.channel(target, options=[("grpc.max_receive_message_length", RECEIVE_LIMIT)]) as channel,
            kind.open(channel, retry_policy=slow_retry, poll_policy=FAST_POLL) as client,
        ):
            started = time.monotonic()
            with pytest.raises(RpcError) as from_get:
                await kind.call(client.get, FS_NAME)
            with pytest.raises(RpcError) as from_result:
                await kind.call(client.operation(FS_NAME).result, timeout=None)
            with pytest.raises(RpcError) as from_list:
                await kind.collect(client.list(PARENT))
            elapsed = time.monotonic() - started
    for caught, method in ((from_get, "GetOperation"), (from_result, "GetOperation"), (from_list, "ListOperations")):
        assert_size_error(caught.value, method)
    assert (raw.count("GetOperation"), raw.count("ListOperations")) == (2, 1)
    assert elapsed < 1  # no backoff slept


async def test_oversize_request_fails_at_once_naming_size_and_limit(
    kind: ClientKind, servicer: ScriptedOperations
) -> None:
    servicer.add(running())
    # A filter larger than the server accepts in one request (names are capped; filters are not).
    huge_filter = "done=false AND " + " OR ".join(f'metadata.verb="v{index}"' for index in range(2_000))
    sent = kind.sent_calls()
    slow_retry = RetryPolicy(initial=1, maximum=1, jitter=0, max_attempts=8)
    options = [("grpc.max_receive_message_length", SERVER_RECEIVE_LIMIT)]
    with serve_on_loopback(
        lambda server: operations_pb2_grpc.add_OperationsServicer_to_server(servicer, server), options=options
    ) as target:
        async with kind.open(target, retry_policy=slow_retry, poll_policy=FAST_POLL, interceptors=[sent]) as client:
            with pytest.raises(RpcError) as caught:
                await kind.collect(client.list(PARENT, filter=huge_filter))
            # The same client and server still answer a request of ordinary size.
            assert (await kind.call(client.get, FS_NAME)).name == FS_NAME
    assert_size_error(caught.value, "ListOperations", limit=SERVER_RECEIVE_LIMIT)
    assert [call.method for call in sent.sent()] == ["ListOperations", "GetOperation"]  # sent once: not retried
    assert servicer.methods_called() == ["GetOperation"]  # the oversized request never reached the handler


async def test_names_too_long_are_rejected_before_any_rpc(
    kind: ClientKind, any_client: AnyClient, servicer: ScriptedOperations
) -> None:
    too_long = "operations/" + "x" * MAX_NAME_LENGTH
    for call in (any_client.get, any_client.cancel, any_client.delete, any_client.wait):
        with pytest.raises(InvalidNameError, match="characters"):
            await kind.call(call, too_long)
    with pytest.raises(InvalidNameError, match="characters"):
        any_client.operation(too_long)
    with pytest.raises(InvalidNameError):
        any_client.list("projects/" + "p" * MAX_NAME_LENGTH + "/locations/l")
    assert servicer.methods_called() == []


async def test_longest_name_reaches_a_server_with_default_limits(
    kind: ClientKind, any_client: AnyClient, servicer: ScriptedOperations
) -> None:
    # Every character percent-encoded: the largest routing header a name may give.
    longest = "operations/" + ":" * (MAX_NAME_LENGTH - len("operations/"))
    with pytest.raises(OperationNotFoundError):  # the server read the request: it answered NOT_FOUND
        await kind.call(any_client.get, longest)
    (call,) = servicer.calls_to("GetOperation")
    assert call.request.name == longest


# -- item: every single call has an overall timeout ------------------------------------------------------


async def test_default_overall_timeout_is_sixty_seconds(
    kind: ClientKind, target: str, servicer: ScriptedOperations
) -> None:
    servicer.add(running())
    assert RetryPolicy().timeout == 60.0
    async with kind.open(target) as client:
        assert client.retry_policy.timeout == 60.0
    # With attempts allowed 100 s, the default overall timeout is what bounds a call.
    sent = kind.sent_calls()
    async with kind.open(target, rpc_timeout=100, interceptors=[sent]) as client:
        await kind.call(client.get, FS_NAME)
    (look,) = sent.sent("GetOperation")
    assert look.timeout is not None and 59 < look.timeout <= 60
    (call,) = servicer.calls_to("GetOperation")
    assert call.time_remaining is not None and call.time_remaining <= 60 * GRPC_TIMEOUT_ROUNDING


async def test_use_client_default_is_the_default_and_none_turns_the_overall_timeout_off(
    kind: ClientKind, target: str, servicer: ScriptedOperations
) -> None:
    servicer.add(running())
    retry = RetryPolicy(initial=0.01, maximum=0.01, jitter=0, max_attempts=3, timeout=2)
    sent = kind.sent_calls()
    async with kind.open(target, retry_policy=retry, rpc_timeout=30, interceptors=[sent]) as client:
        await kind.call(client.get, FS_NAME)  # not given
        await kind.call(client.get, FS_NAME, timeout=USE_CLIENT_DEFAULT)  # given explicitly: the same
        await kind.call(client.get, FS_NAME, timeout=None)  # no overall timeout: rpc_timeout alone
        await kind.call(client.get, FS_NAME, rpc_timeout=USE_CLIENT_DEFAULT, timeout=None)
        await kind.call(client.get, FS_NAME, rpc_timeout=None, timeout=None)  # no deadline at all
    given = [look.timeout for look in sent.sent("GetOperation")]
    assert len(given) == 5
    assert all(value is not None and 1.5 < value <= 2 for value in given[:2])
    assert given[2:4] == [30, 30]
    assert given[4] is None
    remaining = [call.time_remaining for call in servicer.calls_to("GetOperation")]  # as the server saw them
    assert all(value is not None and value <= 2 * GRPC_TIMEOUT_ROUNDING for value in remaining[:2])
    assert all(value is not None and value <= 30 * GRPC_TIMEOUT_ROUNDING for value in remaining[2:4])
    assert remaining[4] is None


def hung_calls(kind: ClientKind) -> dict[str, Callable[[AnyClient], Awaitable[Any]]]:
    """Each single call with an overall timeout of 0.6 s, by the method it makes (client's and handle's)."""
    return {
        "get": lambda client: kind.call(client.get, FS_NAME, timeout=0.6),
        "list": lambda client: kind.collect(client.list(PARENT, timeout=0.6)),
        "cancel": lambda client: kind.call(client.cancel, FS_NAME, timeout=0.6),
        "delete": lambda client: kind.call(client.delete, FS_NAME, timeout=0.6),
        "handle.refresh": lambda client: kind.call(client.operation(FS_NAME).refresh, timeout=0.6),
        "handle.cancel": lambda client: kind.call(client.operation(FS_NAME).cancel, timeout=0.6),
        "handle.delete": lambda client: kind.call(client.operation(FS_NAME).delete, timeout=0.6),
    }


@pytest.mark.parametrize(
    ("call", "method"),
    [
        ("get", "GetOperation"),
        ("list", "ListOperations"),
        ("cancel", "CancelOperation"),
        ("delete", "DeleteOperation"),
        ("handle.refresh", "GetOperation"),
        ("handle.cancel", "CancelOperation"),
        ("handle.delete", "DeleteOperation"),
    ],
)
async def test_hung_server_call_ends_at_its_overall_timeout(
    kind: ClientKind, target: str, servicer: ScriptedOperations, call: str, method: str
) -> None:
    servicer.add(running())
    servicer.inject(method, *[Fault(hang=5)] * 20)
    # Reads: many attempts allowed, each of 0.1 s, so only the call's timeout can end it this soon.
    # Calls that change state are not retried on DEADLINE_EXCEEDED: their one attempt may take 2 s,
    # so only the call's timeout can end it this soon.
    reads = method in ("GetOperation", "ListOperations")
    retry = RetryPolicy(initial=0.01, maximum=0.01, jitter=0, max_attempts=100, timeout=30)
    sent = kind.sent_calls()
    rpc_timeout = 0.1 if reads else 2.0  # (a loaded machine once stretched one attempt of 0.25 s past 0.6 s)
    async with kind.open(target, retry_policy=retry, rpc_timeout=rpc_timeout, interceptors=[sent]) as client:
        started = time.monotonic()
        with pytest.raises(RpcError) as caught:
            await hung_calls(kind)[call](client)
        elapsed = time.monotonic() - started
    assert caught.value.code is grpc.StatusCode.DEADLINE_EXCEEDED and caught.value.method == method
    attempts = sent.sent(method)
    assert len(attempts) >= 2 if reads else len(attempts) == 1  # reads are retried, within the timeout
    assert 0.6 - 0.05 <= elapsed <= 0.6 + LATE_UNDER_LOAD  # not the 5 s hang, 2 s attempt nor 30 s of retries
    for attempt in attempts:  # no attempt was given time past the overall timeout, as the client sent it ...
        assert attempt.timeout is not None and attempt.at + attempt.timeout <= started + 0.6 + DELIVERY_ALLOWANCE
    for received in servicer.calls_to(method):  # ... and as the server saw it
        assert received.deadline_at is not None and received.deadline_at <= started + 0.6 + DELIVERY_ALLOWANCE


async def test_retry_policy_timeout_bounds_calls_without_their_own(
    kind: ClientKind, target: str, servicer: ScriptedOperations
) -> None:
    servicer.add(running())
    servicer.inject("GetOperation", *[Fault(hang=5)] * 20)
    retry = RetryPolicy(initial=0.01, maximum=0.01, jitter=0, max_attempts=100, timeout=0.6)
    sent = kind.sent_calls()
    async with kind.open(target, retry_policy=retry, rpc_timeout=0.1, interceptors=[sent]) as client:
        started = time.monotonic()
        with pytest.raises(RpcError, match="DEADLINE_EXCEEDED") as caught:
            await kind.call(client.operation(FS_NAME).refresh)
        elapsed = time.monotonic() - started
    assert caught.value.code is grpc.StatusCode.DEADLINE_EXCEEDED
    assert 0.6 - 0.05 <= elapsed <= 0.6 + LATE_UNDER_LOAD
    attempts = sent.sent("GetOperation")
    assert len(attempts) >= 2  # retried, until the retry policy's timeout
    for attempt in attempts:
        assert attempt.timeout is not None and attempt.at + attempt.timeout <= started + 0.6 + DELIVERY_ALLOWANCE
    for received_call in servicer.calls_to("GetOperation"):
        assert received_call.deadline_at is not None and received_call.deadline_at <= started + 0.6 + DELIVERY_ALLOWANCE


async def test_overall_timeout_is_checked_before_any_rpc(
    kind: ClientKind, any_client: AnyClient, servicer: ScriptedOperations
) -> None:
    with pytest.raises(ValueError, match="-1"):
        await kind.call(any_client.get, FS_NAME, timeout=-1)
    with pytest.raises(TypeError, match="'soon'"):
        await kind.call(any_client.cancel, FS_NAME, timeout="soon")
    with pytest.raises(ValueError, match="nan"):
        any_client.list(PARENT, timeout=float("nan"))
    assert servicer.methods_called() == []


# -- item: the deadline is the client's -------------------------------------------------------------------


async def test_wait_on_a_hung_server_ends_at_the_deadline(
    kind: ClientKind, any_client: AnyClient, servicer: ScriptedOperations
) -> None:
    # Every look hangs: the wait ends on its last attempt's timeout, which the client bounds on its own clock.
    servicer.add(running())
    servicer.inject("GetOperation", *[Fault(hang=5)] * 10)
    op = any_client.operation(FS_NAME)
    started = time.monotonic()
    with pytest.raises(WaitTimeoutError) as caught:
        await kind.call(op.result, timeout=0.5)
    elapsed = time.monotonic() - started
    assert 0.5 - 0.05 <= elapsed <= 0.5 + LATE_UNDER_LOAD  # benchmarks/sync_deadline_under_load.py measures it
    assert caught.value.operation is op and caught.value.timeout == 0.5
    (call,) = servicer.calls_to("GetOperation")
    assert call.time_remaining is not None and call.time_remaining <= 0.5 * GRPC_TIMEOUT_ROUNDING
    assert call.deadline_at is not None and call.deadline_at <= started + 0.5 + DELIVERY_ALLOWANCE
