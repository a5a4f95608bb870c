"""The I/O-free core shared by the sync and asyncio clients.

Everything that decides something lives here: request building for the five
``google.longrunning.Operations`` RPCs, request headers, the retry decision,
deadline arithmetic and the polling state machine. The clients only perform
the steps these plans yield.

A *plan* is a generator. It yields :class:`RpcCall` (perform one RPC attempt)
or :class:`Sleep` (wait that long) and is sent back, for an :class:`RpcCall`,
the response message or an :class:`RpcFailure`; for a :class:`Sleep`,
``None``. Its return value is the outcome; its exceptions are the errors the
caller sees. :func:`run_sync` drives a plan with blocking calls; the asyncio
client drives the same plans with ``await``.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import logging
import random
import re
import time
from collections.abc import Callable, Generator, Iterable
from typing import Any, Final, Literal, TypeVar

import grpc
from google.longrunning import operations_pb2
from google.protobuf import duration_pb2, empty_pb2
from google.protobuf.message import DecodeError, Message
from google.rpc import code_pb2, error_details_pb2, status_pb2

from lro_grpc.errors import (
    OperationCancelledError,
    OperationError,
    OperationNotFoundError,
    RpcError,
    TypeRegistryError,
    WaitTimeoutError,
)
from lro_grpc.names import routing_header_value
from lro_grpc.policies import Deadline, PollPolicy, RetryPolicy

__all__ = [
    "FINAL_POLL_RESERVE",
    "FINAL_POLL_RTT_FACTOR",
    "LOOK_ONCE_TIMEOUT",
    "METHODS",
    "MIN_FINAL_POLL_RESERVE",
    "OWN_CLOCK_MARGIN",
    "RESPONSE_TYPES",
    "USE_CLIENT_DEFAULT",
    "WAIT_RPC_MAX",
    "CallSettings",
    "ListPageState",
    "Method",
    "PollSettings",
    "RpcCall",
    "RpcFailure",
    "SizeLimit",
    "Sleep",
    "UseClientDefault",
    "api_client_header",
    "cancel_request",
    "check_reply",
    "check_rpc_timeout",
    "deadline_passed",
    "delete_request",
    "failure_status",
    "get_request",
    "is_message_size_failure",
    "is_throttling",
    "message_size_failure",
    "operation_error",
    "operation_failed",
    "own_deadline_failure",
    "poll_plan",
    "request_metadata",
    "retry_delay",
    "retry_info_delay",
    "rpc_error",
    "run_sync",
    "unary_plan",
    "wait_request",
]

Method = Literal["GetOperation", "ListOperations", "CancelOperation", "DeleteOperation", "WaitOperation"]
"""Short names of the ``google.longrunning.Operations`` RPCs."""

METHODS: Final[tuple[Method, ...]] = (
    "GetOperation",
    "ListOperations",
    "CancelOperation",
    "DeleteOperation",
    "WaitOperation",
)
"""Every RPC of ``google.longrunning.Operations``; each client wraps all of them."""

_READS: Final[frozenset[str]] = frozenset({"GetOperation", "ListOperations", "WaitOperation"})

FINAL_POLL_RESERVE: Final = 0.05
"""Most seconds kept before the caller's deadline for the last poll to complete in.

Small on purpose: the wait must not give up early. If the last poll's RPC
needs longer than this, it fails with DEADLINE_EXCEEDED at the deadline and the
wait reports the timeout then, which is still on time.

When the next poll interval would cross the deadline, the last poll is made at
``deadline - reserve`` (or sooner, if the per-RPC timeout is shorter) rather
than skipped, and its RPC timeout is what remains. Once a GetOperation has
been answered, the reserve is :data:`FINAL_POLL_RTT_FACTOR` times that call's
round trip, between :data:`MIN_FINAL_POLL_RESERVE` and this value: on a fast
link the last look comes a few milliseconds before the deadline.
"""

MIN_FINAL_POLL_RESERVE: Final = 0.005
"""Fewest seconds kept before the deadline for the last poll (timer and scheduling slack)."""

FINAL_POLL_RTT_FACTOR: Final = 4.0
"""The last poll's reserve, in round trips of the latest answered GetOperation."""

