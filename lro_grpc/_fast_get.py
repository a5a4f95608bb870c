"""A GetOperation with the client's own settings: the first attempt straight on the stub.

``get``, ``fetch_operation`` and a handle's ``refresh`` are mostly one
GetOperation that is answered at once. Driving the retry plan (see
:mod:`lro_grpc._core`) for it costs a generator, its steps and a settings
look-up per call; here the first attempt is made directly, with the headers
kept per name and the timeout the plan would give it (worked out once, at the
client's construction, by :func:`~lro_grpc._core.first_attempt`).

Anything but a plain answer hands over to the plan, which carries on as if it
had made that attempt itself: a failed attempt is its attempt 1 (the retry
policy's timeout counts from its start, the backoff, logging and error mapping
are the plan's), and an answer it would not accept (another operation's, one
that did not decode) is read by it the usual way.

The plan makes the whole call, as before, whenever any of this does not hold:
the call gives its own ``rpc_timeout`` or ``timeout``; the first attempt would
end near the retry policy's deadline (the sync client then bounds it on its
own clock); the client has had no answer from its server yet (a refused first
contact fails at once there); the client is closed; telemetry would count the
call's attempts.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.longrunning import operations_pb2

from lro_grpc import _client_base, _core
from lro_grpc._client_base import BaseOperationsClient
from lro_grpc._core import Reply, RpcCall, RpcFailure, request_metadata

__all__ = ["aio_headers", "fetch", "fetch_async", "shared_request"]

_Operation = operations_pb2.Operation
_GetRequest = operations_pb2.GetOperationRequest


@functools.lru_cache(maxsize=1024)
def aio_headers(pairs: tuple[tuple[str, str], ...]) -> grpc.aio.Metadata:
    """``pairs`` as a ``grpc.aio.Metadata``, built once per name and shared by its calls.

    ``grpc.aio`` turns a tuple of headers into its ``Metadata`` on every call;
    it only reads the one it is given on a channel without interceptors (an
    interceptor may change the headers it is handed: give those a tuple).
    """
    return grpc.aio.Metadata(*pairs)


@functools.lru_cache(maxsize=1024)
def shared_request(name: str) -> operations_pb2.GetOperationRequest:
    """The GetOperation request for ``name``, built once per name (the last 1,024 names kept).

    Only for a channel without interceptors: gRPC only reads it, an interceptor may change it.
    """
    return _GetRequest(name=name)


def _resumed(
    client: BaseOperationsClient, name: str, started: float, reply: Reply
) -> _core.Plan[operations_pb2.Operation]:
    """The get's plan, started at ``started``, carrying on after its first attempt got ``reply``.

    Its observer is none: the first attempt is made here only when telemetry counts nothing.
    """
    plan = client._get_plan(name, started=started)
    next(plan)  # the attempt already made
    try:
        while True:
            step = plan.send(reply)
            reply = yield step
    except StopIteration as stop:
        result: operations_pb2.Operation = stop.value
        return result
    finally:
        plan.close()


def fetch(
    client: BaseOperationsClient, name: str, stub: Any, shareable: bool, invoke: Callable[[RpcCall], Reply]
) -> operations_pb2.Operation:
    """One GetOperation of ``name`` with the client's settings, as its plan would make it.

    Args:
        client: the sync client.
        name: the operation's name, already validated.
        stub: the client's ``OperationsStub``.
        shareable: the channel has no interceptors: the request may be one shared by the name's calls.
        invoke: the client's attempt (its driver's ``invoke``).

    Raises:
        OperationNotFoundError: no such operation.
        RpcError: the RPC failed for good.
    """
    observe = _client_base.plan_observer()
    if observe is not None or not client._direct_get or not client._answered or client._closed:
        return _core.run_sync(client._get_plan(name), invoke, observe=observe)
    started = client._clock()
    reply: Any
    try:
        request = shared_request(name) if shareable else _GetRequest(name=name)
        reply = stub.GetOperation(request, timeout=client._direct_timeout, metadata=request_metadata(name))
    except grpc.RpcError as error:
        reply = RpcFailure.from_grpc_error(error)
    else:
        if reply.__class__ is _Operation and reply.name == name:  # what check_reply accepts
            return reply
    client._note_reply(reply)
    return _core.run_sync(_resumed(client, name, started, reply), invoke)


async def fetch_async(
    client: BaseOperationsClient,
    name: str,
    stub: Any,
    headers_shareable: bool,
    invoke: Callable[[RpcCall], Awaitable[Reply]],
) -> operations_pb2.Operation:
    """:func:`fetch` for the asyncio client.

    Args:
        client: the asyncio client.
        name: the operation's name, already validated.
        stub: the client's ``OperationsStub`` on its ``grpc.aio`` channel.
        headers_shareable: the channel has no interceptors: headers and request may be shared
            by the name's calls (see :func:`aio_headers`, :func:`shared_request`).
        invoke: the client's attempt (its driver's ``invoke``).
    """
    observe = _client_base.plan_observer()
    if observe is not None or not client._direct_get or not client._answered or client._closed:
        return await _core.run_async(client._get_plan(name), invoke, observe=observe)
    started = client._clock()
    metadata: Any = request_metadata(name)
    if headers_shareable:
        metadata, request = aio_headers(metadata), shared_request(name)
    else:
        request = _GetRequest(name=name)
    reply: Any
    try:
        reply = await stub.GetOperation(request, timeout=client._direct_timeout, metadata=metadata)
    except grpc.aio.AioRpcError as error:
        reply = RpcFailure.from_grpc_error(error)
    else:
        if reply.__class__ is _Operation and reply.name == name:  # what check_reply accepts
            return reply
    client._note_reply(reply)
    return await _core.run_async(_resumed(client, name, started, reply), invoke)
