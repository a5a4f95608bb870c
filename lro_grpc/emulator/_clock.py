"""The emulator's simulated clock.

Simulated time is seconds since the Unix epoch, like ``time.time()``, so the
timestamps the emulator reports look real. It runs ``speed`` times as fast as
real time and can be moved forward by hand (:meth:`SimulatedClock.advance`).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from datetime import timedelta

__all__ = ["ClockAnchor", "SimulatedClock"]


class ClockAnchor:
    """A point where simulated and wall-clock time were known together.

    ``simulated + (wall_now - wall) * speed`` is the simulated time at
    ``wall_now``. Persisting the anchor lets a restarted emulator carry on
    where it left off: operations keep progressing while it is down.

    Attributes:
        simulated: simulated epoch seconds at the anchor.
        wall: ``time.time()`` at the anchor.
        speed: simulated seconds per real second from the anchor on.
    """

    __slots__ = ("simulated", "speed", "wall")

    def __init__(self, simulated: float, wall: float, speed: float) -> None:
        self.simulated = simulated
        self.wall = wall
        self.speed = speed

    def simulated_at(self, wall_now: float) -> float:
        """The simulated time at wall-clock time ``wall_now`` (never before the anchor)."""
        return self.simulated + max(0.0, wall_now - self.wall) * self.speed

    def __repr__(self) -> str:
        return f"ClockAnchor(simulated={self.simulated!r}, wall={self.wall!r}, speed={self.speed!r})"


def check_speed(speed: object) -> float:
    """Validate a clock speed: a finite number >= 0 (0 freezes the clock)."""
    if isinstance(speed, bool) or not isinstance(speed, int | float):
        raise TypeError(f"speed must be a number, got {speed!r}")
    if not math.isfinite(speed) or speed < 0:
        raise ValueError(f"speed must be a finite number >= 0, got {speed!r}")
    return float(speed)


def check_seconds(value: object, *, what: str) -> float:
    """Validate a duration given as seconds or ``timedelta``; returns float seconds >= 0."""
    if isinstance(value, bool) or not isinstance(value, int | float | timedelta):
        raise TypeError(f"{what} must be seconds (int/float) or a timedelta, got {value!r}")
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{what} must be a finite, non-negative duration, got {value!r}")
    return seconds


class SimulatedClock:
    """A thread-safe clock that runs ``speed`` times real time and can be advanced.

    Within a process it follows ``time.monotonic()``, so wall-clock jumps do
    not move it; it never goes backwards.

    Args:
        speed: simulated seconds per real second (``0`` freezes the clock:
            only :meth:`advance` moves it).
        start: simulated epoch seconds to start at; default ``time.time()``.
        on_change: called (with no arguments, from the thread that made the
            change) after :meth:`advance` or :meth:`set_speed`.
    """

    def __init__(
        self,
        *,
        speed: float = 1.0,
        start: float | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self._speed = check_speed(speed)
        if start is not None and (
            isinstance(start, bool) or not isinstance(start, int | float) or not math.isfinite(start)
        ):
            raise TypeError(f"start must be epoch seconds (a finite number), got {start!r}")
        self._lock = threading.Lock()
        # (simulated, monotonic) base pair, replaced as a whole: now() reads it without the lock.
        self._base: tuple[float, float] = (time.time() if start is None else float(start), time.monotonic())
        self._on_change = on_change

    @property
    def speed(self) -> float:
        """Simulated seconds per real second."""
        return self._speed

    def now(self) -> float:
        """The current simulated time, epoch seconds."""
        simulated, monotonic = self._base
        return simulated + (time.monotonic() - monotonic) * self._speed

    def advance(self, seconds: float | timedelta) -> float:
        """Move simulated time forward by ``seconds``; returns the new simulated time.

        Raises:
            TypeError, ValueError: ``seconds`` is not a non-negative duration.
        """
        step = check_seconds(seconds, what="advance seconds")
        with self._lock:
            now = self.now() + step
            self._base = (now, time.monotonic())
        if self._on_change is not None:
            self._on_change()
        return now

    def set_speed(self, speed: float) -> None:
        """Change how fast simulated time runs from now on.

        Raises:
            TypeError, ValueError: ``speed`` is not a finite number >= 0.
        """
        checked = check_speed(speed)
        with self._lock:
            self._base = (self.now(), time.monotonic())
            self._speed = checked
        if self._on_change is not None:
            self._on_change()

    def real_seconds_until(self, simulated: float) -> float:
        """Real seconds until the clock reads ``simulated`` without manual advances (``inf`` if frozen)."""
        left = simulated - self.now()
        if left <= 0:
            return 0.0
        if self._speed == 0:
            return math.inf
        return left / self._speed

    def anchor(self) -> ClockAnchor:
        """The current simulated time paired with the wall clock, for persisting."""
        with self._lock:
            return ClockAnchor(self.now(), time.time(), self._speed)
