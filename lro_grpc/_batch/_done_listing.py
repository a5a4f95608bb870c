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
  ``T`` the earliest ``start_time`` among the operations looked for, less
  :data:`START_SLACK` (the filter grammar of ``operations.list``). An
  operation whose start time is not known yet is looked for with GetOperation.

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
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Final

import grpc
from google.longrunning import operations_pb2

from lro_grpc._batch._base import (
    LISTING_REJECTED_CODES,
    SWEEPING,
    Entry,
    ListFetch,
    is_message_size_failure,
    rpc_code,
)
from lro_grpc._batch._trust import MAX_EMPTY_PAGES
from lro_grpc.errors import RpcError
from lro_grpc.policies import Deadline

if TYPE_CHECKING:
    from lro_grpc._batch._scheduler import BatchScheduler
    from lro_grpc._batch._sweep import ListScope, Scope

__all__ = [
    "OPERATION_WEIGHT",
    "PAGE_WEIGHT",
    "START_SLACK",
    "DoneListing",
    "done_filter",
    "page_cost",
    "start_time",
    "walk_done",
]

_log = logging.getLogger("lro_grpc.batch")

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
"""

START_SLACK: Final = 300.0
"""Seconds a Service Management done listing reaches back before the earliest start looked for (clock skew)."""

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
    service = listing.filter.split(" ", 1)[0].removeprefix("serviceName=")
    moment = datetime.fromtimestamp(max(0.0, since - START_SLACK), tz=timezone.utc)
    return f'serviceName={service} AND status=done AND startTime>="{moment.strftime("%Y-%m-%dT%H:%M:%SZ")}"'


def start_time(entry: Entry) -> float | None:
    """A Service Management operation's ``start_time`` (epoch seconds) from its last seen state, if known."""
    if entry.last_seen is None:
        return None
    from lro_grpc._generated import servicemanagement_v1_pb2  # only Service Management scopes need it

    pb = operations_pb2.Operation.FromString(entry.last_seen)
    if pb.metadata.type_url != _SM_METADATA:
        return None
    metadata = servicemanagement_v1_pb2.OperationMetadata.FromString(pb.metadata.value)
    if not metadata.HasField("start_time"):
        return None
    return float(metadata.start_time.seconds + metadata.start_time.nanos / 1e9)


def page_cost(operations: int) -> float:
    """Server work of a done page carrying ``operations``, in GetOperations."""
    return PAGE_WEIGHT + OPERATION_WEIGHT * operations


class DoneListing:
    """What the sweeper knows of one scope's listing of finished operations.

    Attributes:
        refused: the server rejected or ignored the filter: GetOperation from now on.
        size: finished operations its last walk showed (``-1``: never walked).
        walks: walks started.
    """

    __slots__ = ("refused", "size", "walks")

    def __init__(self) -> None:
        self.refused = False
        self.size = -1
        self.walks = 0

    def expected_cost(self, looked_for: int, page_size: int) -> float:
        """What a walk for ``looked_for`` operations is expected to cost, in GetOperations."""
        size = max(0, self.size) + looked_for
        pages = max(1, math.ceil(size / max(1, page_size)))
        return pages * PAGE_WEIGHT + size * OPERATION_WEIGHT

    def worth_walking(self, looked_for: int, page_size: int) -> bool:
        """Whether walking the done listing is cheaper than ``looked_for`` GetOperations."""
        if self.refused or looked_for < 2:
            return False
        return self.expected_cost(looked_for, page_size) < looked_for


def _other_scope(listing: ListScope, name: str) -> bool:
    """Whether operation ``name`` visibly belongs to another scope than ``listing``'s."""
    if listing.parent.startswith("projects/"):
        return not name.startswith(listing.parent + "/operations/")
    service = listing.filter.split(" ", 1)[0].removeprefix("serviceName=")
    kind, _, rest = name.removeprefix("operations/").partition(".")
    other, colon, _ = rest.partition(":")
    return kind in _SM_KINDS and bool(colon) and other != service  # ids of other shapes name no service


async def walk_done(
    scheduler: BatchScheduler, list_fetch: ListFetch, scope: Scope, looking_for: dict[str, Entry], deadline: Deadline
) -> None:
    """Walk ``scope``'s done listing and report each operation of ``looking_for`` (by name) it shows.

    The operations it reports leave ``looking_for``; the others are for the
    caller to confirm with GetOperation.
    """
    done = scope.done
    listing = scope.listing
    since = None
    if not listing.parent.startswith("projects/"):
        since = min((t for t in map(start_time, looking_for.values()) if t is not None), default=None)
    text = done_filter(listing, since)
    if text is None:
        return
    done.walks += 1
    budget = float(len(looking_for))
    spent = 0.0
    shown = 0
    pages = 0
    empty_in_a_row = 0
    tokens: set[str] = set()
    token = ""
    while looking_for:
        await scheduler.call_slot()
        if not any(entry.state == SWEEPING for entry in looking_for.values()):  # their waiters went away
            return
        request = operations_pb2.ListOperationsRequest(
            name=listing.parent, filter=text, page_size=scope.ask_size, page_token=token
        )
        scheduler.count_call("ListOperations")
        started = time.monotonic()
        try:
            response = await list_fetch(request, deadline=deadline, rpc_timeout=None)
        except asyncio.CancelledError:
            raise
        except (RpcError, grpc.RpcError) as error:
            code = rpc_code(error) or grpc.StatusCode.UNKNOWN
            if code is grpc.StatusCode.RESOURCE_EXHAUSTED and not is_message_size_failure(error):
                scheduler.refused(error, started)
            elif pages == 0 and code in LISTING_REJECTED_CODES:
                _refuse(scope, text, f"it failed with {code.name}")
            return
        except TimeoutError:
            return
        answered_at = time.monotonic()
        pages += 1
        scheduler.throttle.succeeded()
        spent += page_cost(len(response.operations))
        shown += len(response.operations)
        for pb in response.operations:
            if not pb.done or _other_scope(listing, pb.name):
                what = "running" if not pb.done else "of another scope"
                _refuse(scope, text, f"it shows {pb.name!r}, {what}")
                return
            entry = looking_for.pop(pb.name, None)
            if entry is not None and entry.state == SWEEPING:
                scheduler.sweeping.discard(entry)
                scheduler.finish(entry, pb, answered_at=answered_at)
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


def _refuse(scope: Scope, text: str, why: str) -> None:
    scope.done.refused = True
    if _log.isEnabledFor(logging.INFO):
        _log.info(
            "done listing of %s (filter %r) not used: %s; operations leaving its running listing get "
            "GetOperation from now on",
            scope.listing.parent,
            text,
            why,
        )
