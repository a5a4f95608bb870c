"""How far a sweep trusts a scope's listings: page budgets, spot checks, distrust windows.

No I/O: the sweeper (:mod:`._sweep`) asks and reports, this module keeps count.

Two rules keep a hostile or stale listing from hiding an operation:

* **A round's listing has a page budget.** It expects about
  ``ceil(running operations / page size)`` pages (the scope's running
  estimate, or its tracked operations if more); it may take twice that and
  :data:`PAGE_SLACK` more (the page size counted from the largest page the
  round has seen, so a server that gives smaller pages than asked is
  followed), or as many pages as it claimed operations if that is more (the
  cost of polling them one by one), and at most :data:`MAX_EMPTY_PAGES`
  empty pages in a row that each name a next page. Past either, the round's
  listing is discarded and its operations are polled one by one; the scope
  is *distrusted* after a run of empty pages, or when its running estimate
  was fresh (a scope never counted may just be larger than its tracked
  operations: the count so far becomes its estimate).
* **A listing that says running is checked now and then.** After each
  complete listing, a few of the operations it showed running get their own
  GetOperation at once (:meth:`ScopeTrust.spot_checks`): one every
  :data:`CHECK_EVERY` rounds, and beyond :data:`QUIET_ROUNDS` rounds in a
  row in which no tracked operation left the listing (a listing that may be
  frozen) one per round and one more for each further such round, and more
  while the scope is suspect:
  up to two per page of the listing (at least four), never more than a
  sixteenth of the operations listed. These counts are of poll intervals, not
  of rounds: a round that starts within half an interval of the last one
  counted (it came early, for operations that joined the scope meanwhile)
  adds to neither, nor makes a spot check unless the scope is suspect. Only
  time tells whether a listing is frozen. A GetOperation that finds one done
  reports it and makes the scope suspect. A later listing that shows
  *running* an operation a GetOperation already saw done (spot checked or
  not) is stale beyond doubt: the scope is distrusted. The order matters:
  the listing's page is asked for after the GetOperation's answer came, so
  an operation that finished in between cannot be mistaken for a
  contradiction.

A distrusted scope is polled one by one for :data:`DISTRUST_INTERVALS` poll
intervals, twice as long at each further offence (at most
:data:`~lro_grpc._batch._sweep.ESTIMATE_TTL`), then listed again, with many
spot checks.
"""

from __future__ import annotations

import math
from typing import Final

__all__ = [
    "CHECK_EVERY",
    "DISTRUST_INTERVALS",
    "MAX_EMPTY_PAGES",
    "PAGE_SLACK",
    "RECENT_DONE",
    "SUSPECT_SHARE",
    "ScopeTrust",
    "page_budget",
]

PAGE_SLACK: Final = 4
"""Pages a round may take beyond twice the expected count."""

MAX_EMPTY_PAGES: Final = 5
"""Empty pages in a row, each naming a next page, that a round follows at most."""

DISTRUST_INTERVALS: Final = 10
"""Poll intervals a scope is polled one by one after its first offence (doubling with each further one)."""

CHECK_EVERY: Final = 3
"""Rounds per spot check while the listing moves (a tracked operation left it lately).

A listing that shows operations leaving is not frozen; what a spot check
still guards against, a listing that keeps one finished operation running,
a check of one operation at random per round finds no sooner than one per
few rounds in any scope of more than a few operations.
"""

QUIET_ROUNDS: Final = 3
"""Rounds in a row in which no tracked operation left the listing, after which each adds a spot check."""

SUSPECT_SHARE: Final = 1 / 16
"""Share of the listed operations spot checked per round at most (while suspect, or after many quiet rounds)."""

SUSPECT_PAGE_FACTOR: Final = 2
"""Spot checks per page of the round's listing at most (or :data:`MIN_SUSPECT_CHECKS`, if more)."""

MIN_SUSPECT_CHECKS: Final = 4
"""Spot checks a suspect round may make however short its listing."""

RECENT_DONE: Final = 64
"""Operations a scope remembers as seen done by GetOperation, to hold later listings against."""


