"""What every part of the batch waiter shares: settings checks, the tracked entry, outcomes.

Nothing here does I/O. The scheduler (:mod:`._scheduler`), its two ways of
looking at operations (:mod:`._per_operation`, :mod:`._sweep`), the waiter
(:mod:`._waiter`) and the synchronous facade (:mod:`._sync`) build on it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar

import grpc
from google.longrunning import operations_pb2
from google.rpc import error_details_pb2, status_pb2

from lro_grpc import _core
from lro_grpc.errors import RpcError
from lro_grpc.names import validate_operation_name
from lro_grpc.policies import DEFAULT_POLL_POLICY, Deadline, Duration, PollPolicy, to_seconds

if TYPE_CHECKING:
    from lro_grpc._batch._sweep import Scope
    from lro_grpc._batch._waiter import BatchWaiter

T_co = TypeVar("T_co", covariant=True)

DEFAULT_MAX_IN_FLIGHT: Final = 100
"""RPCs in flight at most: one HTTP/2 connection's usual stream limit."""

DEFAULT_BATCH_RPC_TIMEOUT: Final = 10.0
"""Per-RPC timeout of one GetOperation poll (the APIs' published Get timeout)."""

SYNTHETIC_ERROR_DOMAIN: Final = "lro-grpc.batch"
"""``ErrorInfo.domain`` of the error given to an operation whose GetOperation failed for good."""

# Codes after which the operation is simply looked at again later: they say
# nothing about the operation itself.
TRANSIENT_CODES: Final = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.ABORTED,
    }
)

# Codes of a broken answer (undecodable, garbled): tried again a few times, then
# the operation is reported failed with that error, so one bad answer never ends a batch.
SUSPECT_CODES: Final = frozenset({grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS})

# Listing failures on the first page that mean "this server will not list this scope (with this filter)".
LISTING_REJECTED_CODES: Final = frozenset(
    {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.PERMISSION_DENIED}
)

MAX_SUSPECT_FAILURES: Final = 3
"""Consecutive failed looks with a :data:`SUSPECT_CODES` code before the operation is reported failed."""

RETRY_INITIAL: Final = 0.1
"""First wait, in seconds, before a failed look is tried again; it doubles up to the poll delay."""

_COALESCE_MIN_DELAY = 0.02
_STATUS_DETAILS_KEY = "grpc-status-details-bin"
_RETRY_INFO_TYPE = "type.googleapis.com/" + error_details_pb2.RetryInfo.DESCRIPTOR.full_name


class BatchSource(Protocol[T_co]):
    """What the waiter needs from a client: one logical GetOperation, and a handle factory.

    :class:`lro_grpc.AsyncOperationsClient` provides both, and also
    ``_list_operations_pb`` (one logical ListOperations page), which lets its
    scheduler sweep whole list scopes. Any object with the two methods below
    works (a test double over a raw stub, for example); without
    ``_list_operations_pb`` every operation is polled on its own.
    """

    def _get_operation_pb(
        self, name: str, *, deadline: Deadline, rpc_timeout: float | None = None
    ) -> Awaitable[operations_pb2.Operation]:
        """One GetOperation (with the client's retries), clipped to ``deadline``.

        Raises ``lro_grpc.errors.RpcError`` (or a raw ``grpc.RpcError``) on failure.
        """
        ...

    def _wrap(self, pb: operations_pb2.Operation) -> T_co:
        """The handle the waiter reports for a finished (or timed out) operation."""
        ...


ListFetch = Callable[..., Awaitable[operations_pb2.ListOperationsResponse]]
"""``await list_fetch(request, deadline=..., rpc_timeout=...)``: one ListOperations page."""


@dataclasses.dataclass(frozen=True)
class BatchProgress:
    """Counts passed to a waiter's ``progress`` callback.

    Attributes:
        done: operations reported finished, whatever the outcome.
        failed: of those, the ones that finished with an error (failed,
            cancelled, or not found).
        pending: operations still being polled.
        timed_out: operations still running when the deadline passed.
    """

    done: int
    failed: int
    pending: int
    timed_out: int = 0

    @property
    def succeeded(self) -> int:
        """Operations that finished without an error."""
        return self.done - self.failed

    @property
    def total(self) -> int:
        """Distinct operations tracked."""
        return self.done + self.pending + self.timed_out


class Counts:
    """Progress counting shared by the async and sync iterators."""

    __slots__ = ("done", "failed", "timed_out", "tracked")

    def __init__(self) -> None:
        self.tracked = 0
        self.done = 0
        self.failed = 0
        self.timed_out = 0

    def snapshot(self) -> BatchProgress:
        pending = self.tracked - self.done - self.timed_out
        return BatchProgress(done=self.done, failed=self.failed, pending=pending, timed_out=self.timed_out)


# Where an entry is (Entry.state).
QUEUED: Final = 0  # in the scheduler's heap (the heap item with its ``seq`` is the live one)
POLLING: Final = 1  # its own GetOperation is in flight
SWEEPING: Final = 2  # claimed by a listing round of its scope
GONE: Final = 3  # reported, expired or removed


