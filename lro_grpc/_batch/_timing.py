"""When a tracked operation is next looked at: its poll delay before jitter, the retry backoff, the grid.

Plain arithmetic, no I/O: the scheduler and the sweep strategy share it.
"""

from __future__ import annotations

import math
from typing import Final

from lro_grpc.policies import PollPolicy

__all__ = ["RETRY_INITIAL", "coalesce", "nominal_delay"]

RETRY_INITIAL: Final = 0.1
"""First wait, in seconds, before a failed look is tried again; it doubles up to the poll delay."""

_COALESCE_MIN_DELAY = 0.02


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
