"""A get with the client's own settings makes its first attempt straight on the stub (lro_grpc._fast_get).

What the caller and the server see must be what the retry plan alone gave:
the same attempts (a failed first attempt is the plan's attempt 1, never one
more), the same deadline (the retry policy's timeout counted from the first
attempt's start), the same errors, headers and handles. Each test compares the
direct path with the plan's own (a call that gives its own ``timeout`` takes
the plan from its first attempt), on a scripted server on loopback.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from both_clients import AnyClient, ClientKind
from google.longrunning import operations_pb2
from servicer import DELIVERY_ALLOWANCE, Fault, ScriptedOperations, pack

from lro_grpc import OperationNotFoundError, RetryPolicy, RpcError, _core
from lro_grpc._generated import financialservices_v1_pb2 as fs
from lro_grpc._generated import operations_pb2_grpc

NAME = "projects/my-proj/locations/us-central1/operations/op-7"
WARM = "projects/my-proj/locations/us-central1/operations/warm"
PARENT = "projects/my-proj/locations/us-central1"

RPC_TIMEOUT = 1.0
RETRY = RetryPolicy(initial=0.01, multiplier=2, maximum=0.05, jitter=0, max_attempts=4, timeout=2.5)
"""A policy whose timeout leaves room for a plain first attempt (1 s + the 1 s margin < 2.5 s)."""

PATHS = ["direct", "plan"]
"""``direct``: the client's own settings (the first attempt on the stub); ``plan``: the same settings given."""


def given(path: str) -> dict[str, Any]:
    """A get's arguments for ``path``: none, or the client's own timeout given (the plan from the start)."""
    return {} if path == "direct" else {"timeout": RETRY.timeout}


def running(name: str = NAME) -> operations_pb2.Operation:
    metadata = fs.OperationMetadata(target=f"{PARENT}/instances/i1", verb="create", api_version="v1")
    return operations_pb2.Operation(name=name, metadata=pack(metadata), done=False)


@pytest.fixture
async def warm_client(kind: ClientKind, target: str, servicer: ScriptedOperations) -> AsyncIterator[AnyClient]:
    """A client whose gets take the direct first attempt: its server has answered once already."""
    servicer.add(running(WARM), running())
    async with kind.open(target, retry_policy=RETRY, rpc_timeout=RPC_TIMEOUT) as client:
        assert client._direct_get, "these settings must let a get make its first attempt itself"
        await kind.call(client.get, WARM)
        servicer.calls.clear()
        yield client


def get_calls(servicer: ScriptedOperations) -> list[Any]:
    return [call for call in servicer.calls_to("GetOperation") if call.request.name == NAME]


@pytest.mark.parametrize("path", PATHS)
async def test_an_answer_is_the_same_handle_with_the_same_headers_and_deadline(
    kind: ClientKind, warm_client: AnyClient, servicer: ScriptedOperations, path: str
) -> None:
    op = await kind.call(warm_client.get, NAME, metadata_type=fs.OperationMetadata, **given(path))
    assert isinstance(op, kind.handle_class) and op.client is warm_client
    assert op.raw == running() and op.metadata.verb == "create" and not op.done
    (call,) = get_calls(servicer)
    assert call.metadata["x-goog-request-params"] == f"name={NAME}"
    assert call.metadata["x-goog-api-client"].startswith("gl-python/")
    # The client's rpc_timeout, as the plan gives a first attempt (grpc-timeout rounds it up a little).
    assert call.time_remaining is not None and RPC_TIMEOUT / 2 < call.time_remaining <= RPC_TIMEOUT + DELIVERY_ALLOWANCE


@pytest.mark.parametrize("path", PATHS)
async def test_a_failed_first_attempt_is_attempt_one_of_the_retries(
    kind: ClientKind, warm_client: AnyClient, servicer: ScriptedOperations, path: str
) -> None:
    servicer.inject("GetOperation", Fault(grpc.StatusCode.UNAVAILABLE))
    assert (await kind.call(warm_client.get, NAME, **given(path))).raw == running()
    assert len(get_calls(servicer)) == 2

    servicer.calls.clear()
    servicer.inject("GetOperation", *[Fault(grpc.StatusCode.UNAVAILABLE, "down")] * RETRY.max_attempts)
    with pytest.raises(RpcError, match="UNAVAILABLE: down") as caught:
        await kind.call(warm_client.get, NAME, **given(path))
    assert caught.value.code is grpc.StatusCode.UNAVAILABLE and isinstance(caught.value.__cause__, grpc.RpcError)
    assert len(get_calls(servicer)) == RETRY.max_attempts  # not one more
    # The server is up again: the next get is answered (nothing of the failed one lingers).
    assert (await kind.call(warm_client.get, NAME, **given(path))).raw == running()


