"""The scheduler's shared limits, without I/O: a calls-per-second budget and a throttle."""

from __future__ import annotations

import math
import random
from typing import Final

# Global backoff after RESOURCE_EXHAUSTED without a RetryInfo delay.
_THROTTLE_INITIAL: Final = 1.0
_THROTTLE_MULTIPLIER: Final = 2.0
_THROTTLE_MAXIMUM: Final = 30.0


class TokenBucket:
    """Calls-per-second budget: a bucket of capacity one, refilled at ``rate`` per second.

    Capacity one means no burst: in any window of ``w`` seconds at most
    ``1 + rate * w`` calls start.
    """

    __slots__ = ("rate", "tokens", "updated")

    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate
        self.tokens = 1.0
        self.updated = now

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(1.0, self.tokens + (now - self.updated) * self.rate)
            self.updated = now

    def available_at(self, now: float) -> float:
        """When the next call may start (``now`` if it may start now)."""
        self._refill(now)
        if self.tokens >= 1.0:
            return now
        return now + (1.0 - self.tokens) / self.rate

    def take(self, now: float) -> None:
        """Spend one token (the caller checked :meth:`available_at`)."""
        self._refill(now)
        self.tokens -= 1.0


class Throttle:
    """Scheduler-wide pause after RESOURCE_EXHAUSTED.

    The pause is the server's RetryInfo delay when given, else a backoff that
    doubles (1 s up to 30 s, shortened by up to half at random) for each
    refusal of an RPC started after the previous pause began; refusals of RPCs
    that were already in flight extend the pause without growing it. A
    successful RPC resets the backoff.
    """

    __slots__ = ("paused_at", "refusals", "resume_at")

    def __init__(self) -> None:
        self.resume_at = -math.inf
        self.paused_at = -math.inf
        self.refusals = 0

    def refused(self, *, now: float, rpc_started: float, retry_delay: float | None, rng: random.Random) -> None:
        """Record a RESOURCE_EXHAUSTED answer to an RPC started at ``rpc_started``."""
        if rpc_started >= self.paused_at:
            self.refusals += 1
            self.paused_at = now
        if retry_delay is None:
            base = min(_THROTTLE_MAXIMUM, _THROTTLE_INITIAL * _THROTTLE_MULTIPLIER ** max(0, self.refusals - 1))
            retry_delay = base * (0.5 + 0.5 * rng.random())
        self.resume_at = max(self.resume_at, now + retry_delay)

    def succeeded(self) -> None:
        """Record a successful RPC."""
        self.refusals = 0
