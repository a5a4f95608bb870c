"""Sweeping: one ListOperations listing answers for every tracked operation of a list scope.

Polling each pending operation costs one GetOperation per operation per
interval; a listing of a scope's *running* operations answers for hundreds at
once. Operations are grouped by list scope (:func:`list_scope`): a Financial
Services location, or a Service Management service. When one of a scope's
operations is due, the sweeper compares the two costs for that round:

* a listing: ``ceil(running operations in the scope / page size)`` calls,
  "running" counting other callers' operations too (learned from the last
  complete listing of the scope);
* polling one by one: the number of the scope's tracked operations due now.

If the listing is cheaper, a *round* claims every queued operation of the
scope (but those owed their own GetOperation) and walks every page (each
page a call under the scheduler's limits):

* an operation in the listing takes its state (metadata, progress) from it;
  one listed as done (a server that ignores the filter) is reported at once;
* the operations absent from a complete listing are looked for in the
  scope's listing of *finished* operations when that is cheaper than one
  GetOperation each (see :mod:`._done_listing`); each one it shows is
  reported with its outcome;
* an operation still unaccounted for gets one GetOperation, which
  decides: **absence never declares an operation done** (listings can be
  stale, paged inconsistently, or filtered differently than asked);
* **a listing that says running is checked now and then**: after each
  complete listing a few operations it showed running get their own
  GetOperation at once (one per scope per round, more when the listing is
  suspect), and a listing that shows running an operation a GetOperation
  already saw done is stale: the scope is polled one by one for a while, then
  listed again (see :mod:`._trust`);
* a listing that fails or is incomplete (an error on any page, a non-empty
  ``unreachable``, a page token seen before) is discarded: its scope's
  operations are polled one by one this round;
* a listing past its page budget (about twice the pages the scope's running
  estimate calls for, or as many pages as operations it claimed, or more
  than a few empty pages in a row that each name a next page) is discarded
  too; after a run of empty pages, or past a fresh estimate, its scope is
  distrusted: polled one by one for a while (logged), then listed again;
* a server that rejects the listing on its first page (``INVALID_ARGUMENT``,
  ``UNIMPLEMENTED`` or ``PERMISSION_DENIED``) is remembered: that scope is
  polled one by one for the scheduler's (so the client's) lifetime;
* ``RESOURCE_EXHAUSTED`` pauses the whole scheduler, as for any call, unless
  the page was too large to receive: then the scope asks for pages a quarter
  the size from then on.

A scope's estimate of its running operations is trusted for
:data:`ESTIMATE_TTL` seconds; after that the next round lists again to learn
it anew, so a busy location that quiets down is swept again.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Final

from google.longrunning import operations_pb2

from lro_grpc._batch._done_listing import (
    DoneListing,
    combined_filter,
    done_filter,
    earliest_start,
    other_scope,
    page_cost,
)
from lro_grpc._batch._ports import QUEUED, SWEEPING, Entry, ListPage, Scheduling
from lro_grpc._batch._scopes import (
    FINANCIAL_SERVICES_PAGE_SIZE,
    SERVICE_MANAGEMENT_PAGE_SIZE,
    ListScope,
    list_scope,
)
from lro_grpc._batch._timing import nominal_delay
from lro_grpc._batch._trust import MAX_EMPTY_PAGES, ScopeTrust, page_budget
from lro_grpc._core import LIST_REJECTED_CODES, RpcFailure, is_message_size_failure, is_throttling
from lro_grpc.policies import Deadline

__all__ = [
    "ESTIMATE_TTL",
    "FINANCIAL_SERVICES_PAGE_SIZE",
    "SERVICE_MANAGEMENT_PAGE_SIZE",
    "ListScope",
    "Round",
    "Scope",
    "Sweeper",
    "list_scope",
]

_log = logging.getLogger("lro_grpc.batch")

ESTIMATE_TTL: Final = 600.0
"""Seconds a scope's count of running operations is trusted before a round lists again."""

# How far ahead of now an operation counts as "due" when the costs are compared,
# as a fraction of its poll delay: jitter and grid rounding spread a scope's
# operations over about a tenth of it.
_LOOKAHEAD: Final = 0.15

# Up to this fraction of a poll delay, drawn per round, a scope's next round is
# brought forward by (see Sweeper.sweep).
_SPREAD: Final = 0.2


