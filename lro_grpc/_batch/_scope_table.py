"""What the sweeper knows of one list scope, and its table: its operations between listing rounds.

While a list scope is swept, its operations do not sit in the scheduler's heap
one by one: they wait in the scope's table (a dict by name), and the heap
holds one :class:`~lro_grpc._batch._ports.Ticket` for the scope's next round.
A round's listing updates the operations it shows in place; only those that
leave the sweep (left out of a listing, spot checked, a distrusted or
rejected scope, a round not worth listing, a removed waiter) go back to the
heap on their own (or out altogether).

Poll intervals still grow with each answered look, as the policy says: an
operation's ``attempts`` counts the rounds that showed it running while it
was in the table (settled when it leaves), and the next round is due when the
earliest of the table's operations would be (the table counts them by
policy and attempts: a group per policy and joining round, not per operation).

No I/O: the sweeper (:mod:`._sweep`) drives it, and :class:`Scope` holds it
with the rest of what the sweeper knows of the scope (its running count, page
size, trust and done listing).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterator
from typing import Any, Final

from lro_grpc._batch._done_listing import DoneListing
from lro_grpc._batch._ports import QUEUED, SWEEPING, Entry, Subscriber, Ticket
from lro_grpc._batch._scopes import ListScope
from lro_grpc._batch._timing import coalesce, nominal_delay
from lro_grpc._batch._trust import ScopeTrust
from lro_grpc.policies import PollPolicy

__all__ = ["ESTIMATE_TTL", "Scope", "ScopeTable"]

ESTIMATE_TTL: Final = 600.0
"""Seconds a scope's count of running operations is trusted before a round lists again."""


class ScopeTable:
    """The tracked operations of one list scope: those in the table, and the others (``loose``).

    Args:
        scope: the sweep strategy's record of the scope (what the ticket carries).

    Attributes:
        members: operations waiting for the scope's next round, by name (state ``SWEEPING``).
        loose: the scope's other tracked operations (queued or polled on their own,
            or left out of a listing and being confirmed).
        waiters: subscribers of the members, with how many members each has.
        rounds: rounds that showed the members running (drives their poll delay).
        ticket: the scope's heap item.
    """

    __slots__ = ("_groups", "loose", "members", "rounds", "ticket", "waiters")

    def __init__(self, scope: Any) -> None:
        self.members: dict[str, Entry] = {}
        self.loose: set[Entry] = set()
        self.waiters: dict[Subscriber, int] = {}
        self.rounds = 0
        # (policy, attempts - rounds at joining) -> members: their delays without a walk over them.
        self._groups: dict[tuple[PollPolicy, int], int] = {}
        self.ticket = Ticket(scope, self.waiters)

    def __len__(self) -> int:
        """Tracked operations of the scope (in the table or not)."""
        return len(self.members) + len(self.loose)

    def __iter__(self) -> Iterator[Entry]:
        """Tracked operations of the scope: the table's, then the others."""
        yield from self.members.values()
        yield from self.loose

    def __contains__(self, entry: object) -> bool:
        """Whether ``entry`` is tracked in the scope."""
        return entry in self.loose or (isinstance(entry, Entry) and self.members.get(entry.name) is entry)

    def track(self, entry: Entry) -> None:
        """A new operation of the scope (loose until a round claims it)."""
        self.loose.add(entry)

    def untrack(self, entry: Entry) -> None:
        """``entry`` is reported or removed: out of the table and the scope."""
        self.loose.discard(entry)
        if self.members.get(entry.name) is entry:
            self._leave(entry, answered=False)

    def join(self, entry: Entry) -> bool:
        """Put a loose ``entry`` in the table (state ``SWEEPING``); ``False`` if another one has its name."""
        name = entry.name
        if name in self.members:
            return False
        self.members[name] = entry
        self.loose.discard(entry)
        entry.state = SWEEPING
        entry.joined = self.rounds
        key = (entry.policy, entry.attempts - self.rounds)
        self._groups[key] = self._groups.get(key, 0) + 1
        waiter = entry.waiter
        self.waiters[waiter] = self.waiters.get(waiter, 0) + 1
        return True

    def release(self, entry: Entry, *, answered: bool) -> None:
        """Take member ``entry`` out of the table (it stays ``SWEEPING`` until its caller queues it).

        ``answered``: the round under way showed it running (one more answered look).
        """
        self._leave(entry, answered=answered)
        self.loose.add(entry)

    def _leave(self, entry: Entry, *, answered: bool) -> None:
        del self.members[entry.name]
        rounds = self.rounds
        key = (entry.policy, entry.attempts - entry.joined)
        left = self._groups[key] - 1
        if left:
            self._groups[key] = left
        else:
            del self._groups[key]
        waiter = entry.waiter
        count = self.waiters[waiter] - 1
        if count:
            self.waiters[waiter] = count
        else:
            del self.waiters[waiter]
        entry.attempts += rounds - entry.joined + answered

    def interval(self) -> float:
        """The shortest poll delay among the members, before jitter (``0.0`` with no member)."""
        rounds = self.rounds
        return min(
            (nominal_delay(policy, offset + rounds) for policy, offset in self._groups),
            default=0.0,
        )

    def next_due(self, started: float, took: float, rng: random.Random) -> float:
        """When the round after one started at ``started`` (and ``took`` long) is due; counts that round.

        Each member would be looked at its poll delay after ``started``
        (jittered, on the grid of :func:`~lro_grpc._batch._timing.coalesce`),
        brought forward by ``took``, at most half its delay: listings *end*
        about a delay apart, and nothing is looked at less often than its
        policy says. The next round is due when the earliest member is.
        """
        rounds = self.rounds
        due = float("inf")
        for policy, offset in self._groups:
            attempts = offset + rounds
            delay = policy.delay(attempts, rng=rng)
            nominal = nominal_delay(policy, attempts)
            lead = min(took, 0.5 * nominal)
            due = min(due, coalesce(started - lead + delay, delay))
        self.rounds = rounds + 1
        return due

    def loose_due(self, horizon: float) -> int:
        """Loose operations queued and due by ``horizon`` (but those owed their own GetOperation)."""
        return sum(1 for entry in self.loose if entry.state == QUEUED and entry.due <= horizon and not entry.confirm)


