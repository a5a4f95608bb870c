"""Done listings: learning the outcomes of operations that left a running listing by listing finished ones.

After a complete listing of a scope's *running* operations, each tracked
operation it left out has finished, or is missing from it for some other
reason; only an answer about that operation may say which. One such answer is
its GetOperation. Another is a listing of the scope's *finished* operations:
every operation on it carries its response or error, so it may report each
one it names (its absence still declares nothing). Per round, the sweeper
takes the cheaper of the two (:meth:`DoneListing.worth_walking`); the
operations a walk did not account for get their GetOperation as before.

* Financial Services: ``done=true`` under the location.
* Service Management: ``serviceName=S AND status=done AND startTime>="T"``,
  ``T`` the earliest ``start_time`` among the operations looked for (or when
  the scope's first operation was tracked, if earlier), less
  :data:`START_SLACK` (the filter grammar of ``operations.list``). An
  operation that started earlier still is not on it, and gets its
  GetOperation.

A server that rejects the filter (``INVALID_ARGUMENT``, ``UNIMPLEMENTED``,
``PERMISSION_DENIED`` on the first page) or ignores it (the walk shows a
running operation, or one of another scope) is remembered: that scope's
operations are confirmed with GetOperation from then on. Any other failure
ends the walk for that round.

The cost model counts a page in GetOperations of server work: a page is
:data:`PAGE_WEIGHT` GetOperations plus :data:`OPERATION_WEIGHT` per operation it
carries (measured on the emulator, see ``benchmarks/bench_sweep.py``). A walk
is chosen when its expected cost (the scope's done listing as large as its
last walk showed, with the operations looked for on top) is below the number
of operations looked for; it stops once it has cost that many GetOperations,
or once every operation looked for is accounted for.

**Both in one walk.** A scope's running and finished operations can be
listed together (:func:`combined_filter`): a Financial Services location with
no filter at all, a Service Management service with
``serviceName=S AND startTime>="T"``, ``T`` as above over every operation the
round claimed. A round walks that one listing instead of the running listing
followed by a done walk (or a GetOperation for each operation that left) when
it is expected to cost less (:meth:`DoneListing.worth_combining`): with pages
of at most 100, a Service Management scope of a few hundred operations pays a
partly filled page twice, a round in which a few dozen finish pays a
GetOperation each, and a busy location, hundreds leaving it each round, walks
its finished operations anyway; one walk of both holds every answer, and
reports each finished operation as its page comes rather than after a second
walk. Each finished operation it shows is reported (an answer about it); a
claimed operation it does not show gets its GetOperation, as after a running
listing. A server that rejects that filter on the first page is remembered
(:attr:`DoneListing.refused`, the running listing is not given up); one that
ignores it shows operations of other services and runs past the round's page
budget, which discards the listing as any other.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Collection, Iterable
from datetime import datetime, timezone
from typing import Final, Protocol

from google.longrunning import operations_pb2

from lro_grpc._batch._scopes import ListScope

__all__ = [
    "COMBINED_MIN_SAVING",
    "OPERATION_WEIGHT",
    "PAGE_WEIGHT",
    "START_SLACK",
    "DoneListing",
    "Seen",
    "combined_filter",
    "done_filter",
    "earliest_start",
    "other_scope",
    "page_cost",
    "start_time",
]

PAGE_WEIGHT: Final = 1.0
"""Server work of one done page, besides its operations, in GetOperations.

Measured 0.70 on the emulator (``benchmarks/bench_list_weights.py``: server
CPU of pages of 1,000 and 100 finished Financial Services operations with
their responses, against GetOperations of the same operations); rounded up
for the call's own overhead on the client.
"""

OPERATION_WEIGHT: Final = 0.04
"""Server work of each operation a done page carries (with its response or error), in GetOperations.

Measured 0.042 (same run): a page of 1,000 costs the server about 43 GetOperations.

Both were measured while the emulator rendered every operation it listed, as
a server that reads its operations from storage does. The emulator now keeps
its renderings until they change, and the same benchmark finds 2.1 + 0.009 per
operation: these weights stay those of a server that renders, so a walk is
chosen only where it pays on such a server too.
"""

START_SLACK: Final = 300.0
"""Seconds a Service Management done listing reaches back before the earliest start looked for (clock skew)."""

COMBINED_MIN_SAVING: Final = 1.0
"""GetOperations a combined walk must save against the split one to be chosen (estimates are rough)."""

_log = logging.getLogger("lro_grpc.batch")

_SM_METADATA = "type.googleapis.com/google.api.servicemanagement.v1.OperationMetadata"
_SM_KINDS: Final = frozenset({"rollouts", "serviceConfigs", "services"})


def done_filter(listing: ListScope, since: float | None) -> str | None:
    """The filter of ``listing``'s finished operations; ``None`` when it cannot be written.

    ``since``: the earliest start time (epoch seconds) of the operations
    looked for, needed by Service Management.
    """
    if listing.parent.startswith("projects/"):
        return "done=true"
    if since is None:
        return None
    return _service_filter(listing, since, "status=done AND ")


def combined_filter(listing: ListScope, since: float | None) -> str | None:
    """The filter of ``listing``'s running and finished operations together; ``None`` when there is none.

    Financial Services: no filter (its one filter field is ``done``), the
    whole location, other callers' finished operations included: the cost
    comparison weighs them (:meth:`DoneListing.worth_combining`). Service
    Management: ``since`` as for :func:`done_filter`.
    """
    if listing.parent.startswith("projects/"):
        return ""
    if since is None:
        return None
    return _service_filter(listing, since, "")


def _service_filter(listing: ListScope, since: float, status: str) -> str:
    """``serviceName=S AND <status>startTime>="T"``, ``T`` :data:`START_SLACK` before ``since``."""
    service = listing.filter.split(" ", 1)[0].removeprefix("serviceName=")
    moment = datetime.fromtimestamp(max(0.0, since - START_SLACK), tz=timezone.utc)
    return f'serviceName={service} AND {status}startTime>="{moment.strftime("%Y-%m-%dT%H:%M:%SZ")}"'


def start_time(last_seen: bytes | None) -> float | None:
    """A Service Management operation's ``start_time`` (epoch seconds) from its last seen state, if known."""
    if last_seen is None:
        return None
    from lro_grpc._generated import servicemanagement_v1_pb2  # only Service Management scopes need it

    pb = operations_pb2.Operation.FromString(last_seen)
    if pb.metadata.type_url != _SM_METADATA:
        return None
    metadata = servicemanagement_v1_pb2.OperationMetadata.FromString(pb.metadata.value)
    if not metadata.HasField("start_time"):
        return None
    return float(metadata.start_time.seconds + metadata.start_time.nanos / 1e9)