@pytest.mark.parametrize("path", PATHS)
async def test_the_retry_policy_timeout_counts_from_the_first_attempt(
    kind: ClientKind, warm_client: AnyClient, servicer: ScriptedOperations, path: str
) -> None:
    # Every attempt hangs until its deadline: attempt 1 ends at 1 s, attempt 2 at 2 s, attempt 3
    # gets what is left of the policy's 2.5 s, counted from attempt 1's start.
    servicer.inject("GetOperation", *[Fault(hang=10)] * RETRY.max_attempts)
    with pytest.raises(RpcError) as caught:
        await kind.call(warm_client.get, NAME, **given(path))
    assert caught.value.code is grpc.StatusCode.DEADLINE_EXCEEDED
    calls = get_calls(servicer)
    assert len(calls) >= 2
    first, last = calls[0], calls[-1]
    assert first.deadline_at is not None and last.deadline_at is not None
    assert first.deadline_at <= first.received_at + RPC_TIMEOUT + DELIVERY_ALLOWANCE
    # Counted from after attempt 1 instead, the last attempt would end ~1 s later than this.
    assert last.deadline_at <= first.received_at + RETRY.timeout + DELIVERY_ALLOWANCE


@pytest.mark.parametrize("path", PATHS)
async def test_an_error_that_is_not_retried_is_the_plans_error(
    kind: ClientKind, warm_client: AnyClient, servicer: ScriptedOperations, path: str
) -> None:
    servicer.inject("GetOperation", Fault(grpc.StatusCode.PERMISSION_DENIED, "no access"))
    with pytest.raises(RpcError) as denied:
        await kind.call(warm_client.get, NAME, **given(path))
    assert denied.value.code is grpc.StatusCode.PERMISSION_DENIED and type(denied.value) is RpcError
    assert str(denied.value) == f"GetOperation for {NAME!r} failed: PERMISSION_DENIED: no access"
    assert isinstance(denied.value.__cause__, grpc.RpcError)

    missing = NAME + "-gone"
    with pytest.raises(OperationNotFoundError) as not_found:
        await kind.call(warm_client.get, missing, **given(path))
    assert not_found.value.code is grpc.StatusCode.NOT_FOUND and not_found.value.operation_name == missing
    assert len(get_calls(servicer)) == 1


@pytest.mark.parametrize("path", PATHS)
async def test_an_answer_about_another_operation_is_read_by_the_plan(
    kind: ClientKind, warm_client: AnyClient, servicer: ScriptedOperations, path: str
) -> None:
    servicer.operations[NAME] = running(NAME + "-other")
    with pytest.raises(RpcError, match="answered with operation") as caught:
        await kind.call(warm_client.get, NAME, **given(path))
    assert caught.value.code is grpc.StatusCode.INTERNAL
    assert len(get_calls(servicer)) == 1  # INTERNAL is not retried by the policy


async def test_a_closed_client_still_refuses(kind: ClientKind, warm_client: AnyClient) -> None:
    await kind.call(warm_client.close)
    with pytest.raises(RuntimeError, match="closed"):
        await kind.call(warm_client.get, NAME)


@pytest.mark.parametrize(
    ("policy_timeout", "rpc_timeout", "expected"),
    [
        (60.0, 10.0, (True, 10.0)),  # the defaults: the first attempt is a plain 10 s call
        (5.0, 10.0, (False, 5.0)),  # ends at the policy's deadline: the plan bounds it on its own clock
        (60.0, None, (False, 60.0)),  # bounded by the policy's deadline only: likewise
        (None, None, (True, None)),  # no deadline at all
        (None, 2.0, (True, 2.0)),
    ],
)
def test_which_first_attempts_a_client_makes_itself(
    policy_timeout: float | None, rpc_timeout: float | None, expected: tuple[bool, float | None]
) -> None:
    settings = _core.CallSettings(RetryPolicy(timeout=policy_timeout), rpc_timeout)
    assert _core.first_attempt(settings) == expected


async def test_a_get_after_the_server_restarted_is_answered(kind: ClientKind, servicer: ScriptedOperations) -> None:
    # The client's channels leave retries to the client (no gRPC retry layer): the first
    # attempt on the connection the old server closed fails UNAVAILABLE, and the get's
    # retries (the plan's, after the direct first attempt) reach the new server.
    servicer.add(running())
    port = _free_port()
    retry = RetryPolicy(initial=0.05, maximum=0.5, jitter=0, max_attempts=20, timeout=30)
    async with kind.open(f"127.0.0.1:{port}", retry_policy=retry, rpc_timeout=5.0) as client:
        assert client._direct_get
        with _serve_on(servicer, port):
            assert (await kind.call(client.get, NAME)).raw == running()
        with pytest.raises(RpcError) as down:
            await kind.call(client.get, NAME, timeout=0.5)  # nobody listens: UNAVAILABLE to the end
        assert down.value.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
        calls_before = len(servicer.calls_to("GetOperation"))
        with _serve_on(servicer, port):
            assert (await kind.call(client.get, NAME)).raw == running()
    assert len(servicer.calls_to("GetOperation")) == calls_before + 1


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def _serve_on(servicer: ScriptedOperations, port: int) -> Iterator[None]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    operations_pb2_grpc.add_OperationsServicer_to_server(servicer, server)
    assert server.add_insecure_port(f"127.0.0.1:{port}") == port
    server.start()
    try:
        yield
    finally:
        server.stop(grace=None).wait()
