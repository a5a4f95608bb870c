"""The batch's named ports: what its parts call on each other, and the entry they pass around.

* :class:`Entry`: one tracked operation, the value every port carries;
* :class:`Ticket`: the one heap item of a swept list scope (its next listing
  round), standing for every operation waiting in that scope's table;
* :class:`Subscriber`: what the scheduler calls on whoever tracks an entry
  (a :class:`~lro_grpc.BatchWaiter`'s subscription): its deadline, its per-RPC
  timeout, and ``deliver`` / ``expire`` / ``abort``;
* :class:`Scheduling`: what a strategy (:mod:`._per_operation`, :mod:`._sweep`)
  calls on the scheduler: the entries' lifecycle and the shared limits;
* :class:`Fetch` and :class:`ListPage`: one GetOperation or ListOperations
  attempt, its failure returned as a value (see :class:`~._source.BatchSource`).

Nothing here does I/O, and this module imports no other part of the batch but
the limits: the scheduler, the strategies and the waiter all import it, never
each other's privates.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable
from typing import Any, Final, Protocol

from google.longrunning import operations_pb2

from lro_grpc._batch._limits import Throttle
from lro_grpc._core import RpcFailure
from lro_grpc.policies import Deadline, PollPolicy

__all__ = [
    "GONE",
    "POLLING",
    "QUEUED",
    "SWEEPING",
    "Entry",
    "Fetch",
    "ListPage",
    "Scheduling",
    "Subscriber",
    "Ticket",
    "last_seen",
]

# Where an entry is (Entry.state).
QUEUED: Final = 0  # in the scheduler's heap (the heap item with its ``seq`` is the live one)
POLLING: Final = 1  # its own GetOperation is in flight
SWEEPING: Final = 2  # in its scope's table: looked at by the scope's listing rounds, not queued on its own
GONE: Final = 3  # reported, expired or removed


class Subscriber(Protocol):
    """What the scheduler calls on the party that tracks an entry (a waiter's subscription)."""

    @property
    def deadline(self) -> Deadline:
        """The absolute deadline of every look at its entries."""
        ...

    @property
    def rpc_timeout(self) -> float | None:
        """Per-RPC timeout of its looks (``None``: the client's)."""
        ...

    def polled(self) -> None:
        """A GetOperation of one of its entries was started."""
        ...

    def deliver(self, entry: Entry, pb: operations_pb2.Operation) -> None:
        """``entry`` is done; ``pb`` is its final state."""
        ...

    def expire(self, entries: list[Entry]) -> None:
        """The deadline passed with ``entries`` still running (they are no longer scheduled)."""
        ...

    def abort(self, error: BaseException) -> None:
        """The batch ends with ``error`` (a bug, or the client rejected a call)."""
        ...


class Entry:
    """One tracked operation: small on purpose (see the package docstring).

    Attributes:
        waiter: the subscriber it belongs to.
        name: the operation name.
        order: insertion order (input order across a waiter).
        policy: its poll policy.
        attempts: answered looks at it while running (drives the poll interval).
        failures: failed looks since the last answered one (drives the retry backoff).
        last_error: the failure of its last look, if that failed (``None`` once answered).
        last_seen: serialized bytes of its last seen state, if any.
        scope: the sweep strategy's record of its list scope (``None``: polled on
            its own); typed by :mod:`._sweep`, which alone reads it.
        due: when it is next due to be looked at (while ``SWEEPING``, when it last was).
        seq: the heap item that is live for it (older items are stale).
        joined: the scope's listing rounds counted when it joined the scope's
            table (its ``attempts`` grow by the rounds since then when it leaves).
        state: ``QUEUED``, ``POLLING``, ``SWEEPING`` or ``GONE``.
        confirm: its next look must be its own GetOperation (a listing left it out, or failed).
    """

    __slots__ = (
        "attempts",
        "confirm",
        "due",
        "failures",
        "joined",
        "last_error",
        "last_seen",
        "name",
        "order",
        "policy",
        "scope",
        "seq",
        "state",
        "waiter",
    )

    def __init__(self, waiter: Subscriber, name: str, order: int, policy: PollPolicy) -> None:
        self.waiter = waiter
        self.name = name
        self.order = order
        self.policy = policy
        self.attempts = 0
        self.failures = 0
        self.last_error: RpcFailure | None = None
        self.last_seen: bytes | None = None
        self.scope: Any = None
        self.due = 0.0
        self.seq = -1
        self.joined = 0
        self.state = GONE
        self.confirm = False


class Ticket:
    """The one heap item of a swept list scope: when its next listing round is due.

    The scope's operations wait in its table meanwhile (state ``SWEEPING``),
    none of them in the heap. Heap staleness works as for an :class:`Entry`:
    the item whose ``seq`` matches while ``state`` is ``QUEUED`` is live.

    Attributes:
        scope: the sweep strategy's record of the scope (typed by :mod:`._sweep`).
        waiters: the subscribers with operations in the table, by count (the
            table's own dict, read-only here).
        due: when the round is due.
        seq: the heap item that is live for it.
        state: ``QUEUED`` while in the heap, else ``GONE``.
    """

    __slots__ = ("due", "scope", "seq", "state", "waiters")

    def __init__(self, scope: Any, waiters: dict[Subscriber, int]) -> None:
        self.scope = scope
        self.waiters = waiters
        self.due = 0.0
        self.seq = -1
        self.state = GONE

    def expired(self, now: float) -> bool:
        """Whether a waiter with operations in the table is past its deadline (the dispatcher expires it first)."""
        return any(waiter.deadline.expired(now) for waiter in self.waiters)


def last_seen(entry: Entry) -> operations_pb2.Operation:
    """The entry's last seen state (just its name if it was never seen)."""
    if entry.last_seen is None:
        return operations_pb2.Operation(name=entry.name)
    return operations_pb2.Operation.FromString(entry.last_seen)


class Scheduling(Protocol):
    """What a strategy calls on the scheduler (:class:`~lro_grpc.BatchScheduler` implements it)."""

    @property
    def in_flight(self) -> dict[Entry, asyncio.Task[None] | None]:
        """Entries being polled on their own -> the worker polling them (``None`` until it starts)."""
        ...

    @property
    def sweeping(self) -> set[Entry]:
        """Entries in a scope's table, or claimed by a listing round of their scope."""
        ...

    @property
    def throttle(self) -> Throttle:
        """The shared ``RESOURCE_EXHAUSTED`` pause."""
        ...

    @property
    def rng(self) -> random.Random:
        """Randomness for jitter."""
        ...

    def count_call(self, method: str, subscriber: Subscriber | None = None) -> None:
        """Count one RPC started (a GetOperation also tells its subscriber)."""
        ...

    async def call_slot(self) -> None:
        """Wait until the limits allow one more call, and spend it."""
        ...

    def push(self, entry: Entry, due: float) -> None:
        """Queue ``entry`` to be looked at at ``due``."""
        ...

    def requeue(self, entry: Entry, started: float) -> None:
        """``entry`` was seen running by a look started at ``started``: queue its next look."""
        ...

    def push_round(self, ticket: Ticket, due: float) -> None:
        """Queue a scope's next listing round at ``due`` (any older heap item of it turns stale)."""
        ...

    def retry_later(self, entry: Entry) -> None:
        """A look at ``entry`` failed for a passing reason: try again after a backoff."""
        ...

    def refused(self, failure: RpcFailure, rpc_started: float) -> None:
        """An RPC started at ``rpc_started`` was refused for quota: pause every look."""
        ...

    def finish(self, entry: Entry, pb: operations_pb2.Operation, *, answered_at: float | None = None) -> None:
        """``entry`` is done (``pb`` is its final state): deliver it to its subscriber.

        ``answered_at``: when its own GetOperation's answer said so (listings shown later are held to it).
        """
        ...


class Fetch(Protocol):
    """One GetOperation attempt, clipped to ``deadline``: the operation, or the failure as a value."""

    def __call__(
        self, name: str, *, deadline: Deadline, rpc_timeout: float | None
    ) -> Awaitable[operations_pb2.Operation | RpcFailure]:
        """Look at operation ``name`` once (``rpc_timeout`` ``None``: the client's)."""
        ...


class ListPage(Protocol):
    """One ListOperations attempt (one page), clipped to ``deadline``: the page, or the failure as a value."""

    def __call__(
        self, request: operations_pb2.ListOperationsRequest, *, deadline: Deadline, rpc_timeout: float | None
    ) -> Awaitable[operations_pb2.ListOperationsResponse | RpcFailure]:
        """Fetch one page of ``request.name`` (``rpc_timeout`` ``None``: the client's)."""
        ...
