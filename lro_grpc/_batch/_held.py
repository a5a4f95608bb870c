"""Operations that fall due while their scope's listing is in flight wait for that listing to end.

A listing round claims its scope's queued operations when it starts. An
operation that falls due while the round's listing is still in flight (added
after the round began, as the names of a cluster waiter's later callers are,
or due on a phase of its own) would otherwise get a GetOperation at once. It
is held instead, and queued again, due, as soon as the listing ends: the
sweeper's next cost comparison counts it with the scope's other due
operations, so names that arrive in several parts cost one more listing, not
one GetOperation each. It waits no longer than the operations the round
claimed.

No I/O: the sweeper (:mod:`._sweep`) holds and releases; the scheduler queues.
"""

from __future__ import annotations

import time
from collections.abc import Hashable

from lro_grpc._batch._ports import SWEEPING, Entry, Scheduling

__all__ = ["HeldOperations"]


class HeldOperations:
    """The operations held, per scope, until that scope's listing in flight ends."""

    __slots__ = ("_held",)

    def __init__(self) -> None:
        self._held: dict[Hashable, list[Entry]] = {}

    def hold(self, scope: Hashable, entry: Entry, scheduling: Scheduling) -> None:
        """Hold ``entry`` (due, taken off the queue) until ``scope``'s listing in flight ends."""
        entry.state = SWEEPING  # so that removing its waiter meanwhile finds it
        scheduling.sweeping.add(entry)
        self._held.setdefault(scope, []).append(entry)

    def release(self, scope: Hashable, scheduling: Scheduling) -> None:
        """``scope``'s listing ended: queue its held operations, due now."""
        held = self._held.pop(scope, None)
        if not held:
            return
        now = time.monotonic()
        for entry in held:
            if entry.state == SWEEPING:  # still tracked: its waiter may have gone meanwhile
                scheduling.sweeping.discard(entry)
                scheduling.push(entry, now)