class Scope:
    """What the sweeper knows about one list scope.

    Attributes:
        listing: the parent, filter and page size.
        table: tracked operations in the scope (every waiter's): those waiting
            for its next round, and the others.
        running: running operations in it at the last complete listing, others' included.
        estimated_at: when that listing ended (``-inf``: never).
        page_size: operations per page the server actually gives (learned).
        ask_size: the page size asked for (lowered after an answer too large to receive).
        rejected: the server refused to list it; polled one by one from now on.
        in_round: a listing round is under way.
        one_by_one_until: the last cost comparison chose polling one by one until then.
        trust: page budgets, spot checks and distrust windows of its listings.
        done: what its listing of finished operations costs, or that it is refused.
        tracked_since: when (``time.time()``) its first operation was tracked.
    """

    __slots__ = (
        "ask_size",
        "done",
        "estimated_at",
        "in_round",
        "listing",
        "one_by_one_until",
        "page_size",
        "rejected",
        "running",
        "table",
        "tracked_since",
        "trust",
    )

    def __init__(self, listing: ListScope) -> None:
        self.listing = listing
        self.table = ScopeTable(self)
        self.running = 0
        self.estimated_at = -math.inf
        self.page_size = listing.page_size
        self.ask_size = listing.page_size
        self.rejected = False
        self.in_round = False
        self.one_by_one_until = -math.inf
        self.trust = ScopeTrust()
        self.done = DoneListing()
        self.tracked_since = time.time()

    def listing_cost(self, now: float) -> int:
        """Calls a complete listing of the scope is expected to take."""
        running = len(self.table)
        if now - self.estimated_at < ESTIMATE_TTL:
            running = max(running, self.running)
        return max(1, -(-running // self.page_size))

    def expected_running(self) -> int:
        """Running operations a listing of the scope should show, by the best count known (however old)."""
        return max(len(self.table), self.running)