class Seen(Protocol):
    """An operation as the sweeper tracks it: its last seen state, serialized (``None``: never seen)."""

    last_seen: bytes | None


def earliest_start(listing: ListScope, tracked_since: float, entries: Iterable[Seen]) -> float | None:
    """Where a Service Management done or combined listing starts (``None`` for Financial Services: not needed).

    The earliest known start among the operations looked for (``entries``),
    or when the scope's first operation was tracked
    (``tracked_since``) if earlier: those never seen yet (their start unknown)
    most likely started before they were tracked.
    """
    if listing.parent.startswith("projects/"):
        return None
    starts = [start_time(entry.last_seen) for entry in entries]
    return min([tracked_since, *(start for start in starts if start is not None)])


def page_cost(operations: int) -> float:
    """Server work of a done page carrying ``operations``, in GetOperations."""
    return PAGE_WEIGHT + OPERATION_WEIGHT * operations


class DoneListing:
    """What the sweeper knows of one scope's listing of finished operations.

    Attributes:
        refused: the server rejected or ignored the filter: GetOperation from now on.
        size: finished operations its last walk showed (``-1``: never walked).
        walks: walks started.
        departures: tracked operations that left the last complete round's listing.
        combined_refused: the server rejected the filter of both in one walk.
    """

    __slots__ = ("_since", "_since_tracked", "combined_refused", "departures", "refused", "size", "walks")

    def __init__(self) -> None:
        self.refused = False
        self.size = -1
        self.walks = 0
        self.departures = 0
        self.combined_refused = False
        self._since: float | None = None
        self._since_tracked = -1

    def combined_since(self, listing: ListScope, tracked_since: float, tracked: Collection[Seen]) -> float | None:
        """:func:`earliest_start` of the scope's ``tracked`` operations, for its walks of both at once.

        Reading each start costs a parse of its last seen state, so it is
        remembered, and read again only when the scope tracks more operations
        than when it was (one that joined may have started earlier). One that
        joined while as many left, and started earlier still, is not on the
        listing: absent, it gets its GetOperation.
        """
        if self._since_tracked < 0 or len(tracked) > self._since_tracked:
            self._since = earliest_start(listing, tracked_since, tracked)
        self._since_tracked = len(tracked)
        return self._since

    def refuse(self, listing: ListScope, text: str, why: str) -> None:
        """The server rejected or ignored the done filter ``text`` of ``listing``: GetOperation from now on."""
        self.refused = True
        if _log.isEnabledFor(logging.INFO):
            _log.info(
                "done listing of %s (filter %r) not used: %s; operations leaving its running listing get "
                "GetOperation from now on",
                listing.parent,
                text,
                why,
            )

    def expected_cost(self, looked_for: int, page_size: int) -> float:
        """What a walk for ``looked_for`` operations is expected to cost, in GetOperations."""
        return _listing_cost(max(0, self.size) + looked_for, page_size)

    def worth_walking(self, looked_for: int, page_size: int) -> bool:
        """Whether walking the done listing is cheaper than ``looked_for`` GetOperations."""
        if self.refused or looked_for < 2:
            return False
        return self.expected_cost(looked_for, page_size) < looked_for

    def worth_combining(self, running: int, page_size: int) -> bool:
        """Whether one walk of running and finished operations together is cheaper than the two ways apart.

        ``running``: the scope's running operations by the best count known.
        Apart: the running listing, then for as many departures as the last
        round had the cheaper of their GetOperations and a done walk. Together:
        one listing as large as both. Known only once a done walk measured the
        finished side.
        """
        if self.refused or self.combined_refused or self.size < 0:
            return False
        departures = self.departures
        apart = _listing_cost(running, page_size)
        if departures:
            apart += min(float(departures), self.expected_cost(departures, page_size))
        together = _listing_cost(running + self.size, page_size)
        return together + COMBINED_MIN_SAVING <= apart


def _listing_cost(operations: int, page_size: int) -> float:
    """Server work of listing ``operations`` in pages of ``page_size`` (at least one page), in GetOperations."""
    pages = max(1, math.ceil(operations / max(1, page_size)))
    return pages * PAGE_WEIGHT + operations * OPERATION_WEIGHT


def other_scope(listing: ListScope, name: str) -> bool:
    """Whether operation ``name`` visibly belongs to another scope than ``listing``'s."""
    if listing.parent.startswith("projects/"):
        return not name.startswith(listing.parent + "/operations/")
    service = listing.filter.split(" ", 1)[0].removeprefix("serviceName=")
    kind, _, rest = name.removeprefix("operations/").partition(".")
    other, colon, _ = rest.partition(":")
    return kind in _SM_KINDS and bool(colon) and other != service  # ids of other shapes name no service
