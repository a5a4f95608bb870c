"""The batch's settings: defaults, argument checks, and the progress counts a consumer is shown.

Nothing here does I/O, and importing it is cheap: ``lro_grpc._batch`` loads it
eagerly, the parts that need asyncio on first use.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable
from typing import Final

from lro_grpc.names import validate_operation_name
from lro_grpc.policies import DEFAULT_POLL_POLICY, Duration, PollPolicy, to_seconds

DEFAULT_MAX_IN_FLIGHT: Final = 100
"""RPCs in flight at most: one HTTP/2 connection's usual stream limit."""

DEFAULT_BATCH_RPC_TIMEOUT: Final = 10.0
"""Per-RPC timeout of one GetOperation poll (the APIs' published Get timeout)."""

SYNTHETIC_ERROR_DOMAIN: Final = "lro-grpc.batch"
"""``ErrorInfo.domain`` of the error given to an operation whose GetOperation failed for good."""


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
