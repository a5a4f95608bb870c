"""The steps a plan yields, the replies it is sent, and the two drivers that perform them.

A *plan* is a generator. It yields :class:`RpcCall` (perform one RPC attempt)
or :class:`Sleep` (wait that long) and is sent back, for an :class:`RpcCall`,
the response message or an :class:`RpcFailure`; for a :class:`Sleep`,
``None``. Its return value is the outcome; its exceptions are the errors the
caller sees. :func:`run_sync` drives a plan with blocking calls, :func:`run_async`
with ``await``; both tell an ``observe`` callback of each attempt (telemetry), so
no other part of lro_grpc steps through a plan.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable, Generator
from typing import Final, TypeVar

import grpc
from google.longrunning import operations_pb2
from google.protobuf import empty_pb2
from google.protobuf.message import Message

from lro_grpc._core.requests import Method
from lro_grpc.policies import Deadline

__all__ = [
    "OWN_CLOCK_MARGIN",
    "RESPONSE_TYPES",
    "Observe",
    "Plan",
    "Reply",
    "RpcCall",
    "RpcFailure",
    "Sleep",
    "Step",
    "check_reply",
    "near_deadline",
    "own_deadline_failure",
    "run_async",
    "run_sync",
]

OWN_CLOCK_MARGIN: Final = 1.0
"""Seconds: an attempt whose timeout ends this close to the caller's deadline is :attr:`RpcCall.near_deadline`.

