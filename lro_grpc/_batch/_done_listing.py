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
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Final

from google.longrunning import operations_pb2

from lro_grpc._batch._scopes import ListScope

__all__ = [
    "OPERATION_WEIGHT",
    "PAGE_WEIGHT",
    "START_SLACK",
    "DoneListing",
    "done_filter",
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


def other_scope(listing: ListScope, name: str) -> bool:
    """Whether operation ``name`` visibly belongs to another scope than ``listing``'s."""
    if listing.parent.startswith("projects/"):
        return not name.startswith(listing.parent + "/operations/")
    service = listing.filter.split(" ", 1)[0].removeprefix("serviceName=")
    kind, _, rest = name.removeprefix("operations/").partition(".")
    other, colon, _ = rest.partition(":")
    return kind in _SM_KINDS and bool(colon) and other != service  # ids of other shapes name no service