class Scope:
    """What the sweeper knows about one list scope.

    Attributes:
        listing: the parent, filter and page size.
        entries: tracked operations in the scope (every waiter's).
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
        "entries",
        "estimated_at",
        "in_round",
        "listing",
        "one_by_one_until",
        "page_size",
        "rejected",
        "running",
        "tracked_since",
        "trust",
    )

    def __init__(self, listing: ListScope) -> None:
        self.listing = listing
        self.entries: set[Entry] = set()
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
        running = len(self.entries)
        if now - self.estimated_at < ESTIMATE_TTL:
            running = max(running, self.running)
        return max(1, -(-running // self.page_size))

    def expected_running(self) -> int:
        """Running operations a listing of the scope should show, by the best count known (however old)."""
        return max(len(self.entries), self.running)


class Round:
    """One listing round of a scope: the operations it claimed, when it started, their poll interval."""

    __slots__ = ("_sweeper", "claimed", "interval", "scope", "started")

    def __init__(self, sweeper: Sweeper, scope: Scope, claimed: list[Entry], started: float, interval: float) -> None:
        self._sweeper = sweeper
        self.scope = scope
        self.claimed = claimed
        self.started = started
        self.interval = interval

    async def run(self) -> None:
        """List the scope and settle every claimed operation."""
        await self._sweeper.sweep(self)


class _Listed:
    """What the pages of one round showed.

    Attributes:
        unlisted: claimed operations not (yet) seen in a page, by name.
        seen: claimed operations the pages showed running.
        reported: claimed operations the pages showed done (a server that ignores the filter).
        running: running operations the pages showed, other callers' included.
        finished: finished operations the pages showed, other callers' included.
        largest_page: operations on the largest page that was not the last.
        pages: pages fetched.
    """

    __slots__ = ("finished", "largest_page", "pages", "reported", "running", "seen", "unlisted")

    def __init__(self, claimed: list[Entry]) -> None:
        self.unlisted = {entry.name: entry for entry in claimed}
        self.seen: list[Entry] = []
        self.reported = 0
        self.running = 0
        self.finished = 0
        self.largest_page = 0
        self.pages = 0


class Sweeper:
    """The sweep strategy of a :class:`~lro_grpc.BatchScheduler`.

    Args:
        scheduler: the scheduler whose limits and queue it works with.
        list_fetch: one ListOperations page attempt (see :class:`~lro_grpc._batch._ports.ListPage`).
    """

    def __init__(self, scheduler: Scheduling, list_fetch: ListPage) -> None:
        self._scheduler = scheduler
        self._list = list_fetch
        self._scopes: dict[ListScope, Scope] = {}
        self.rounds = 0
        """Listing rounds started."""

    def scope_of(self, name: str) -> Scope | None:
        """The scope (known to this sweeper) an operation name belongs to."""
        listing = list_scope(name)
        if listing is None:
            return None
        scope = self._scopes.get(listing)
        if scope is None:
            scope = self._scopes[listing] = Scope(listing)
        return scope

    def track(self, entry: Entry) -> None:
        """Put ``entry`` in its scope (it stays polled one by one if it has none)."""
        scope = self.scope_of(entry.name)
        entry.scope = scope
        if scope is not None:
            scope.entries.add(entry)

    def untrack(self, entry: Entry) -> None:
        """``entry`` is reported or removed: out of its scope."""
        scope: Scope | None = entry.scope
        if scope is not None:
            scope.entries.discard(entry)

    def round_for(self, entry: Entry, now: float) -> Round | None:
        """A listing round of ``entry``'s scope, if listing is the cheaper way to look at it now.

        ``entry`` is due (taken off the heap by the scheduler). Returns
        ``None`` when it is to be polled on its own.
        """
        scope: Scope | None = entry.scope
        if scope is None or scope.rejected or scope.in_round or now < scope.one_by_one_until:
            return None
        if now < scope.trust.distrusted_until:
            return None
        interval = nominal_delay(entry.policy, entry.attempts)
        horizon = now + _LOOKAHEAD * interval
        due = sum(1 for other in scope.entries if other.state == QUEUED and other.due <= horizon and not other.confirm)
        if scope.listing_cost(now) >= due:
            scope.one_by_one_until = horizon
            return None
        # Not those owed their own GetOperation (left out of a listing, spot
        # checked): a round that claimed them could put their look off for ever.
        claimed = [other for other in scope.entries if other.state == QUEUED and not other.confirm]
        sweeping = self._scheduler.sweeping
        for other in claimed:
            other.state = SWEEPING
            sweeping.add(other)
        scope.in_round = True
        self.rounds += 1
        return Round(self, scope, claimed, now, interval)

    async def sweep(self, sweep: Round) -> None:
        """Walk every page of ``sweep``'s scope and settle each claimed operation."""
        scope = sweep.scope
        listed = _Listed(sweep.claimed)
        # Running and finished operations in one walk, when that is cheaper (see _done_listing).
        text = None
        if scope.done.worth_combining(scope.expected_running(), scope.page_size):
            text = combined_filter(
                scope.listing, scope.done.combined_since(scope.listing, scope.tracked_since, scope.entries)
            )
        try:
            outcome = await self._walk(sweep, listed, text)
        finally:
            scope.in_round = False
        scheduler = self._scheduler
        now = time.monotonic()
        checked: set[Entry] = set()
        if outcome == "complete":
            scope.running = listed.running
            scope.estimated_at = now
            if 0 < listed.largest_page < scope.page_size:
                scope.page_size = listed.largest_page  # the server caps pages lower than asked
            departures = listed.reported + sum(1 for entry in listed.unlisted.values() if entry.state == SWEEPING)
            scope.trust.round_ended(departures=departures)
            scope.done.departures = departures
            if text is not None:
                scope.done.size = listed.finished
            checked = self._spot_checks(scope, listed)
        sweeping = scheduler.sweeping
        # The next round starts early by as long as this one took, so that
        # listings *end* about one poll delay apart (what finishes just after a
        # round began is reported a delay later, not a delay plus a round), and
        # by up to a fifth of a delay more at random, so that scopes started
        # together drift apart and their GetOperations for the operations that
        # left their listings do not all fall on the same moment. At most half
        # a delay in all: looked at more often than the policy says, never less.
        took = now - sweep.started
        spread = _SPREAD * scheduler.rng.random()
        for entry in listed.seen:
            if entry.state != SWEEPING:
                continue
            sweeping.discard(entry)
            if outcome == "stale" or entry in checked:
                entry.confirm = True  # its own GetOperation, now: a spot check, or the listing is not to be believed
                scheduler.push(entry, now)
            else:
                nominal = nominal_delay(entry.policy, entry.attempts)
                lead = min(took + spread * nominal, 0.5 * nominal)
                scheduler.requeue(entry, sweep.started - lead)
        if outcome == "complete":
            departed = {name: entry for name, entry in listed.unlisted.items() if entry.state == SWEEPING}
            if text is None and scope.done.worth_walking(len(departed), scope.page_size):
                # Their outcomes from one listing of the scope's finished operations; the rest get their own
                # look. The next round may start meanwhile: it claims none of these.
                await self._walk_done(scope, departed, _latest_deadline(list(departed.values())))
                now = time.monotonic()
        for entry in listed.unlisted.values():
            if entry.state != SWEEPING:
                continue
            sweeping.discard(entry)
            if outcome in ("complete", "stale"):
                entry.confirm = True  # absent: only its own answer may say it is done
                scheduler.push(entry, now)
            elif outcome == "incomplete":
                entry.confirm = True  # polled one by one this round, when it is due
                scheduler.push(entry, max(entry.due, now))
            else:  # refused (the scheduler pauses) or rejected (polled one by one from now on)
                scheduler.push(entry, entry.due)

    def _spot_checks(self, scope: Scope, listed: _Listed) -> set[Entry]:
        """The operations a complete listing showed running that get their own GetOperation now."""
        candidates = [entry for entry in listed.seen if entry.state == SWEEPING]
        count = min(len(candidates), scope.trust.spot_checks(len(candidates), listed.pages))
        if not count:
            return set()
        chosen = set(self._scheduler.rng.sample(candidates, count))
        scope.trust.checking.update(entry.name for entry in chosen)
        return chosen

    def saw_done(self, entry: Entry, answered_at: float) -> None:
        """A GetOperation answered at ``answered_at`` that ``entry`` is done (later listings are held to it)."""
        if entry.scope is not None:
            entry.scope.trust.saw_done(entry.name, answered_at)

    async def _walk(self, sweep: Round, listed: _Listed, combined: str | None) -> str:
        """Fetch the pages into ``listed``; returns the outcome.

        ``combined``: the filter of running and finished operations together, or
        ``None`` for the scope's running listing.

        ``complete``; ``incomplete`` (discarded, its operations polled when
        due); ``stale`` (discarded and the scope distrusted: past its page
        budget, or contradicting a GetOperation; its operations polled now);
        ``refused`` (quota); ``rejected`` (never listed again).
        """
        scheduler = self._scheduler
        scope = sweep.scope
        listing = scope.listing
        trust = scope.trust
        tokens: set[str] = set()
        token = ""
        deadline = _latest_deadline(sweep.claimed)
        text, expected = listing.filter, scope.expected_running()
        if combined is not None:
            text, expected = combined, expected + max(0, scope.done.size)
        pages = 0
        empty_in_a_row = 0
        largest = 0
        while True:
            if pages:
                await scheduler.call_slot()
                if not any(entry.state == SWEEPING for entry in sweep.claimed):  # every waiter went away
                    return "incomplete"
            started = time.monotonic()
            response = await self._page(scope, text, token, deadline)
            if isinstance(response, RpcFailure):
                if combined is not None and pages == 0 and response.code in LIST_REJECTED_CODES:
                    scope.done.combined_refused = True  # the running listing may still be fine
                    self._fell_back(scope, f"the filter {text!r} failed with {response.code.name}")
                    return "incomplete"
                return self._failed(scope, response, started, pages)
            pages += 1
            listed.pages = pages
            scheduler.throttle.succeeded()
            contradicted = self._take_page(response, listed, trust, started)
            if contradicted:
                return self._distrust(sweep, f"it shows {contradicted!r} running, which GetOperation saw done")
            if response.unreachable:
                self._fell_back(scope, f"the server could not reach {list(response.unreachable)!r}")
                return "incomplete"
            token = response.next_page_token
            if not token:
                return "complete"
            if token in tokens:
                self._fell_back(scope, f"page token {token!r} came back a second time")
                return "incomplete"
            tokens.add(token)
            listed.largest_page = max(listed.largest_page, len(response.operations))
            if response.operations:
                empty_in_a_row = 0
                largest = max(largest, len(response.operations))
            else:
                empty_in_a_row += 1
            if empty_in_a_row > MAX_EMPTY_PAGES:
                return self._distrust(sweep, f"{empty_in_a_row} empty pages in a row, each naming a next page")
            if pages >= max(len(sweep.claimed), page_budget(expected, largest or scope.page_size)):
                return self._over_budget(sweep, listed, pages, expected)

    def _take_page(
        self, response: operations_pb2.ListOperationsResponse, listed: _Listed, trust: ScopeTrust, started: float
    ) -> str:
        """Settle the claimed operations one page shows; the name of one it contradicts (or ``""``).

        A contradiction is an operation listed as running that its own GetOperation saw done
        before this page was asked for.
        """
        scheduler = self._scheduler
        unlisted = listed.unlisted
        contradicted = ""
        for pb in response.operations:
            if pb.done:
                listed.finished += 1
            else:
                listed.running += 1
            entry = unlisted.pop(pb.name, None)
            if entry is None or entry.state != SWEEPING:
                if not pb.done and trust.done_at and trust.contradicts(pb.name, started):
                    contradicted = pb.name
                continue
            if pb.done:  # an answer about it (a combined walk, or the server ignored the filter): use it
                scheduler.sweeping.discard(entry)
                listed.reported += 1
                scheduler.finish(entry, pb)
            else:
                entry.last_seen = pb.SerializeToString()
                entry.failures = 0
                entry.last_error = None
                entry.confirm = False  # listed: no GetOperation owed for an earlier absence
                listed.seen.append(entry)
        return contradicted

    async def _page(
        self, scope: Scope, text: str, token: str, deadline: Deadline
    ) -> operations_pb2.ListOperationsResponse | RpcFailure:
        """One page (counted) of ``scope``'s listing with filter ``text``, from ``token``."""
        request = operations_pb2.ListOperationsRequest(
            name=scope.listing.parent, filter=text, page_size=scope.ask_size, page_token=token
        )
        self._scheduler.count_call("ListOperations")
        return await self._list(request, deadline=deadline, rpc_timeout=None)

    async def _walk_done(self, scope: Scope, looking_for: dict[str, Entry], deadline: Deadline) -> None:
        """Walk ``scope``'s done listing; report each operation of ``looking_for`` it shows (they leave it).

        The others are for the caller to confirm with GetOperation. See :mod:`._done_listing`.
        """
        scheduler = self._scheduler
        done = scope.done
        text = done_filter(scope.listing, earliest_start(scope.listing, scope.tracked_since, looking_for.values()))
        if text is None:
            return
        done.walks += 1
        budget, spent, shown, empty_in_a_row = float(len(looking_for)), 0.0, 0, 0
        tokens: set[str] = set()
        token = ""
        while looking_for:
            await scheduler.call_slot()
            if not any(entry.state == SWEEPING for entry in looking_for.values()):  # their waiters went away
                return
            started = time.monotonic()
            response = await self._page(scope, text, token, deadline)
            if isinstance(response, RpcFailure):
                if is_throttling(response):
                    scheduler.refused(response, started)
                elif not tokens and response.code in LIST_REJECTED_CODES:
                    scope.done.refuse(scope.listing, text, f"it failed with {response.code.name}")
                return
            scheduler.throttle.succeeded()
            spent += page_cost(len(response.operations))
            shown += len(response.operations)
            if not self._take_done_page(scope, text, response, looking_for):
                return
            token = response.next_page_token
            if not token:
                done.size = shown
                return
            empty_in_a_row = 0 if response.operations else empty_in_a_row + 1
            if token in tokens or response.unreachable or empty_in_a_row > MAX_EMPTY_PAGES or spent >= budget:
                done.size = max(done.size, shown + 1)  # at least this large: the next comparison knows
                return
            tokens.add(token)
        done.size = max(done.size, shown)

    def _take_done_page(
        self, scope: Scope, text: str, response: operations_pb2.ListOperationsResponse, looking_for: dict[str, Entry]
    ) -> bool:
        """Report the operations looked for that a done page shows; ``False`` if it shows the filter ignored."""
        scheduler = self._scheduler
        answered_at = time.monotonic()
        for pb in response.operations:
            if not pb.done or other_scope(scope.listing, pb.name):
                what = "running" if not pb.done else "of another scope"
                scope.done.refuse(scope.listing, text, f"it shows {pb.name!r}, {what}")
                return False
            entry = looking_for.pop(pb.name, None)
            if entry is not None and entry.state == SWEEPING:
                scheduler.sweeping.discard(entry)
                scheduler.finish(entry, pb, answered_at=answered_at)
        return True

    def _over_budget(self, sweep: Round, listed: _Listed, pages: int, expected: int) -> str:
        """A round's listing went past its page budget: discard it; distrust the scope if it was known smaller."""
        scope = sweep.scope
        why = f"{pages} pages and more to come, where about {expected} running operations were expected"
        known = time.monotonic() - scope.estimated_at < ESTIMATE_TTL
        # At least this many run there: the cost comparison and the next budget learn it.
        scope.running = max(scope.running, listed.running)
        if known:
            return self._distrust(sweep, why)
        # Never counted (or long ago): a larger scope than its tracked operations, no sign of a fault.
        # Listing it further costs more calls than polling the claimed operations one by one.
        scope.estimated_at = time.monotonic()
        if 0 < listed.largest_page < scope.page_size:
            scope.page_size = listed.largest_page
        self._fell_back(scope, why)
        return "incomplete"

    def _distrust(self, sweep: Round, why: str) -> str:
        """Discard the round's listing and poll its scope one by one for a while."""
        scope = sweep.scope
        window = scope.trust.distrust(time.monotonic(), sweep.interval, ESTIMATE_TTL)
        if _log.isEnabledFor(logging.INFO):
            _log.info(
                "listing of %s (filter %r) discarded: %s; polling its operations one by one for %.1f s",
                scope.listing.parent,
                scope.listing.filter,
                why,
                window,
            )
        return "stale"

    def _failed(self, scope: Scope, failure: RpcFailure, started: float, pages: int) -> str:
        scheduler = self._scheduler
        code = failure.code
        if is_message_size_failure(failure):
            # No quota signal: the page was too large to receive. Ask for smaller ones.
            scope.ask_size = max(1, scope.ask_size // 4)
            scope.page_size = min(scope.page_size, scope.ask_size)
            self._fell_back(scope, f"a page was too large ({code.name}); asking for {scope.ask_size} a page")
            return "incomplete"
        if is_throttling(failure):
            scheduler.refused(failure, started)
            return "refused"
        if pages == 0 and code in LIST_REJECTED_CODES:
            scope.rejected = True
            if _log.isEnabledFor(logging.INFO):
                _log.info(
                    "ListOperations of %s with filter %r failed with %s; polling its operations one by one from now on",
                    scope.listing.parent,
                    scope.listing.filter,
                    code.name,
                )
            return "rejected"
        self._fell_back(scope, f"ListOperations failed with {code.name}")
        return "incomplete"

    @staticmethod
    def _fell_back(scope: Scope, why: str) -> None:
        if _log.isEnabledFor(logging.INFO):
            _log.info(
                "listing of %s (filter %r) discarded: %s; polling its operations one by one this round",
                scope.listing.parent,
                scope.listing.filter,
                why,
            )


def _latest_deadline(entries: list[Entry]) -> Deadline:
    """The latest of the entries' waiters' deadlines (none if any waiter has none)."""
    latest = -math.inf
    for waiter in {entry.waiter for entry in entries}:
        expires_at = waiter.deadline.expires_at
        if expires_at is None:
            return Deadline(None)
        latest = max(latest, expires_at)
    return Deadline(None if latest == -math.inf else latest)