class Entry:
    """One tracked operation: small on purpose (see the package docstring).

    Attributes:
        waiter: the waiter it belongs to.
        name: the operation name.
        order: insertion order (input order across a waiter).
        policy: its poll policy.
        attempts: answered looks at it while running (drives the poll interval).
        failures: failed looks since the last answered one (drives the retry backoff).
        last_error: the error of its last look, if that failed (``None`` once answered).
        last_seen: serialized bytes of its last seen state, if any.
        scope: the list scope a sweep covers it with (``None``: polled on its own).
        due: when it is next due to be looked at.
        seq: the heap item that is live for it (older items are stale).
        state: ``QUEUED``, ``POLLING``, ``SWEEPING`` or ``GONE``.
        confirm: its next look must be its own GetOperation (a listing left it out, or failed).
    """

    __slots__ = (
        "attempts",
        "confirm",
        "due",
        "failures",
        "last_error",
        "last_seen",
        "name",
        "order",
        "policy",
        "scope",
        "seq",
        "state",
        "waiter",
    )

    def __init__(self, waiter: BatchWaiter[Any], name: str, order: int, policy: PollPolicy) -> None:
        self.waiter = waiter
        self.name = name
        self.order = order
        self.policy = policy
        self.attempts = 0
        self.failures = 0
        self.last_error: BaseException | None = None
        self.last_seen: bytes | None = None
        self.scope: Scope | None = None
        self.due = 0.0
        self.seq = -1
        self.state = GONE
        self.confirm = False


class CheckedNames(list[str]):
    """A list of operation names that :func:`check_names` has validated."""

    __slots__ = ()


def check_names(names: Iterable[str]) -> CheckedNames:
    """``names`` as a list, every one validated (before anything is tracked or sent).

    A :class:`CheckedNames` is returned as it is: a batch validates each name once.

    Raises:
        TypeError: a single string, a non-iterable, or a name that is not a ``str``.
        InvalidNameError: a malformed name.
    """
    if type(names) is CheckedNames:
        return names
    if isinstance(names, str | bytes):
        raise TypeError(f"names must be an iterable of operation names, not a single {type(names).__name__}: {names!r}")
    try:
        checked = CheckedNames(names)
    except TypeError:
        raise TypeError(f"names must be an iterable of operation names, got {names!r}") from None
    for name in checked:
        validate_operation_name(name)
    return checked


def check_settings(
    timeout: Duration | None,
    poll_policy: PollPolicy | None,
    rpc_timeout: Duration | None,
    progress: Callable[[BatchProgress], object] | None,
) -> tuple[float | None, PollPolicy, float | None]:
    """Validate a waiter's settings; returns (timeout s, poll policy, rpc timeout s)."""
    timeout_s = None if timeout is None else to_seconds(timeout, what="timeout")
    if poll_policy is None:
        poll_policy = DEFAULT_POLL_POLICY
    elif not isinstance(poll_policy, PollPolicy):
        raise TypeError(f"poll_policy must be a PollPolicy, got {poll_policy!r}")
    rpc_timeout_s = None if rpc_timeout is None else to_seconds(rpc_timeout, what="rpc_timeout")
    if rpc_timeout_s is not None and rpc_timeout_s <= 0:
        raise ValueError(f"rpc_timeout must be > 0, got {rpc_timeout!r}")
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be callable, got {progress!r}")
    return timeout_s, poll_policy, rpc_timeout_s


def check_limits(max_in_flight: int, qps: float | None, *, prefix: str = "") -> tuple[int, float | None]:
    """Validate a scheduler's limits; ``prefix`` is put before the argument names in errors."""
    if isinstance(max_in_flight, bool) or not isinstance(max_in_flight, int):
        raise TypeError(f"{prefix}max_in_flight must be an int, got {max_in_flight!r}")
    if max_in_flight < 1:
        raise ValueError(f"{prefix}max_in_flight must be >= 1, got {max_in_flight!r}")
    if qps is not None:
        if isinstance(qps, bool) or not isinstance(qps, int | float):
            raise TypeError(f"{prefix}qps must be a number of calls per second or None, got {qps!r}")
        if not math.isfinite(qps) or qps <= 0:
            raise ValueError(f"{prefix}qps must be a finite number > 0, got {qps!r}")
        qps = float(qps)
    return max_in_flight, qps


def own_limits(max_in_flight: int | None, qps: float | None) -> tuple[int, float | None] | None:
    """A waiter's own scheduler limits, checked; ``None`` when neither is given (share the client's)."""
    if max_in_flight is None and qps is None:
        return None
    return check_limits(DEFAULT_MAX_IN_FLIGHT if max_in_flight is None else max_in_flight, qps)


# --------------------------------------------------------------------------- failed RPCs