def page_budget(expected: int, page_size: int) -> int:
    """Pages a round may fetch when it expects ``expected`` running operations, ``page_size`` a page."""
    return PAGE_SLACK + 2 * -(-max(1, expected) // max(1, page_size))


class ScopeTrust:
    """What one scope's listings have earned.

    Attributes:
        distrusted_until: until then (monotonic) the scope is polled one by one.
        offences: listings discarded as endless or stale so far.
        quiet_rounds: complete rounds in a row in which no tracked operation left the listing.
        unchecked_rounds: complete rounds since the last spot check.
        counted_at: when the last round that counted started (monotonic; see :meth:`round_ended`).
        early: the last round came early: it does not count.
        suspect: a spot check found done an operation a listing had just shown running.
        checking: operations given a spot check since the last round ended.
        done_at: operations a GetOperation saw done, with when the answer came (the last :data:`RECENT_DONE`).
    """

    __slots__ = (
        "checking",
        "counted_at",
        "distrusted_until",
        "done_at",
        "early",
        "offences",
        "quiet_rounds",
        "suspect",
        "unchecked_rounds",
    )

    def __init__(self) -> None:
        self.distrusted_until = -math.inf
        self.offences = 0
        self.quiet_rounds = 0
        self.unchecked_rounds = 0
        self.counted_at = -math.inf
        self.early = False
        self.suspect = False
        self.checking: set[str] = set()
        self.done_at: dict[str, float] = {}

    def trusted(self, now: float) -> bool:
        """Whether the scope may be listed now."""
        return now >= self.distrusted_until

    def distrust(self, now: float, interval: float, ceiling: float) -> float:
        """An offence: the scope is polled one by one for a while; returns how long (seconds)."""
        self.offences += 1
        window = min(ceiling, DISTRUST_INTERVALS * interval * 2.0 ** min(self.offences - 1, 32))
        self.distrusted_until = now + window
        self.suspect = True
        self.quiet_rounds = 0
        return window

    def saw_done(self, name: str, answered_at: float) -> None:
        """A GetOperation answered at ``answered_at`` that operation ``name`` of the scope is done."""
        done_at = self.done_at
        done_at[name] = answered_at
        if len(done_at) > RECENT_DONE:
            del done_at[next(iter(done_at))]
        if name in self.checking:
            self.suspect = True  # the listing had just shown it running

    def contradicts(self, name: str, page_asked_at: float) -> bool:
        """Whether a page asked for at ``page_asked_at`` that shows ``name`` running contradicts a GetOperation."""
        answered_at = self.done_at.get(name)
        return answered_at is not None and answered_at < page_asked_at

    def round_ended(self, *, departures: int, started: float, interval: float) -> None:
        """A complete, uncontradicted round ended; ``departures``: tracked operations that left the listing.

        ``started``: when the round started (monotonic); ``interval``: its poll
        interval. A round with no departures that started within half an
        interval of the last one counted came early: it counts as neither quiet
        nor unchecked (see :meth:`spot_checks`).
        """
        self.early = not departures and started - self.counted_at < 0.5 * interval
        if not self.early:
            self.counted_at = started
        if departures:
            self.quiet_rounds = 0
            if not (self.checking & self.done_at.keys()):
                self.suspect = False
        elif not self.early:
            self.quiet_rounds += 1
        self.checking.clear()

    def spot_checks(self, listed: int, pages: int) -> int:
        """How many of ``listed`` operations a listing of ``pages`` pages showed running get a GetOperation now."""
        if listed <= 0:
            return 0
        most = max(1, min(math.ceil(listed * SUSPECT_SHARE), max(MIN_SUSPECT_CHECKS, SUSPECT_PAGE_FACTOR * pages)))
        if self.suspect:
            return most
        if self.early:
            return 0
        self.unchecked_rounds += 1
        if self.quiet_rounds <= QUIET_ROUNDS and self.unchecked_rounds < CHECK_EVERY:
            return 0
        self.unchecked_rounds = 0
        return min(most, 1 + max(0, self.quiet_rounds - QUIET_ROUNDS))
