"""Sweeping: one ListOperations listing answers for every tracked operation of a list scope.

Polling each pending operation costs one GetOperation per operation per interval; a listing of a
scope's *running* operations answers for hundreds at once. Operations are grouped by list scope
(:func:`list_scope`): a Financial Services location, or a Service Management service. When one
of a scope's operations is due, the sweeper compares the two costs for that round:

* a listing: ``ceil(running operations in the scope / page size)`` calls, "running" counting
  other callers' operations too (learned from the last complete listing of the scope);
* polling one by one: the number of the scope's tracked operations due now.

If the listing is cheaper, a *round* claims every queued operation of the scope (but those owed
their own GetOperation) into the scope's table (:mod:`._scope_table`) and walks every page (each
page a call under the scheduler's limits). Between rounds a swept scope is one item in the
scheduler's heap, its next round; its operations wait in the table:

* an operation in the listing stays in the table, its state (metadata, progress) updated in
  place (its bytes kept only when they changed); one listed as done (a server that ignores the
  filter) is reported at once;
* the operations absent from a complete listing are looked for in the scope's listing of
  *finished* operations when that is cheaper than one GetOperation each (see
  :mod:`._done_listing`); each one it shows is reported with its outcome;
* an operation still unaccounted for gets one GetOperation, which decides: **absence never
  declares an operation done** (listings can be stale, paged inconsistently, or filtered
  differently than asked);
* **a listing that says running is checked now and then**: after each complete listing a few
  operations it showed running get their own GetOperation at once (one per scope per round, more
  when the listing is suspect), and a listing that shows running an operation a GetOperation
  already saw done is stale: the scope is polled one by one for a while, then listed again (see
  :mod:`._trust`);
* a listing that fails or is incomplete (an error on any page, a non-empty ``unreachable``, a
  page token seen before) is discarded: its scope's operations it did not show are polled one by
  one this round;
* a listing past its page budget (about twice the pages the scope's running estimate calls for,
  or as many pages as operations it claimed, or more than a few empty pages in a row that each
  name a next page) is discarded too; after a run of empty pages, or past a fresh estimate, its
  scope is distrusted: polled one by one for a while (logged), then listed again;
* a server that rejects the listing on its first page (``INVALID_ARGUMENT``, ``UNIMPLEMENTED``
  or ``PERMISSION_DENIED``) is remembered: that scope is polled one by one for the scheduler's
  (so the client's) lifetime;
* ``RESOURCE_EXHAUSTED`` pauses the whole scheduler, as for any call, unless the page was too
  large to receive: then the scope asks for pages a quarter the size from then on.

When a scope's round comes due and listing it is not worth it (or it may not be listed now), its
table's operations go back to the heap one by one. A scope's estimate of its running operations
is trusted for :data:`ESTIMATE_TTL` seconds; after that the next round lists again to learn it
anew, so a busy location that quiets down is swept again. An operation that falls due while its
scope's listing is in flight waits for that listing to end (:mod:`._held`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable
from typing import Final

from google.longrunning import operations_pb2

from lro_grpc._batch._done_listing import combined_filter, done_filter, earliest_start, other_scope, page_cost
from lro_grpc._batch._held import HeldOperations
from lro_grpc._batch._ports import GONE, QUEUED, SWEEPING, Entry, ListPage, Scheduling, Subscriber, Ticket
from lro_grpc._batch._scope_table import ESTIMATE_TTL, Scope
from lro_grpc._batch._scopes import FINANCIAL_SERVICES_PAGE_SIZE, SERVICE_MANAGEMENT_PAGE_SIZE, ListScope, list_scope
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

# How far ahead of now an operation counts as "due" when the costs are compared,
# as a fraction of its poll delay: jitter and grid rounding spread a scope's
# operations over about a tenth of it.
_LOOKAHEAD: Final = 0.15


class Round:
    """One listing round of a scope: how many operations its table held, when it started, their poll interval."""

    __slots__ = ("_sweeper", "claimed", "departing", "interval", "scope", "started")

    def __init__(self, sweeper: Sweeper, scope: Scope, started: float, interval: float) -> None:
        self._sweeper = sweeper
        self.scope = scope
        self.claimed = len(scope.table.members)
        self.started = started
        self.interval = interval
        self.departing: dict[str, Entry] = {}
        """Operations the listing left out, looked for in the done listing (out of the table by then)."""

    def waiters(self) -> set[Subscriber]:
        """The subscribers of the operations the round still answers for."""
        departing = (entry.waiter for entry in self.departing.values() if entry.state == SWEEPING)
        return {*self.scope.table.waiters, *departing}

    async def run(self) -> None:
        """List the scope and settle every operation of its table."""
        await self._sweeper.sweep(self)


class _Listed:
    """What the pages of one round showed.

    Attributes:
        unlisted: operations of the table not (yet) seen in a page, by name.
        reported: operations of the table the pages showed done (a server that ignores the filter).
        running: running operations the pages showed, other callers' included.
        finished: finished operations the pages showed, other callers' included.
        largest_page: operations on the largest page that was not the last.
        pages: pages fetched.
    """

    __slots__ = ("finished", "largest_page", "pages", "reported", "running", "unlisted")

    def __init__(self, members: dict[str, Entry]) -> None:
        self.unlisted = dict(members)
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
        self._held = HeldOperations()  # due while their scope's listing was in flight (see ._held)
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
            scope.table.track(entry)

    def untrack(self, entry: Entry) -> None:
        """``entry`` is reported or removed: out of its scope (and its table)."""
        scope: Scope | None = entry.scope
        if scope is not None:
            scope.table.untrack(entry)

    def round_for(self, entry: Entry, now: float) -> Round | None:
        """A listing round of ``entry``'s scope, if listing is the cheaper way to look at it now.

        ``entry`` is due (taken off the heap by the scheduler, not in its
        scope's table). Returns ``None`` when it is to be polled on its own.
        """
        scope: Scope | None = entry.scope
        if scope is None or scope.in_round or not self._listable(scope, now):
            return None
        table = scope.table
        if table.members.get(entry.name, entry) is not entry:
            return None  # another waiter's operation of that name is in the table: this one is polled on its own
        horizon = now + _LOOKAHEAD * nominal_delay(entry.policy, entry.attempts)
        due = table.loose_due(horizon)
        ticket = table.ticket
        if ticket.state == QUEUED and ticket.due <= horizon:
            due += len(table.members)
        if scope.listing_cost(now) >= due:
            scope.one_by_one_until = horizon
            return None
        table.join(entry)  # first: a loose operation of the same name may not take its place
        self._scheduler.sweeping.add(entry)
        return self._start_round(scope, now)

    def hold(self, entry: Entry, now: float) -> bool:
        """Hold due ``entry`` till its scope's listing in flight ends, if it would be listed but for that."""
        scope: Scope | None = entry.scope
        if scope is None or not scope.in_round or not self._listable(scope, now):
            return False
        if scope.table.members.get(entry.name, entry) is not entry:
            return False  # another waiter's operation of that name is in the table: this one is polled on its own
        self._held.hold(scope, entry, self._scheduler)
        return True

    def round_due(self, ticket: Ticket, now: float) -> Round | None:
        """The round of the scope whose ticket is due, or ``None``: its table's operations are queued on their own.

        They are when the scope may not be listed now (distrusted, rejected,
        polled one by one for a while) or when polling them one by one costs
        no more than a listing.
        """
        scope: Scope = ticket.scope
        ticket.state = GONE  # off the heap
        table = scope.table
        if not table.members:
            return None
        horizon = now + _LOOKAHEAD * table.interval()
        if not scope.in_round and self._listable(scope, now):
            due = len(table.members) + table.loose_due(horizon)
            if scope.listing_cost(now) < due:
                return self._start_round(scope, now)
            scope.one_by_one_until = horizon
        scheduler = self._scheduler
        sweeping = scheduler.sweeping
        for entry in list(table.members.values()):
            table.release(entry, answered=False)
            sweeping.discard(entry)
            scheduler.push(entry, ticket.due)
        return None

    @staticmethod
    def _listable(scope: Scope, now: float) -> bool:
        """Whether ``scope`` may be listed now, a listing in flight aside (its caller checks ``in_round``)."""
        if scope.rejected or now < scope.one_by_one_until:
            return False
        return now >= scope.trust.distrusted_until

    def _start_round(self, scope: Scope, now: float) -> Round:
        """Claim the scope's queued operations into its table (but those owed their own GetOperation) and start a round.

        Not those owed their own GetOperation (left out of a listing, spot
        checked): a round that claimed them could put their look off for ever.
        """
        table = scope.table
        table.ticket.state = GONE  # its heap item, if any, is stale: this round is the one it stood for
        sweeping = self._scheduler.sweeping
        for entry in [entry for entry in table.loose if entry.state == QUEUED and not entry.confirm]:
            if table.join(entry):
                sweeping.add(entry)
        scope.in_round = True
        self.rounds += 1
        return Round(self, scope, now, table.interval())

    async def sweep(self, sweep: Round) -> None:
        """Walk every page of ``sweep``'s scope and settle each operation of its table."""
        scope = sweep.scope
        table = scope.table
        listed = _Listed(table.members)
        text = None  # running and finished operations in one walk, when that is cheaper (see _done_listing)
        if scope.done.worth_combining(scope.expected_running(), scope.page_size):
            text = combined_filter(scope.listing, scope.done.combined_since(scope.listing, scope.tracked_since, table))
        try:
            outcome = await self._walk(sweep, listed, text)
        finally:
            scope.in_round = False
            self._held.release(scope, self._scheduler)
        scheduler = self._scheduler
        now = time.monotonic()
        departed: dict[str, Entry] = {}  # left out of the listing: out of the table, settled below
        for name, entry in listed.unlisted.items():
            if entry.state == SWEEPING and table.members.get(name) is entry:
                table.release(entry, answered=False)
                departed[name] = entry
        checked: list[Entry] = []
        if outcome == "complete":
            scope.running = listed.running
            scope.estimated_at = now
            if 0 < listed.largest_page < scope.page_size:
                scope.page_size = listed.largest_page  # the server caps pages lower than asked
            departures = listed.reported + len(departed)
            scope.trust.round_ended(departures=departures, started=sweep.started, interval=sweep.interval)
            scope.done.departures = departures
            if text is not None:
                scope.done.size = listed.finished
            checked = self._spot_checks(scope, listed.pages)
        elif outcome == "stale":
            checked = list(table.members.values())  # the listing is not to be believed
        for entry in checked:
            table.release(entry, answered=True)
            self._confirm(entry, now)
        if table.members:
            # The table's next round is due when its earliest operation is (ScopeTable.next_due), early by as
            # long as this one took, so that listings *end* about one poll delay apart (what finishes just after
            # a round began is reported a delay later, not a delay plus a round). Scopes due together start
            # together (the due time is on the grid of coalesce): the event loop and gRPC wake once for all
            # their pages, and no round is brought forward by more, which would look more often than needed.
            due = table.next_due(sweep.started, now - sweep.started, scheduler.rng)
            scheduler.push_round(table.ticket, due)
        if outcome == "complete" and text is None and scope.done.worth_walking(len(departed), scope.page_size):
            # Their outcomes from one listing of the scope's finished operations; the rest get their own
            # look. The next round may start meanwhile: it claims none of these.
            sweep.departing = departed
            deadline = _latest_deadline({entry.waiter for entry in departed.values()})
            await self._walk_done(scope, dict(departed), deadline)
            now = time.monotonic()
        for entry in departed.values():
            if entry.state != SWEEPING:
                continue
            if outcome in ("complete", "stale"):
                self._confirm(entry, now)  # absent: only its own answer may say it is done
            elif outcome == "incomplete":
                self._confirm(entry, max(entry.due, now))  # polled one by one this round, when it is due
            else:  # refused (the scheduler pauses) or rejected (polled one by one from now on)
                scheduler.sweeping.discard(entry)
                scheduler.push(entry, entry.due)

    def _confirm(self, entry: Entry, due: float) -> None:
        """``entry`` (out of the table) is owed its own GetOperation, at ``due``."""
        self._scheduler.sweeping.discard(entry)
        entry.confirm = True
        self._scheduler.push(entry, due)

    def _spot_checks(self, scope: Scope, pages: int) -> list[Entry]:
        """The operations a complete listing of ``pages`` pages showed running that get their own GetOperation now."""
        candidates = list(scope.table.members.values())
        count = min(len(candidates), scope.trust.spot_checks(len(candidates), pages))
        if not count:
            return []
        chosen = self._scheduler.rng.sample(candidates, count)
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
        deadline = _latest_deadline(scope.table.waiters)
        text, expected = listing.filter, scope.expected_running()
        if combined is not None:
            text, expected = combined, expected + max(0, scope.done.size)
        pages = 0
        empty_in_a_row = 0
        largest = 0
        while True:
            if pages:
                await scheduler.call_slot()
                if not scope.table.members:  # every waiter went away
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
            if pages >= max(sweep.claimed, page_budget(expected, largest or scope.page_size)):
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
        running = 0
        for pb in response.operations:  # the per-operation loop of a sweep: kept lean
            done = pb.done
            if not done:
                running += 1
            entry = unlisted.pop(pb.name, None)
            if entry is None or entry.state != SWEEPING:
                if not done and trust.done_at and trust.contradicts(pb.name, started):
                    contradicted = pb.name
                continue
            if done:  # an answer about it (a combined walk, or the server ignored the filter): use it
                scheduler.sweeping.discard(entry)
                listed.reported += 1
                scheduler.finish(entry, pb)
                continue
            # Updated in place (it stays in the table): its bytes stored only when its state changed.
            seen = pb.SerializeToString()
            if seen != entry.last_seen or entry.last_error is not None:
                entry.last_seen = seen
                entry.failures = 0
                entry.last_error = None
        listed.running += running
        listed.finished += len(response.operations) - running
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


def _latest_deadline(waiters: Iterable[Subscriber]) -> Deadline:
    """The latest of the waiters' deadlines (none if any waiter has none)."""
    latest = -math.inf
    for waiter in waiters:
        expires_at = waiter.deadline.expires_at
        if expires_at is None:
            return Deadline(None)
        latest = max(latest, expires_at)
    return Deadline(None if latest == -math.inf else latest)