def rpc_code(exc: BaseException) -> grpc.StatusCode | None:
    """The status code of a failed RPC (lro_grpc's or grpc's error), ``None`` for anything else."""
    if isinstance(exc, RpcError):
        return exc.code
    if isinstance(exc, grpc.RpcError):
        code = getattr(exc, "code", None)
        if callable(code):
            value = code()
            return value if isinstance(value, grpc.StatusCode) else grpc.StatusCode.UNKNOWN
    return None


def rpc_details(exc: BaseException) -> str:
    """The status message of a failed RPC."""
    if isinstance(exc, RpcError):
        return exc.details
    details = getattr(exc, "details", None)
    if callable(details):
        value = details()
        if isinstance(value, str):
            return value
    return str(exc)


def is_message_size_failure(exc: BaseException) -> bool:
    """Whether a failed RPC hit a message size limit (a ``RESOURCE_EXHAUSTED`` that is not quota).

    The core's reading (:func:`lro_grpc._core.is_message_size_failure`), for
    lro_grpc's errors and raw gRPC errors alike.
    """
    if isinstance(exc, RpcError):
        return _core.is_message_size_failure(exc)
    if isinstance(exc, grpc.RpcError):
        return _core.is_message_size_failure(_core.RpcFailure.from_grpc_error(exc))
    return False


def as_rpc_error(error: BaseException | None, name: str) -> RpcError | None:
    """``error`` as lro_grpc's :class:`~lro_grpc.errors.RpcError` (a raw gRPC error is converted)."""
    if error is None or isinstance(error, RpcError):
        return error
    if isinstance(error, grpc.RpcError):
        return _core.rpc_error(_core.RpcFailure.from_grpc_error(error), method="GetOperation", operation_name=name)
    return None


def retry_delay(exc: BaseException) -> float | None:
    """The ``google.rpc.RetryInfo`` delay a failed RPC carried, in seconds, if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        delay = getattr(current, "retry_delay", None)
        if isinstance(delay, int | float) and not isinstance(delay, bool) and delay >= 0:
            return float(delay)
        trailing = getattr(current, "trailing_metadata", None)
        if callable(trailing):
            try:
                pairs = trailing() or ()
            except Exception:  # a half-built error object: no RetryInfo to find
                pairs = ()
            for key, value in pairs:
                if key == _STATUS_DETAILS_KEY and isinstance(value, bytes):
                    found = _retry_delay_from_status(value)
                    if found is not None:
                        return found
        current = current.__cause__
    return None


def _retry_delay_from_status(serialized: bytes) -> float | None:
    try:
        status = status_pb2.Status.FromString(serialized)
    except Exception:  # corrupt details: ignore them, fall back to the global backoff
        return None
    for detail in status.details:
        if detail.type_url == _RETRY_INFO_TYPE:
            info = error_details_pb2.RetryInfo()
            if detail.Unpack(info):
                return float(info.retry_delay.seconds + info.retry_delay.nanos / 1e9)
    return None


def synthetic_failure(name: str, code: grpc.StatusCode, details: str) -> operations_pb2.Operation:
    """A done operation whose error says why GetOperation failed for good."""
    info = error_details_pb2.ErrorInfo(
        reason=code.name, domain=SYNTHETIC_ERROR_DOMAIN, metadata={"method": "GetOperation"}
    )
    message = f"GetOperation failed: {code.name}: {details}"
    if code is grpc.StatusCode.NOT_FOUND:
        message += " (the operation does not exist, or its record expired)"
    status = status_pb2.Status(code=code.value[0], message=message)
    status.details.add().Pack(info)
    return operations_pb2.Operation(name=name, done=True, error=status)


# --------------------------------------------------------------------------- timing


def coalesce(due: float, delay: float) -> float:
    """``due`` moved to the nearest point of a grid at most 1/20 of ``delay`` apart.

    Polls due at nearly the same time then start together, and so do their
    answers: the event loop and gRPC wake once for the group instead of once
    per poll. Grid steps are powers of two, so the grids of different delays
    share points. No operation is polled more than ``delay / 40`` earlier or
    later than its policy says; delays under 20 ms are left alone.
    """
    if delay < _COALESCE_MIN_DELAY:
        return due
    step = 2.0 ** math.floor(math.log2(delay / 20.0))
    return round(due / step) * step


def nominal_delay(policy: PollPolicy, attempts: int) -> float:
    """The poll delay after ``attempts`` answered looks, before jitter."""
    return min(policy.maximum, policy.initial * policy.multiplier ** min(attempts, 64))


def last_seen(entry: Entry) -> operations_pb2.Operation:
    """The entry's last seen state (just its name if it was never seen)."""
    if entry.last_seen is None:
        return operations_pb2.Operation(name=entry.name)
    return operations_pb2.Operation.FromString(entry.last_seen)


# Items of a waiter's output queue, besides (name, handle, failed) triples.
class TimedOut:
    """The waiter's deadline passed with these entries still running."""

    __slots__ = ("entries",)

    def __init__(self, entries: list[Entry]) -> None:
        self.entries = entries


class Aborted:
    """The batch ends with ``error``."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


MISSING: Any = object()