Under CPU contention a blocking gRPC call has been seen to return hundreds
of milliseconds past its own deadline; the sync client then bounds its wait
on its own clock. Only attempts near a deadline pay for that (a call whose
wait is bounded that way costs more CPU than a plain blocking one).
"""

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class RpcCall:
    """Step: perform one attempt of an RPC.

    Attributes:
        method: which RPC.
        request: the request message.
        timeout: the attempt's timeout in seconds (``None``: unbounded).
        metadata: request headers.
        near_deadline: the attempt's timeout ends within :data:`OWN_CLOCK_MARGIN`
            of the caller's deadline, so its lateness would be the caller's:
            the client must stop waiting at ``timeout`` on its own clock
            (and cancel the call), not only trust gRPC's deadline to fire.
    """

    method: Method
    request: Message
    timeout: float | None
    metadata: tuple[tuple[str, str], ...]
    near_deadline: bool = False


@dataclasses.dataclass(frozen=True)
class Sleep:
    """Step: wait ``seconds`` before the plan continues."""

    seconds: float


@dataclasses.dataclass(frozen=True)
class RpcFailure:
    """Reply: an RPC attempt failed.

    Attributes:
        code: the gRPC status code.
        details: the status message.
        trailing_metadata: the trailers, as ``(key, value)`` pairs.
        exception: the exception the gRPC library raised, chained into the error the
            caller sees (``None`` when the failure is the client's reading of an answer).
    """

    code: grpc.StatusCode
    details: str
    trailing_metadata: tuple[tuple[str, str | bytes], ...]
    exception: BaseException | None

    @classmethod
    def from_grpc_error(cls, error: grpc.RpcError) -> RpcFailure:
        """Read code, details and trailers from a sync or asyncio gRPC error."""
        code_fn = getattr(error, "code", None)
        details_fn = getattr(error, "details", None)
        trailers_fn = getattr(error, "trailing_metadata", None)
        code = code_fn() if callable(code_fn) else None
        details = details_fn() if callable(details_fn) else None
        trailers = trailers_fn() if callable(trailers_fn) else None
        pairs = tuple((str(key), value) for key, value in (trailers or ()))
        return cls(
            code=code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.UNKNOWN,
            details=details or "",
            trailing_metadata=pairs,
            exception=error,
        )


Step = RpcCall | Sleep
Reply = Message | RpcFailure | None
Plan = Generator[Step, Reply, T]

RESPONSE_TYPES: Final[dict[Method, type[Message]]] = {
    "GetOperation": operations_pb2.Operation,
    "WaitOperation": operations_pb2.Operation,
    "ListOperations": operations_pb2.ListOperationsResponse,
    "CancelOperation": empty_pb2.Empty,
    "DeleteOperation": empty_pb2.Empty,
}
"""The message each RPC answers with."""

_GRPC_UNDECODABLE: Final = "Exception deserializing response!"
"""How the sync gRPC library reports an answer it could not parse (``grpc.aio`` returns ``None``)."""


def check_reply(method: Method, request: Message, reply: Reply) -> Message | RpcFailure:
    """Read one attempt's answer the single way the clients and the batch read it.

    A server's answer that is not what ``method`` promises becomes a failure of
    code ``INTERNAL`` (a server error, not retried by the default policy):

    * bytes that do not parse, the same whichever gRPC library received them
      (the sync library raises ``INTERNAL`` "Exception deserializing
      response!", ``grpc.aio`` hands back ``None``);
    * a GetOperation or WaitOperation answer naming another operation than
      the request (or none): both names are in the failure's details.

    Args:
        method: the RPC the answer is for.
        request: the request the answer is for.
        reply: what the attempt gave back: a message, an :class:`RpcFailure`, or ``None``.

    Returns:
        The answer, if it is a message of the type ``method`` promises;
        otherwise (or if it was a failure already) an :class:`RpcFailure`.
    """
    expected = RESPONSE_TYPES[method]
    if isinstance(reply, RpcFailure):
        if reply.code is grpc.StatusCode.INTERNAL and reply.details == _GRPC_UNDECODABLE:
            return _undecodable(expected, reply.exception)
        return reply
    if not isinstance(reply, expected):
        return _undecodable(expected, None)
    if isinstance(reply, operations_pb2.Operation):
        asked = getattr(request, "name", "")
        if reply.name != asked:
            return RpcFailure(
                code=grpc.StatusCode.INTERNAL,
                details=f"the server answered with operation {reply.name!r}, not the {asked!r} asked for",
                trailing_metadata=(),
                exception=None,
            )
    return reply


def _undecodable(expected: type[Message], exception: BaseException | None) -> RpcFailure:
    return RpcFailure(
        code=grpc.StatusCode.INTERNAL,
        details=f"the server's answer could not be decoded as {expected.DESCRIPTOR.full_name}",
        trailing_metadata=(),
        exception=exception,
    )


def near_deadline(deadline: Deadline, timeout: float | None, now: float) -> bool:
    remaining = deadline.remaining(now)
    return remaining is not None and timeout is not None and timeout + OWN_CLOCK_MARGIN >= remaining


def own_deadline_failure(call: RpcCall) -> RpcFailure:
    """The failure of an attempt the client gave up on at its own timeout (and cancelled).

    Read like gRPC's own ``DEADLINE_EXCEEDED``: a client that bounds its wait
    on its own clock reports the same thing gRPC would have.
    """
    return RpcFailure(
        code=grpc.StatusCode.DEADLINE_EXCEEDED,
        details=f"no answer within the call's timeout of {call.timeout} s (the client cancelled it)",
        trailing_metadata=(),
        exception=None,
    )


Observe = Callable[[RpcCall, Reply], None]
"""Called by a driver after each RPC attempt with what the attempt gave back (telemetry counts them)."""


def run_sync(
    plan: Plan[T],
    invoke: Callable[[RpcCall], Reply],
    sleep: Callable[[float], None] = time.sleep,
    *,
    observe: Observe | None = None,
) -> T:
    """Drive ``plan`` to its end with blocking ``invoke`` and ``sleep``.

    Args:
        plan: the plan.
        invoke: performs one attempt: a message, or an :class:`RpcFailure` (never raises for a failed RPC).
        sleep: waits that many seconds.
        observe: called after each attempt with the step and its reply.

    Returns:
        The plan's outcome; the plan's exceptions propagate.
    """
    reply: Reply = None
    try:
        while True:
            try:
                step = plan.send(reply)
            except StopIteration as stop:
                result: T = stop.value
                return result
            if isinstance(step, Sleep):
                sleep(step.seconds)
                reply = None
            else:
                reply = invoke(step)
                if observe is not None:
                    observe(step, reply)
    finally:
        plan.close()


async def run_async(
    plan: Plan[T],
    invoke: Callable[[RpcCall], Awaitable[Reply]],
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    *,
    observe: Observe | None = None,
) -> T:
    """Drive ``plan`` to its end with awaited ``invoke`` and ``sleep``: :func:`run_sync` for asyncio."""
    reply: Reply = None
    try:
        while True:
            try:
                step = plan.send(reply)
            except StopIteration as stop:
                result: T = stop.value
                return result
            if isinstance(step, Sleep):
                await sleep(step.seconds)
                reply = None
            else:
                reply = await invoke(step)
                if observe is not None:
                    observe(step, reply)
    finally:
        plan.close()
