"""Reading failed RPC attempts: size limits, throttling, RetryInfo, backoff, logging, the library error."""

from __future__ import annotations

import dataclasses
import logging
import random
import re
from collections.abc import Iterable
from typing import Final, Literal

import grpc
from google.protobuf.message import DecodeError
from google.rpc import status_pb2

from lro_grpc._connection import connection_hint, not_http2, refused_loopback
from lro_grpc._core.requests import READ_METHODS, Method
from lro_grpc._core.steps import RpcFailure
from lro_grpc.errors import OperationNotFoundError, RpcError
from lro_grpc.policies import RETRIED_CODES, RETRIED_READ_CODES, Deadline, RetryPolicy

__all__ = [
    "DEADLINE_PASSED",
    "LIST_REJECTED_CODES",
    "LOOK_AGAIN_CODES",
    "RETRIED_CODES",
    "RETRIED_READ_CODES",
    "STATUS_DETAILS_KEY",
    "SUSPECT_CODES",
    "SizeLimit",
    "backoff_delay",
    "deadline_passed",
    "is_message_size_failure",
    "is_throttling",
    "log_give_up",
    "log_retry",
    "message_size_failure",
    "retry_info_delay",
    "rpc_error",
]

STATUS_DETAILS_KEY: Final = "grpc-status-details-bin"


# -- the one table of failure codes ---------------------------------------------------------------
#
# RETRIED_CODES and RETRIED_READ_CODES (a RetryPolicy's, from lro_grpc.policies) say what a
# single call retries; the batch reads the same codes, through the variants named here.

LOOK_AGAIN_CODES: Final = (RETRIED_READ_CODES - {grpc.StatusCode.RESOURCE_EXHAUSTED}) | {
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.ABORTED,
}
"""The batch's variant: a look at an operation failed with one of these says nothing about the operation.

It is looked at again after a backoff. (A batch's ``RESOURCE_EXHAUSTED`` pauses
its whole scheduler instead, see :func:`is_throttling`.)
"""

SUSPECT_CODES: Final = frozenset({grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS})
"""The batch's variant: a broken answer (undecodable, garbled), looked at again a few times, then reported failed."""

LIST_REJECTED_CODES: Final = frozenset(
    {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.PERMISSION_DENIED}
)
"""The sweep's variant: a first ListOperations page failing with one of these: the server will not list that scope."""


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
# Patterns as strings: compiled (and cached by ``re``) when a failure is first read, not at import.
_MESSAGE_SIZE = r"message larger than max(?: \((\d+) vs\. (\d+)\))?"
_HEADER_SIZE = r"metadata size exceeds (?:hard |soft )?limit(?: \((?:value length )?(\d+) vs\. (\d+)\))?"
_JAVA_MESSAGE_SIZE = r"message exceeds maximum size (\d+)(?:: (\d+))?"


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
    match = re.search(_MESSAGE_SIZE, details, re.IGNORECASE)
    if match is not None:
        size, limit = match.groups()
        return SizeLimit("message", _int_or_none(size), _int_or_none(limit))
    match = re.search(_HEADER_SIZE, details, re.IGNORECASE)
    if match is not None:
        size, limit = match.groups()
        return SizeLimit("headers", _int_or_none(size), _int_or_none(limit))
    match = re.search(_JAVA_MESSAGE_SIZE, details, re.IGNORECASE)
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
        from google.rpc import error_details_pb2  # only failures carry details: not loaded by ``import lro_grpc``

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


def backoff_delay(
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
    if not policy.is_retryable(failure.code, idempotent_read=method in READ_METHODS):
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


def log_retry(failure: RpcFailure, *, method: Method, name: str | None, attempt: int, delay: float) -> None:
    """Log (DEBUG, ``lro_grpc.rpc``) that a failed attempt is retried after ``delay`` seconds."""
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


def log_give_up(failure: RpcFailure, *, method: Method, name: str | None, attempts: int, policy: RetryPolicy) -> None:
    """Log (WARNING, ``lro_grpc.rpc``) giving up on a failure the retry policy was meant to ride out."""
    # Only failures that retries were meant to ride out are news; NOT_FOUND and the like are plain errors.
    if not policy.is_retryable(failure.code, idempotent_read=method in READ_METHODS):
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
    hint = connection_hint(failure.code, failure.details)
    if hint is not None:
        details = f"{details} ({hint})"
    error = cls(failure.code, details, method=method, operation_name=operation_name)
    error.__cause__ = failure.exception
    return error


def unreachable_for_good(failure: RpcFailure, *, first_contact: bool) -> bool:
    """Whether a failure to reach the server is one retrying cannot fix (see ``lro_grpc._connection``).

    A port that does not speak HTTP/2 never will; a loopback port that refuses
    a client which never had an answer has nothing listening on it.
    """
    return not_http2(failure.code, failure.details) or (
        first_contact and refused_loopback(failure.code, failure.details)
    )


DEADLINE_PASSED: Final = RpcFailure(
    code=grpc.StatusCode.DEADLINE_EXCEEDED,
    details="the deadline passed before the call could be made",
    trailing_metadata=(),
    exception=None,
)
"""The failure of a call whose deadline passed before it could be made (no attempt was made)."""


def deadline_passed(method: Method, operation_name: str | None) -> RpcError:
    """The error for a call whose deadline passed before it could be made."""
    return rpc_error(DEADLINE_PASSED, method=method, operation_name=operation_name)
