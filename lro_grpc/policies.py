"""Polling and retry policies, and the deadline arithmetic behind them.

Three separate things govern a wait, each its own object:

* :class:`PollPolicy`: how often to look at an operation that is still
  running (and, via ``result(timeout=...)``, how long to wait overall);
* :class:`RetryPolicy`: what to do when one RPC fails with a transient error;
* the per-RPC timeout (``rpc_timeout``): how long one RPC may take.

All of them work on absolute ``time.monotonic()`` deadlines. Nothing here does
I/O or sleeps: the sync and async clients share this arithmetic.
"""

from __future__ import annotations

import dataclasses
import math
import random
from datetime import timedelta
from typing import Final

import grpc

__all__ = [
    "DEFAULT_POLL_POLICY",
    "DEFAULT_RETRY_POLICY",
    "FINANCIAL_SERVICES_POLL_POLICY",
    "SERVICE_MANAGEMENT_POLL_POLICY",
    "Deadline",
    "PollPolicy",
    "RetryPolicy",
    "to_seconds",
]

Duration = float | int | timedelta


def to_seconds(value: Duration, *, what: str) -> float:
    """Convert a duration given as seconds or ``timedelta`` to float seconds.

    Raises:
        TypeError: ``value`` is neither a number nor a ``timedelta``.
        ValueError: ``value`` is negative or not finite.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | timedelta):
        raise TypeError(f"{what} must be seconds (int/float) or a timedelta, got {value!r}")
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{what} must be a finite, non-negative duration, got {value!r}")
    return seconds


def _backoff(
    initial: float, multiplier: float, maximum: float, jitter: float, attempt: int, rng: random.Random
) -> float:
    """Delay before try ``attempt`` (0-based): capped exponential growth, then jitter.

    Jitter scales the delay by a factor drawn uniformly from ``[1 - jitter, 1]``,
    so a delay never exceeds ``maximum``.
    """
    # min() before pow() overflow: the exponent is bounded by when the cap is reached.
    base = initial
    if multiplier > 1:
        for _ in range(attempt):
            base *= multiplier
            if base >= maximum:
                break
    base = min(base, maximum)
    if jitter:
        base *= 1.0 - jitter * rng.random()
    return base


@dataclasses.dataclass(frozen=True, init=False)
class PollPolicy:
    """How often to poll an operation that is not done yet.

    The n-th wait (0-based) is ``min(maximum, initial * multiplier**n)``,
    scaled down by up to ``jitter`` (a fraction) so that many waiters do not
    poll in lockstep.

    Args:
        initial: first delay, seconds or ``timedelta``.
        multiplier: growth factor per poll (>= 1).
        maximum: cap on any delay, seconds or ``timedelta`` (>= ``initial``).
        jitter: fraction in ``[0, 1)`` by which a delay may be shortened.
    """

    initial: float = 1.0
    multiplier: float = 2.0
    maximum: float = 30.0
    jitter: float = 0.1

    def __init__(
        self, initial: Duration = 1.0, multiplier: float = 2.0, maximum: Duration = 30.0, jitter: float = 0.1
    ) -> None:
        # Durations may be given as timedelta; the fields always hold float seconds.
        object.__setattr__(self, "initial", initial)
        object.__setattr__(self, "multiplier", multiplier)
        object.__setattr__(self, "maximum", maximum)
        object.__setattr__(self, "jitter", jitter)
        self.__post_init__()

    def __post_init__(self) -> None:
        initial = to_seconds(self.initial, what="PollPolicy initial")
        maximum = to_seconds(self.maximum, what="PollPolicy maximum")
        if isinstance(self.multiplier, bool) or not isinstance(self.multiplier, int | float):
            raise TypeError(f"PollPolicy multiplier must be a number, got {self.multiplier!r}")
        if not math.isfinite(self.multiplier) or self.multiplier < 1:
            raise ValueError(f"PollPolicy multiplier must be >= 1, got {self.multiplier!r}")
        if initial <= 0:
            raise ValueError(f"PollPolicy initial must be > 0, got {self.initial!r}")
        if maximum < initial:
            raise ValueError(f"PollPolicy maximum ({self.maximum!r}) must be >= initial ({self.initial!r})")
        if isinstance(self.jitter, bool) or not isinstance(self.jitter, int | float):
            raise TypeError(f"PollPolicy jitter must be a number, got {self.jitter!r}")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"PollPolicy jitter must be in [0, 1), got {self.jitter!r}")
        object.__setattr__(self, "initial", initial)
        object.__setattr__(self, "maximum", maximum)
        object.__setattr__(self, "multiplier", float(self.multiplier))
        object.__setattr__(self, "jitter", float(self.jitter))

    def delay(self, attempt: int, *, rng: random.Random | None = None) -> float:
        """Seconds to wait before poll number ``attempt + 1`` (``attempt`` is 0-based)."""
        if attempt < 0:
            raise ValueError(f"attempt must be >= 0, got {attempt!r}")
        return _backoff(self.initial, self.multiplier, self.maximum, self.jitter, attempt, rng or _RNG)


RETRIED_CODES: Final = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED})
"""Codes a :class:`RetryPolicy` retries any call on (``RESOURCE_EXHAUSTED`` unless a size limit was hit).