LOOK_ONCE_TIMEOUT: Final = 0.05
"""Seconds the first look of a wait may take when the deadline leaves less than that.

A wait always looks at the operation once before it gives up: ``result(timeout=0)``
returns a done operation's result rather than timing out without asking. That
one GetOperation gets at least this long, so a wait with no time left ends at
most this much past its deadline.
"""

OWN_CLOCK_MARGIN: Final = 1.0
"""Seconds: an attempt whose timeout ends this close to the caller's deadline is :attr:`RpcCall.near_deadline`.

Under CPU contention a blocking gRPC call has been seen to return hundreds
of milliseconds past its own deadline; the sync client then bounds its wait
on its own clock. Only attempts near a deadline pay for that (a call whose
wait is bounded that way costs more CPU than a plain blocking one).
"""

WAIT_RPC_MAX: Final = 60.0
"""Longest ``timeout`` one WaitOperation RPC asks the server for; longer waits are several RPCs."""

ROUTING_HEADER: Final = "x-goog-request-params"
API_CLIENT_HEADER: Final = "x-goog-api-client"
STATUS_DETAILS_KEY: Final = "grpc-status-details-bin"

T = TypeVar("T")


class UseClientDefault(enum.Enum):
    """Type of :data:`USE_CLIENT_DEFAULT`."""

    USE_CLIENT_DEFAULT = "USE_CLIENT_DEFAULT"

    def __repr__(self) -> str:
        return "USE_CLIENT_DEFAULT"


USE_CLIENT_DEFAULT: Final = UseClientDefault.USE_CLIENT_DEFAULT
"""Marks an argument as "not given: use the client's setting", apart from ``None`` ("no limit")."""


@functools.cache
def api_client_header() -> str:
    """The ``x-goog-api-client`` value: Python, grpcio and lro-grpc versions (computed on first use)."""
    import platform  # only here: not worth its import time for every ``import lro_grpc``

    from lro_grpc._version import __version__

    return f"gl-python/{platform.python_version()} grpc/{grpc.__version__} gax/lro-grpc-{__version__}"


def request_metadata(routing_name: str) -> tuple[tuple[str, str], ...]:
    """Headers for one RPC about ``routing_name`` (an operation name or a list parent).

    The routing header is :func:`~lro_grpc.names.routing_header_value`; it is
    left out when the value is empty.
    """
    if not routing_name:
        return ((API_CLIENT_HEADER, api_client_header()),)
    return ((ROUTING_HEADER, routing_header_value(routing_name)), (API_CLIENT_HEADER, api_client_header()))


# -- requests -------------------------------------------------------------------------------------


def get_request(name: str) -> operations_pb2.GetOperationRequest:
    """A GetOperation request (``name`` already validated)."""
    return operations_pb2.GetOperationRequest(name=name)


def cancel_request(name: str) -> operations_pb2.CancelOperationRequest:
    """A CancelOperation request (``name`` already validated)."""
    return operations_pb2.CancelOperationRequest(name=name)


def delete_request(name: str) -> operations_pb2.DeleteOperationRequest:
    """A DeleteOperation request (``name`` already validated)."""
    return operations_pb2.DeleteOperationRequest(name=name)


def wait_request(name: str, timeout: float) -> operations_pb2.WaitOperationRequest:
    """A WaitOperation request asking the server to wait up to ``timeout`` seconds."""
    request = operations_pb2.WaitOperationRequest(name=name)
    request.timeout.CopyFrom(_duration(timeout))
    return request


def _duration(seconds: float) -> duration_pb2.Duration:
    duration = duration_pb2.Duration()
    duration.FromNanoseconds(round(seconds * 1e9))
    return duration


def check_rpc_timeout(value: object) -> float | None:
    """Validate a per-RPC timeout: positive seconds, or ``None`` for "bounded by the deadline only".

    Raises:
        TypeError: not a number.
        ValueError: not positive and finite.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"rpc_timeout must be seconds (int/float) or None, got {value!r}")
    if not 0 < value < float("inf"):
        raise ValueError(f"rpc_timeout must be positive and finite, got {value!r}")
    return float(value)


MAX_EMPTY_PAGES: Final = 100
"""Empty pages in a row, each with a ``next_page_token``, that a listing follows at most.

