"""The batch journal: what a waiter writes down so that a killed job resumes without losing an operation.

A journal holds a batch's operation names (written, in one commit, before
the first poll), each operation's outcome (its final ``Operation``) and
which outcomes were delivered to the consumer. :class:`Journal` is the
waiter's side of it: it decides what a resumed batch polls, replays or
skips, groups outcome writes into few commits, and makes each delivery mark
durable when asked to. Where the records live is a :class:`JournalStore`'s
business (one SQLite file: :mod:`._sqlite_journal`); the scheduler knows
nothing of either.

Delivery: an outcome counts as delivered once the consumer asks for the
next one, or the iteration ends normally, or ``wait_all`` returns. The mark
is durable before the next outcome is handed out, so a crash repeats at most
the one outcome in the consumer's hand.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Iterable, Sequence
from typing import Final, NamedTuple, Protocol

from google.longrunning import operations_pb2

__all__ = [
    "FLUSH_DELAY",
    "Admitted",
    "Journal",
    "JournalContents",
    "JournalIdentity",
    "JournalStore",
    "JournalSummary",
    "StoredOutcome",
    "summarize",
]

FLUSH_DELAY: Final = 0.05
"""Seconds an outcome may wait in memory before its group commit (the contract allows 0.1)."""


@dataclasses.dataclass(frozen=True)
class JournalIdentity:
    """What a journal was made for; resuming against anything else is an error.

    Attributes:
        endpoint: the client's target (``host:port``), ``""`` if unknown
            (a client built on a ready channel).
        api: the API's short name (``"financialservices"``, ...), ``""`` if unknown.
    """

    endpoint: str
    api: str

    def conflicts_with(self, other: JournalIdentity) -> bool:
        """Whether the two name a different endpoint or API (an unknown part matches anything)."""
        return bool(
            (self.endpoint and other.endpoint and self.endpoint != other.endpoint)
            or (self.api and other.api and self.api != other.api)
        )


class StoredOutcome(NamedTuple):
    """One recorded outcome.

    Attributes:
        id: its position in the journal (outcomes are numbered in the order recorded).
        name: the operation's name.
        code: ``google.rpc.Code`` of its error, ``0`` for a success.
        operation: the serialized final ``google.longrunning.Operation``.
    """

    id: int
    name: str
    code: int
    operation: bytes


@dataclasses.dataclass
class JournalContents:
    """Everything a store holds, as loaded when a journal is opened.

    Attributes:
        names: operation names, in the order they were first recorded.
        outcomes: recorded outcomes, in the order recorded.
        delivered: ids of the outcomes delivered to a consumer.
    """

    names: list[str]
    outcomes: list[StoredOutcome]
    delivered: set[int]


class JournalStore(Protocol):
    """Where a journal's records live. Every write is durable when it returns.

    An implementation holds the journal for one process at a time (a second
    opener gets :class:`~lro_grpc.errors.JournalError` naming the holder) and
    never changes a file it cannot read.
    """

    @property
    def path(self) -> str:
        """Where the journal is (for messages)."""
        ...

    def read_identity(self) -> JournalIdentity | None:
        """What the journal was made for; ``None`` for a journal just created."""
        ...

    def write_identity(self, identity: JournalIdentity) -> None:
        """Record what the journal is for (once, when it is new)."""
        ...

    def load(self) -> JournalContents:
        """Every name, outcome and delivery mark."""
        ...

    def add_names(self, names: Sequence[str]) -> None:
        """Append operation names (not yet in the journal), in one commit."""
        ...

    def write(self, outcomes: Sequence[StoredOutcome], delivered: Sequence[int]) -> None:
        """Append outcomes and delivery marks (outcome ids), in one commit."""
        ...

    def close(self) -> None:
        """Release the journal. Idempotent."""
        ...


@dataclasses.dataclass(frozen=True)
class JournalSummary:
    """What a journal holds, for reports (``lro-grpc journal``).

    Attributes:
        identity: the endpoint and API it was made for.
        names: every operation name, in the order recorded.
        outcomes: each name's recorded outcome (the serialized final
            ``Operation``), in the order of ``names``; names still pending have none.
        pending: operations with no outcome recorded.
        succeeded: outcomes without an error.
        failed: outcomes with an error other than ``CANCELLED``.
        cancelled: outcomes with a ``CANCELLED`` error.
        delivered: outcomes delivered to a consumer.
    """

    identity: JournalIdentity
    names: list[str]
    outcomes: list[tuple[str, bytes]]
    pending: int
    succeeded: int
    failed: int
    cancelled: int
    delivered: int


def summarize(identity: JournalIdentity, contents: JournalContents) -> JournalSummary:
    """Count what ``contents`` holds (the last outcome recorded for a name counts)."""
    latest: dict[str, StoredOutcome] = {}
    for outcome in contents.outcomes:
        latest[outcome.name] = outcome
    names = list(dict.fromkeys(contents.names))
    ordered = [latest[name] for name in names if name in latest]
    codes = [outcome.code for outcome in ordered]
    return JournalSummary(
        identity=identity,
        names=names,
        outcomes=[(outcome.name, outcome.operation) for outcome in ordered],
        pending=len(names) - len(ordered),
        succeeded=codes.count(0),
        failed=len(codes) - codes.count(0) - codes.count(_CANCELLED),
        cancelled=codes.count(_CANCELLED),
        delivered=sum(1 for outcome in ordered if outcome.id in contents.delivered),
    )


_CANCELLED: Final = 1  # google.rpc.Code.CANCELLED


class Admitted(NamedTuple):
    """What a batch does with names it is given, journal in hand.

    Attributes:
        poll: names with no recorded outcome: to be polled.
        replay: ``(name, serialized operation)`` of recorded outcomes to hand
            out without an RPC.
        skipped: names whose outcome was delivered before (not handed out again).
    """

    poll: list[str]
    replay: list[tuple[str, bytes]]
    skipped: list[str]


class Journal:
    """The waiter's side of a journal: resume, group commits, delivery marks. Thread-safe.

    Outcomes wait in memory at most :data:`FLUSH_DELAY` seconds (a timer on
    the running event loop, or, with ``flush_in_thread``, a writer thread) and
    go to the store together, or sooner with the next delivery mark, which is
    written at once.

    Args:
        store: where the records live, already checked against ``identity``.
        replay_delivered: hand out outcomes delivered before, too (what
            ``wait_all`` needs to return every result); by default they are skipped.
        waiter_marks: the waiter marks deliveries as its consumer asks for the
            next outcome; ``False`` when whoever owns the journal marks them
            (the synchronous facade, ``wait_all``).
        flush_in_thread: group commits on a writer thread instead of a timer on
            the event loop (default: :attr:`flush_in_thread_by_default`).
    """

    flush_in_thread_by_default = False
    """Whether journals make group commits on a writer thread (measured by ``benchmarks/bench_journal.py``)."""

    def __init__(
        self,
        store: JournalStore,
        *,
        replay_delivered: bool = False,
        waiter_marks: bool = True,
        flush_in_thread: bool | None = None,
    ) -> None:
        self._store = store
        self.replay_delivered = replay_delivered
        self.waiter_marks = waiter_marks
        self._lock = threading.Lock()
        contents = store.load()
        self._names: set[str] = set(contents.names)
        self.names: list[str] = contents.names
        """Every name in the journal, in the order recorded (grows as names are admitted)."""
        latest: dict[str, StoredOutcome] = {}
        for outcome in contents.outcomes:
            latest[outcome.name] = outcome
        self._recorded = latest
        self._delivered = contents.delivered
        self._next_id = max((outcome.id for outcome in contents.outcomes), default=0) + 1
        self._undelivered: dict[str, int] = {}  # name -> outcome id, recorded and not yet delivered
        self._buffer: list[StoredOutcome] = []  # recorded, not yet written
        self._closed = False
        self._flush_armed = False  # a timer will flush the buffer
        self._writer: threading.Thread | None = None
        self._stop_writer = threading.Event()
        if self.flush_in_thread_by_default if flush_in_thread is None else flush_in_thread:
            self._writer = threading.Thread(target=self._write_in_thread, name="lro-grpc-journal", daemon=True)
            self._writer.start()

    @property
    def path(self) -> str:
        """The journal file."""
        return self._store.path

    def admit(self, names: Iterable[str] | None) -> Admitted:
        """Sort ``names`` (``None``: every name in the journal) into poll, replay and skip.

        New names are recorded (in one commit) before this returns, so
        before any of them is polled.
        """
        with self._lock:
            order = list(self.names) if names is None else list(dict.fromkeys(names))
            new = [name for name in order if name not in self._names]
            if new:
                self._store.add_names(new)
                self._names.update(new)
                self.names.extend(new)
            poll: list[str] = []
            replay: list[tuple[str, bytes]] = []
            skipped: list[str] = []
            recorded, delivered = self._recorded, self._delivered
            for name in order:
                outcome = recorded.get(name)
                if outcome is None:
                    poll.append(name)
                    continue
                if outcome.id in delivered:
                    if not self.replay_delivered:
                        skipped.append(name)
                        continue
                else:
                    self._undelivered[name] = outcome.id
                replay.append((name, outcome.operation))
            return Admitted(poll, replay, skipped)

    def record(self, name: str, operation: operations_pb2.Operation) -> None:
        """Write down ``name``'s outcome: in memory now, on disk within :data:`FLUSH_DELAY`."""
        # Serialized now: the consumer may change the message it is handed.
        serialized = operation.SerializeToString()
        code = operation.error.code if operation.HasField("error") else 0
        with self._lock:
            if self._closed:
                return
            outcome_id = self._next_id
            self._next_id = outcome_id + 1
            self._buffer.append(StoredOutcome(outcome_id, name, code, serialized))
            self._undelivered[name] = outcome_id
            if self._flush_armed or self._writer is not None:
                return  # a flush is due within FLUSH_DELAY anyway
            self._flush_armed = True
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not on an event loop: no timer to wait for
            self._flush_due()
            return
        loop.call_later(FLUSH_DELAY, self._flush_due)

    def _flush_due(self) -> None:
        with self._lock:
            self._flush_armed = False
            if not self._closed and self._buffer:
                self._write_locked(())

    def deliver(self, name: str) -> None:
        """Mark ``name``'s outcome delivered; durable (with every outcome still in memory) on return."""
        with self._lock:
            outcome_id = self._undelivered.pop(name, None)
            if self._closed or (outcome_id is None and not self._buffer):
                return
            self._write_locked(() if outcome_id is None else (outcome_id,))

    def deliver_all(self) -> None:
        """Mark every recorded outcome delivered (``wait_all`` returned them all)."""
        with self._lock:
            if self._closed:
                return
            ids = sorted(self._undelivered.values())
            self._undelivered.clear()
            self._write_locked(ids)

    def flush(self) -> None:
        """Write the outcomes still in memory (one commit)."""
        with self._lock:
            if not self._closed and self._buffer:
                self._write_locked(())

    def _write_locked(self, delivered: Sequence[int]) -> None:
        # Names and outcomes recorded in this run are known to the waiter, which
        # admits no name twice: the loaded view (_recorded, _delivered) needs no update.
        self._store.write(self._buffer, delivered)
        if self._buffer:
            self._buffer = []  # written (kept for the next try if the write failed)

    def _write_in_thread(self) -> None:
        # Wakes every FLUSH_DELAY whatever happens: waking it per outcome would cost more.
        while not self._stop_writer.wait(FLUSH_DELAY):
            try:
                self._flush_due()
            except Exception:  # the next delivery mark or close writes them, and reports the failure
                continue

    def close(self) -> None:
        """Write what is left and release the journal. Idempotent."""
        with self._lock:
            if self._closed:
                return
            try:
                if self._buffer:
                    self._write_locked(())
            finally:
                self._closed = True
                self._stop_writer.set()
                self._store.close()
        if self._writer is not None and self._writer is not threading.current_thread():
            self._writer.join()