The base of lro_grpc's one table of failure codes: the batch's variants are
named beside it in :mod:`lro_grpc._core.failures`.
"""

RETRIED_READ_CODES: Final = RETRIED_CODES | {grpc.StatusCode.DEADLINE_EXCEEDED}
"""Codes a :class:`RetryPolicy` retries the idempotent reads on (GetOperation, ListOperations, WaitOperation)."""


@dataclasses.dataclass(frozen=True, init=False)
class RetryPolicy:
    """What to do when a single RPC fails with a transient error.

    Retried: ``UNAVAILABLE`` on every RPC; ``DEADLINE_EXCEEDED`` on reads
    (get, list, wait); ``RESOURCE_EXHAUSTED`` on every RPC, waiting at least
    the server's ``google.rpc.RetryInfo`` delay when it sends one. Never past
    the caller's deadline.

    Args:
        initial: first backoff delay, seconds or ``timedelta``.
        multiplier: growth factor per retry (>= 1).
        maximum: cap on one backoff delay.
        jitter: fraction in ``[0, 1]`` by which a delay may be shortened
            (1 is "full jitter").
        max_attempts: attempts in all, the first included (>= 1).
        timeout: overall time for one logical call and its retries, or
            ``None`` to be bounded only by the caller's deadline. 60 s by
            default: the total timeout Google's published client configuration
            for ``google.longrunning.Operations`` gives GetOperation,
            ListOperations, CancelOperation and DeleteOperation. A single
            call's ``timeout=`` argument replaces it for that call.
    """

    initial: float = 0.1
    multiplier: float = 2.0
    maximum: float = 10.0
    jitter: float = 1.0
    max_attempts: int = 8
    timeout: float | None = 60.0

    def __init__(
        self,
        initial: Duration = 0.1,
        multiplier: float = 2.0,
        maximum: Duration = 10.0,
        jitter: float = 1.0,
        max_attempts: int = 8,
        timeout: Duration | None = 60.0,
    ) -> None:
        # Durations may be given as timedelta; the fields always hold float seconds.
        for field, value in (
            ("initial", initial),
            ("multiplier", multiplier),
            ("maximum", maximum),
            ("jitter", jitter),
            ("max_attempts", max_attempts),
            ("timeout", timeout),
        ):
            object.__setattr__(self, field, value)
        self.__post_init__()

    def __post_init__(self) -> None:
        initial = to_seconds(self.initial, what="RetryPolicy initial")
        maximum = to_seconds(self.maximum, what="RetryPolicy maximum")
        if isinstance(self.multiplier, bool) or not isinstance(self.multiplier, int | float):
            raise TypeError(f"RetryPolicy multiplier must be a number, got {self.multiplier!r}")
        if not math.isfinite(self.multiplier) or self.multiplier < 1:
            raise ValueError(f"RetryPolicy multiplier must be >= 1, got {self.multiplier!r}")
        if maximum < initial:
            raise ValueError(f"RetryPolicy maximum ({self.maximum!r}) must be >= initial ({self.initial!r})")
        if isinstance(self.jitter, bool) or not isinstance(self.jitter, int | float) or not 0 <= self.jitter <= 1:
            raise ValueError(f"RetryPolicy jitter must be a number in [0, 1], got {self.jitter!r}")
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise ValueError(f"RetryPolicy max_attempts must be an int >= 1, got {self.max_attempts!r}")
        timeout = None if self.timeout is None else to_seconds(self.timeout, what="RetryPolicy timeout")
        object.__setattr__(self, "initial", initial)
        object.__setattr__(self, "maximum", maximum)
        object.__setattr__(self, "multiplier", float(self.multiplier))
        object.__setattr__(self, "jitter", float(self.jitter))
        object.__setattr__(self, "timeout", timeout)

    def delay(self, attempt: int, *, rng: random.Random | None = None) -> float:
        """Backoff in seconds after failed attempt number ``attempt`` (0-based)."""
        if attempt < 0:
            raise ValueError(f"attempt must be >= 0, got {attempt!r}")
        return _backoff(self.initial, self.multiplier, self.maximum, self.jitter, attempt, rng or _RNG)

    def is_retryable(self, code: grpc.StatusCode, *, idempotent_read: bool) -> bool:
        """Whether a failure with ``code`` may be retried (:data:`RETRIED_CODES`, :data:`RETRIED_READ_CODES`)."""
        return code in (RETRIED_READ_CODES if idempotent_read else RETRIED_CODES)


class Deadline:
    """An absolute point on the ``time.monotonic()`` clock, or none (wait for ever).

    Args:
        expires_at: monotonic time at which the deadline passes, or ``None``.
    """

    __slots__ = ("expires_at",)

    def __init__(self, expires_at: float | None) -> None:
        self.expires_at = expires_at

    @classmethod
    def after(cls, timeout: Duration | None, *, now: float) -> Deadline:
        """The deadline ``timeout`` seconds after ``now`` (``None``: no deadline)."""
        if timeout is None:
            return cls(None)
        return cls(now + to_seconds(timeout, what="timeout"))

    def remaining(self, now: float) -> float | None:
        """Seconds left at ``now`` (never negative), or ``None`` without a deadline."""
        if self.expires_at is None:
            return None
        return max(0.0, self.expires_at - now)

    def expired(self, now: float) -> bool:
        """Whether the deadline has passed at ``now``."""
        return self.expires_at is not None and now >= self.expires_at

    def clip(self, seconds: float | None, now: float) -> float | None:
        """``seconds`` shortened to what remains at ``now`` (``None`` means unbounded)."""
        remaining = self.remaining(now)
        if remaining is None:
            return seconds
        if seconds is None:
            return remaining
        return min(seconds, remaining)

    def earliest(self, other: Deadline) -> Deadline:
        """The earlier of two deadlines."""
        if self.expires_at is None:
            return other
        if other.expires_at is None:
            return self
        return self if self.expires_at <= other.expires_at else other

    def __repr__(self) -> str:
        return f"Deadline(expires_at={self.expires_at!r})"


_RNG = random.Random()

DEFAULT_POLL_POLICY = PollPolicy()
"""Used when an API has no preset and the caller gives none: 1 s, x2, at most 30 s."""

FINANCIAL_SERVICES_POLL_POLICY = PollPolicy(initial=5.0, multiplier=2.0, maximum=45.0)
"""Financial Services' published polling for instance create/update: 5 s, x2, at most 45 s."""

SERVICE_MANAGEMENT_POLL_POLICY = PollPolicy(initial=10.0, multiplier=1.0, maximum=10.0)
"""Service Management's documented advice: poll about every 10 s."""

DEFAULT_RETRY_POLICY = RetryPolicy()
"""0.1 s, x2, at most 10 s between tries, full jitter, at most 8 tries within 60 s."""