A server may answer an empty page and a token while it scans (a filter that
matches little); one that does so more than a hundred times in a row is
treated as never ending: the next empty page raises ``RpcError`` (``INTERNAL``).
"""


@dataclasses.dataclass
class ListPageState:
    """Where a lazy ListOperations iteration stands.

    Attributes:
        parent: the validated list parent.
        filter: the server-side filter expression.
        page_size: page size asked for (0: the server's default).
        return_partial_success: whether unreachable locations may be skipped.
        next_page_token: token of the next page; ``None`` before the first page.
        exhausted: whether the last page has been fetched.
        unreachable: locations reported unreachable by the pages fetched so far.
        pages_fetched: how many pages have been fetched.
        seen_page_tokens: every page token this listing has been given; one
            given twice would make the listing go round for ever.
        empty_pages: empty pages in a row that each named a next page.
    """

    parent: str
    filter: str = ""
    page_size: int = 0
    return_partial_success: bool = False
    next_page_token: str | None = None
    exhausted: bool = False
    unreachable: list[str] = dataclasses.field(default_factory=list)
    pages_fetched: int = 0
    seen_page_tokens: set[str] = dataclasses.field(default_factory=set)
    empty_pages: int = 0

    @classmethod
    def create(cls, parent: str, *, filter: object, page_size: object, return_partial_success: object) -> ListPageState:
        """Validate the list arguments (``parent`` is validated by the caller).

        Raises:
            TypeError: an argument has the wrong type.
            ValueError: ``page_size`` is not positive.
        """
        if not isinstance(filter, str):
            raise TypeError(f"filter must be a string, got {filter!r}")
        if page_size is not None and (isinstance(page_size, bool) or not isinstance(page_size, int)):
            raise TypeError(f"page_size must be an int or None, got {page_size!r}")
        if page_size is not None and not 0 < page_size < 2**31:
            raise ValueError(f"page_size must be a positive int32, got {page_size!r}")
        if not isinstance(return_partial_success, bool):
            raise TypeError(f"return_partial_success must be a bool, got {return_partial_success!r}")
        return cls(
            parent=parent, filter=filter, page_size=page_size or 0, return_partial_success=return_partial_success
        )

    def next_request(self) -> operations_pb2.ListOperationsRequest | None:
        """The request for the next page, or ``None`` once the last page was fetched."""
        if self.exhausted:
            return None
        return operations_pb2.ListOperationsRequest(
            name=self.parent,
            filter=self.filter,
            page_size=self.page_size,
            page_token=self.next_page_token or "",
            return_partial_success=self.return_partial_success,
        )

    def record(self, response: operations_pb2.ListOperationsResponse) -> None:
        """Take note of a fetched page.

        Raises:
            RpcError: ``INTERNAL``: the page's ``next_page_token`` was given
                before in this listing, or more than :data:`MAX_EMPTY_PAGES`
                empty pages in a row named a next page (following it could
                never end); the error names the parent. Nothing is recorded.
        """
        token = response.next_page_token
        if token and token in self.seen_page_tokens:
            raise RpcError(
                grpc.StatusCode.INTERNAL,
                f"the server gave next_page_token {token!r} a second time after {self.pages_fetched + 1} pages; "
                "following it would list the same pages for ever",
                method="ListOperations",
                operation_name=self.parent,
            )
        empty_pages = self.empty_pages + 1 if token and not response.operations else 0
        if empty_pages > MAX_EMPTY_PAGES:
            raise RpcError(
                grpc.StatusCode.INTERNAL,
                f"the listing of {self.parent!r} gave {empty_pages} empty pages in a row, each naming a next page, "
                f"after {self.pages_fetched + 1} pages; it is not followed further",
                method="ListOperations",
                operation_name=self.parent,
            )
        self.empty_pages = empty_pages
        if token:
            self.seen_page_tokens.add(token)
        self.pages_fetched += 1
        self.next_page_token = token
        self.exhausted = not response.next_page_token
        self.unreachable.extend(u for u in response.unreachable if u not in self.unreachable)


# -- steps ----------------------------------------------------------------------------------------


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


def _near(deadline: Deadline, timeout: float | None, now: float) -> bool:
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


def run_sync(plan: Plan[T], invoke: Callable[[RpcCall], Reply], sleep: Callable[[float], None] = time.sleep) -> T:
    """Drive ``plan`` to its end with blocking ``invoke`` and ``sleep``."""
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
    finally:
        plan.close()


# -- errors and retries ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SizeLimit:
    """A message or its headers broke a gRPC size limit (see :func:`message_size_failure`).

    Attributes:
        what: ``"message"`` or ``"headers"``.
        size: its size in bytes, if the failure says.
        limit: the limit in bytes, if the failure says.
    """

    what: Literal["message", "headers"]
    size: int | None
    limit: int | None

    def describe(self) -> str:
        """E.g. ``"a message of 73400320 bytes, over the limit of 67108864 bytes"``."""
        text = "a message" if self.what == "message" else "headers"
        if self.size is not None:
            text += f" of {self.size} bytes"
        if self.limit is not None:
            text += f", over the limit of {self.limit} bytes"
        else:
            text += ", over gRPC's size limit"
        return text


# How gRPC libraries word a size limit: C-core (Python, and the servers built on it) and Go
# say "[Received|Sent] message larger than max (SIZE vs. LIMIT)"; C-core for headers
# "received metadata size exceeds [hard|soft] limit ([value length ]SIZE vs. LIMIT)"; Java
# "gRPC message exceeds maximum size LIMIT: SIZE".
_MESSAGE_SIZE = re.compile(r"message larger than max(?: \((\d+) vs\. (\d+)\))?", re.IGNORECASE)
_HEADER_SIZE = re.compile(
    r"metadata size exceeds (?:hard |soft )?limit(?: \((?:value length )?(\d+) vs\. (\d+)\))?", re.IGNORECASE
)
_JAVA_MESSAGE_SIZE = re.compile(r"message exceeds maximum size (\d+)(?:: (\d+))?", re.IGNORECASE)


def message_size_failure(failure: RpcFailure | RpcError) -> SizeLimit | None:
    """The size limit ``failure`` reports, or ``None`` if it is not a size failure.

    gRPC reports a message (or a request's headers) over a receive or send
    limit, on the client or on the server, as ``RESOURCE_EXHAUSTED``, the same
    code a quota uses; only the status message tells them apart. A size
    failure is no throttling: the same call fails the same way again.

    Args:
        failure: a failed attempt, or the :class:`~lro_grpc.errors.RpcError` made from one.
    """
    if failure.code is not grpc.StatusCode.RESOURCE_EXHAUSTED:
        return None
    details = failure.details
    match = _MESSAGE_SIZE.search(details)
    if match is not None:
        size, limit = match.groups()
        return SizeLimit("message", _int_or_none(size), _int_or_none(limit))
    match = _HEADER_SIZE.search(details)
    if match is not None:
        size, limit = match.groups()
        return SizeLimit("headers", _int_or_none(size), _int_or_none(limit))
    match = _JAVA_MESSAGE_SIZE.search(details)
    if match is not None:
        limit, size = match.groups()
        return SizeLimit("message", _int_or_none(size), _int_or_none(limit))
    return None


def _int_or_none(text: str | None) -> int | None:
    return int(text) if text is not None else None


def is_message_size_failure(failure: RpcFailure | RpcError) -> bool:
    """Whether ``failure`` is a message or its headers breaking a gRPC size limit (never retried)."""
    return message_size_failure(failure) is not None


def is_throttling(failure: RpcFailure | RpcError) -> bool:
    """Whether ``failure`` asks the caller to slow down: ``RESOURCE_EXHAUSTED`` that is not a size limit."""
    return failure.code is grpc.StatusCode.RESOURCE_EXHAUSTED and not is_message_size_failure(failure)


def retry_info_delay(trailing_metadata: Iterable[tuple[str, str | bytes]]) -> float | None:
    """The ``google.rpc.RetryInfo`` delay carried in ``grpc-status-details-bin``, in seconds.

    Returns:
        The delay, or ``None`` if the trailers hold no parsable RetryInfo.
    """
    for key, value in trailing_metadata:
        if key != STATUS_DETAILS_KEY or not isinstance(value, bytes):
            continue
        try:
            status = status_pb2.Status.FromString(value)
        except DecodeError:
            return None
        for detail in status.details:
            if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                info = error_details_pb2.RetryInfo()
                if detail.Unpack(info):
                    delay = float(info.retry_delay.seconds) + float(info.retry_delay.nanos) / 1e9
                    return max(0.0, delay)
    return None


def retry_delay(
    failure: RpcFailure,
    *,
    method: Method,
    policy: RetryPolicy,
    attempt: int,
    now: float,
    deadline: Deadline,
    rng: random.Random | None = None,
) -> float | None:
    """How long to wait before retrying a failed attempt, or ``None`` to give up.

    Args:
        failure: the failed attempt.
        method: the RPC (``DEADLINE_EXCEEDED`` is retried on reads only).
        policy: the retry policy.
        attempt: 0-based number of the attempt that failed.
        now: the monotonic time now.
        deadline: the caller's deadline, combined with the policy's own timeout.
        rng: randomness for the jitter.

    Returns:
        Seconds to wait: the policy's jittered backoff, at least the server's
        RetryInfo delay for ``RESOURCE_EXHAUSTED``; ``None`` if the code is not
        retryable, the failure is a size limit (:func:`is_message_size_failure`),
        the attempts are used up or the retry would start at or after the deadline.
    """
    if not policy.is_retryable(failure.code, idempotent_read=method in _READS):
        return None
    if is_message_size_failure(failure):
        return None
    if attempt + 1 >= policy.max_attempts:
        return None
    delay = policy.delay(attempt, rng=rng)
    if failure.code is grpc.StatusCode.RESOURCE_EXHAUSTED:
        delay = max(delay, retry_info_delay(failure.trailing_metadata) or 0.0)
    remaining = deadline.remaining(now)
    if remaining is not None and delay >= remaining:
        return None
    return delay


_rpc_log = logging.getLogger("lro_grpc.rpc")
"""Retries of failed RPC attempts (DEBUG) and giving up on them (WARNING)."""
_wait_log = logging.getLogger("lro_grpc.wait")
"""Waits on one operation: quota slow-downs and deadlines (DEBUG), the WaitOperation fallback (INFO)."""


def _log_retry(failure: RpcFailure, *, method: Method, name: str | None, attempt: int, delay: float) -> None:
    if _rpc_log.isEnabledFor(logging.DEBUG):
        _rpc_log.debug(
            "%s for %r failed with %s (attempt %d): retrying in %.3f s: %s",
            method,
            name,
            failure.code.name,
            attempt,
            delay,
            failure.details,
            extra={
                "lro_method": method,
                "lro_operation": name,
                "lro_code": failure.code.name,
                "lro_attempt": attempt,
                "lro_delay": delay,
            },
        )


def _log_give_up(failure: RpcFailure, *, method: Method, name: str | None, attempts: int, policy: RetryPolicy) -> None:
    # Only failures that retries were meant to ride out are news; NOT_FOUND and the like are plain errors.
    if not policy.is_retryable(failure.code, idempotent_read=method in _READS):
        return
    if _rpc_log.isEnabledFor(logging.WARNING):
        _rpc_log.warning(
            "%s for %r: giving up after %d attempt(s): %s: %s",
            method,
            name,
            attempts,
            failure.code.name,
            failure.details,
            extra={"lro_method": method, "lro_operation": name, "lro_code": failure.code.name, "lro_attempt": attempts},
        )


def rpc_error(failure: RpcFailure, *, method: Method, operation_name: str | None) -> RpcError:
    """The library error for a failed RPC (``NOT_FOUND`` -> :class:`OperationNotFoundError`).

    A size failure's message says the size and the limit (when gRPC gave
    them) and that it was not retried.
    """
    cls = OperationNotFoundError if failure.code is grpc.StatusCode.NOT_FOUND else RpcError
    details = failure.details
    size_limit = message_size_failure(failure)
    if size_limit is not None:
        details = f"{details} ({size_limit.describe()}; not retried: the same call would fail the same way)"
    error = cls(failure.code, details, method=method, operation_name=operation_name)
    error.__cause__ = failure.exception
    return error


def deadline_passed(method: Method, operation_name: str | None) -> RpcError:
    """The error for a call whose deadline passed before it could be made."""
    return RpcError(
        grpc.StatusCode.DEADLINE_EXCEEDED,
        "the deadline passed before the call could be made",
        method=method,
        operation_name=operation_name,
    )


def operation_failed(operation: operations_pb2.Operation) -> bool:
    """Whether ``operation`` failed: its ``error`` field is set, whatever the code.

    The one reading every part of lro-grpc uses (handles, batch counts, the
    CLI). ``done`` with an ``error`` of code 0 (``OK``) and no response is a
    server contradiction: the server chose the error branch of the result but
    gave no failure code. It is read as a failure of code ``UNKNOWN`` (see
    :func:`failure_status`), never as a success: there is no response to act on.
    """
    return bool(operation.HasField("error"))


def failure_status(operation: operations_pb2.Operation) -> status_pb2.Status | None:
    """The ``google.rpc.Status`` ``operation`` failed with, or ``None`` if it did not fail.

    An error of code 0 (``OK``) comes back as code ``UNKNOWN`` with a message
    saying what the server sent (see :func:`operation_failed`); any other
    error as it is.
    """
    if not operation.HasField("error"):
        return None
    status = operation.error
    if status.code != code_pb2.OK:
        return status
    read = status_pb2.Status()
    read.CopyFrom(status)
    read.code = code_pb2.UNKNOWN
    read.message = "the server reported an error of code 0 (OK) and no response" + (
        f": {status.message}" if status.message else ""
    )
    return read


def operation_error(
    status: status_pb2.Status, *, unpack: Callable[[Any], Message], operation: object
) -> OperationError:
    """The exception for an operation that finished with ``status``.

    Details whose type ``unpack`` knows are unpacked; the others stay raw ``Any``.
    ``CANCELLED`` gives :class:`OperationCancelledError`.
    """
    details: list[Message] = []
    for detail in status.details:
        try:
            details.append(unpack(detail))
        except TypeRegistryError:
            details.append(detail)
    cls = OperationCancelledError if status.code == code_pb2.CANCELLED else OperationError
    return cls(status, details=details, operation=operation)


# -- plans ----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CallSettings:
    """How one logical call behaves.

    Attributes:
        retry_policy: retries of transient failures.
        rpc_timeout: timeout of each attempt in seconds (``None``: bounded by the deadline only).
        rng: randomness for jitter (``None``: a shared generator).
        clock: the monotonic clock.
    """

    retry_policy: RetryPolicy
    rpc_timeout: float | None
    rng: random.Random | None = None
    clock: Callable[[], float] = time.monotonic


def unary_plan(
    method: Method,
    request: Message,
    *,
    routing_name: str,
    settings: CallSettings,
    deadline: Deadline | None = None,
    operation_name: str | None = None,
    retry_resource_exhausted: bool = True,
) -> Plan[Any]:
    """One logical call: attempts, retries with backoff, all within the deadline.

    Args:
        method: the RPC.
        request: its request.
        routing_name: the value of the routing header.
        settings: retry policy and per-attempt timeout.
        deadline: the caller's deadline; combined with the retry policy's timeout.
        operation_name: named in errors.
        retry_resource_exhausted: retry ``RESOURCE_EXHAUSTED`` here; ``False``
            raises it at once for the caller to slow down as a whole (the
            batch scheduler pauses every operation, not just this call).

    Returns:
        The response message (via ``StopIteration``).

    Raises:
        RpcError: the last attempt failed and no retry is allowed.
    """
    clock = settings.clock
    metadata = request_metadata(routing_name)
    start = clock()
    overall = Deadline.after(settings.retry_policy.timeout, now=start).earliest(deadline or Deadline(None))
    attempt = 0
    while True:
        now = clock()
        timeout = overall.clip(settings.rpc_timeout, now)
        if timeout is not None and timeout <= 0:
            raise deadline_passed(method, operation_name)
        step = RpcCall(method, request, timeout, metadata, _near(overall, timeout, now))
        reply = check_reply(method, request, (yield step))
        if not isinstance(reply, RpcFailure):
            return reply
        if not retry_resource_exhausted and is_throttling(reply):
            raise rpc_error(reply, method=method, operation_name=operation_name)
        delay = retry_delay(
            reply,
            method=method,
            policy=settings.retry_policy,
            attempt=attempt,
            now=clock(),
            deadline=overall,
            rng=settings.rng,
        )
        if delay is None:
            _log_give_up(
                reply,
                method=method,
                name=operation_name or routing_name,
                attempts=attempt + 1,
                policy=settings.retry_policy,
            )
            raise rpc_error(reply, method=method, operation_name=operation_name)
        _log_retry(reply, method=method, name=operation_name or routing_name, attempt=attempt + 1, delay=delay)
        yield Sleep(delay)
        attempt += 1


@dataclasses.dataclass(frozen=True)
class PollSettings:
    """How a wait for an operation behaves.

    Attributes:
        poll_policy: interval between looks at a running operation.
        call: retry policy, per-RPC timeout, randomness and clock.
        use_wait_rpc: try the WaitOperation RPC (falling back to polling on ``UNIMPLEMENTED``).
        final_poll_reserve: see :data:`FINAL_POLL_RESERVE`.
    """

    poll_policy: PollPolicy
    call: CallSettings
    use_wait_rpc: bool = False
    final_poll_reserve: float = FINAL_POLL_RESERVE


def poll_plan(
    name: str,
    *,
    settings: PollSettings,
    deadline: Deadline,
    timeout: float | None,
    on_update: Callable[[operations_pb2.Operation], None] | None = None,
    on_wait_unimplemented: Callable[[], None] | None = None,
    wrap: Callable[[operations_pb2.Operation], object] | None = None,
    last_seen: operations_pb2.Operation | None = None,
) -> Plan[operations_pb2.Operation]:
    """Look at operation ``name`` until it is done or the deadline comes.

    Behaviour:

    * the operation is looked at at least once, even with no time left (that
      look gets :data:`LOOK_ONCE_TIMEOUT`), so a done operation is never
      reported as timed out;
    * not done: sleep ``min(poll delay, time left - reserve)``, then look
      again; the last look is made just before the deadline with its RPC
      clipped to what remains, so no RPC outlives the deadline;
    * ``RESOURCE_EXHAUSTED``: slow down (the next poll interval, at least the
      server's RetryInfo delay), never fatal; except a size limit
      (:func:`is_message_size_failure`), which fails at once;
    * ``UNAVAILABLE`` / ``DEADLINE_EXCEEDED``: retried with the retry policy's
      jittered backoff, within its attempts and timeout;
    * WaitOperation ``UNIMPLEMENTED``: switch to GetOperation at once and call
      ``on_wait_unimplemented``;
    * other failures: :class:`RpcError` (``NOT_FOUND``: :class:`OperationNotFoundError`).

    Args:
        name: the validated operation name.
        settings: polling, retry and timeout settings.
        deadline: the absolute deadline of the whole wait.
        timeout: the caller's timeout, reported in :class:`WaitTimeoutError`.
        on_update: called with every operation state received.
        on_wait_unimplemented: called once if the server lacks WaitOperation.
        wrap: turns the last seen state into what :class:`WaitTimeoutError` carries.
        last_seen: the state known before the wait, if any.

    Returns:
        The done operation (via ``StopIteration``).

    Raises:
        WaitTimeoutError: the deadline came first.
        RpcError: an RPC failed for good.
    """
    call = settings.call
    clock = call.clock
    retry = call.retry_policy
    metadata = request_metadata(name)
    if last_seen is not None and last_seen.done:
        return last_seen
    most_reserve = settings.final_poll_reserve
    if call.rpc_timeout is not None:
        most_reserve = min(most_reserve, call.rpc_timeout)
    reserve = most_reserve
    use_wait = settings.use_wait_rpc
    polls = 0  # answered looks at a running operation (drives the poll interval)
    failures = 0  # consecutive transient failures (drives the retry backoff)
    failing_since: float | None = None
    last_failure: RpcFailure | None = None
    looked = False

    def timed_out() -> WaitTimeoutError:
        if _wait_log.isEnabledFor(logging.DEBUG):
            _wait_log.debug(
                "operation %r not done at the deadline (%r s)", name, timeout, extra={"lro_operation": name}
            )
        shown: object = last_seen
        if wrap is not None and last_seen is not None:
            shown = wrap(last_seen)
        error = WaitTimeoutError(
            f"operation {name!r} was not done within {timeout!r} s", operation=shown, timeout=timeout
        )
        if last_failure is not None:
            error.__cause__ = last_failure.exception
        return error

    while True:
        started = clock()
        remaining = deadline.remaining(started)
        rpc_timeout = deadline.clip(call.rpc_timeout, started)
        if remaining is not None and remaining < LOOK_ONCE_TIMEOUT and not looked:
            # No time left, but a wait never gives up without asking once.
            rpc_timeout = LOOK_ONCE_TIMEOUT if call.rpc_timeout is None else min(call.rpc_timeout, LOOK_ONCE_TIMEOUT)
        elif remaining is not None and remaining <= 0:
            raise timed_out()
        looked = True
        method: Method
        if use_wait and (remaining is None or remaining - reserve > reserve):
            method = "WaitOperation"
            asked = WAIT_RPC_MAX if remaining is None else min(WAIT_RPC_MAX, remaining - reserve)
            request: Message = wait_request(name, asked)
            # The server answers after `asked`; the RPC may take the per-RPC timeout beyond that.
            rpc_timeout = deadline.clip(asked + (call.rpc_timeout or reserve), started)
        else:
            method = "GetOperation"
            request = get_request(name)
        step = RpcCall(method, request, rpc_timeout, metadata, _near(deadline, rpc_timeout, started))
        reply = check_reply(method, request, (yield step))
        now = clock()
        if not isinstance(reply, RpcFailure):
            assert isinstance(reply, operations_pb2.Operation)  # check_reply made sure of it
            last_seen = reply
            if method == "GetOperation":
                # Keep for the last look what this link's round trip needs, no more.
                round_trip = FINAL_POLL_RTT_FACTOR * (now - started)
                reserve = min(most_reserve, max(MIN_FINAL_POLL_RESERVE, round_trip))
            last_failure = None
            failures = 0
            failing_since = None
            if on_update is not None:
                on_update(reply)
            if reply.done:
                return reply
            delay = settings.poll_policy.delay(polls, rng=call.rng)
            polls += 1
            if method == "WaitOperation":
                # The server already waited; poll no more often than the policy says.
                delay = max(0.0, delay - (now - started))
        else:
            last_failure = reply
            code = reply.code
            if method == "WaitOperation" and code is grpc.StatusCode.UNIMPLEMENTED:
                use_wait = False
                if _wait_log.isEnabledFor(logging.INFO):
                    _wait_log.info(
                        "WaitOperation for %r is UNIMPLEMENTED on this server: polling with GetOperation instead",
                        name,
                        extra={"lro_method": method, "lro_operation": name, "lro_code": code.name},
                    )
                if on_wait_unimplemented is not None:
                    on_wait_unimplemented()
                continue
            if code is grpc.StatusCode.DEADLINE_EXCEEDED and deadline.expired(now):
                raise timed_out()
            if is_throttling(reply):
                # Quota: slow down rather than fail.
                delay = max(
                    settings.poll_policy.delay(polls, rng=call.rng), retry_info_delay(reply.trailing_metadata) or 0
                )
                polls += 1
                if _wait_log.isEnabledFor(logging.DEBUG):
                    _wait_log.debug(
                        "%s for %r: RESOURCE_EXHAUSTED, polling more slowly: next look in %.3f s",
                        method,
                        name,
                        delay,
                        extra={"lro_method": method, "lro_operation": name, "lro_code": code.name, "lro_delay": delay},
                    )
            else:
                if failing_since is None:
                    failing_since = started
                retry_deadline = Deadline.after(retry.timeout, now=failing_since)
                next_delay = retry_delay(
                    reply,
                    method=method,
                    policy=retry,
                    attempt=failures,
                    now=now,
                    deadline=retry_deadline,
                    rng=call.rng,
                )
                if next_delay is None:
                    _log_give_up(reply, method=method, name=name, attempts=failures + 1, policy=retry)
                    raise rpc_error(reply, method=method, operation_name=name)
                delay = next_delay
                failures += 1
                _log_retry(reply, method=method, name=name, attempt=failures, delay=delay)
        remaining = deadline.remaining(now)
        if remaining is not None:
            if remaining <= reserve:
                raise timed_out()
            delay = min(delay, remaining - reserve)
        if delay > 0:
            yield Sleep(delay)
