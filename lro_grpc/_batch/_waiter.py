"""The batch waiter: reports each of many operations as soon as it finishes.

A :class:`BatchWaiter` tracks operations by name and hands each finished one
to its consumer; the polling is its :class:`~lro_grpc.BatchScheduler`'s.
:func:`as_completed` and :func:`wait_all` are the usual ways in.
"""

from __future__ import annotations

import asyncio
import collections
import os
import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, Generic, TypeVar

from google.longrunning import operations_pb2

from lro_grpc import _core
from lro_grpc._batch._journal import Journal
from lro_grpc._batch._journal_open import JournalPath, open_journal
from lro_grpc._batch._ports import Entry, last_seen
from lro_grpc._batch._scheduler import BatchScheduler
from lro_grpc._batch._settings import (
    DEFAULT_BATCH_RPC_TIMEOUT,
    DEFAULT_MAX_IN_FLIGHT,
    BatchProgress,
    Counts,
    check_names,
    check_settings,
    own_limits,
)
from lro_grpc._batch._source import BatchClient, BatchSource, as_batch_source
from lro_grpc.errors import BatchTimeoutError
from lro_grpc.policies import Deadline, Duration, PollPolicy

__all__ = [
    "Aborted",
    "BatchWaiter",
    "TimedOut",
    "as_completed",
    "wait_all",
    "with_results",
]

T = TypeVar("T")


class TimedOut:
    """An item of a waiter's output: the deadline passed with these entries still running."""

    __slots__ = ("entries",)

    def __init__(self, entries: list[Entry]) -> None:
        self.entries = entries


class Aborted:
    """An item of a waiter's output: the batch ends with ``error``."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


class BatchWaiter(Generic[T]):
    """Polls many operations and yields each as it finishes.

    Iterate it with ``async for`` (one consumer at a time). It starts polling
    on the first iteration, in the running event loop; nothing is captured at
    construction except the start of the ``timeout`` clock.

    Example::

        waiter = BatchWaiter(client, names, timeout=3600)
        async for op in waiter:
            if op.error: ...
            waiter.add(more_names)          # allowed while iterating

    The polling is done by a :class:`BatchScheduler`: the client's own (one per
    :class:`~lro_grpc.AsyncOperationsClient`, shared by all its batches, so
    their RPCs in flight and calls per second are limited together), or,
    when ``max_in_flight`` or ``qps`` is given or the client has none, a
    scheduler of this waiter's own with those limits.

    Duplicate names are tracked and reported once. The iteration ends when
    every added operation has been reported, unless ``keep_open`` is set: then
    it waits for more :meth:`add` calls until :meth:`close_input`.

    Args:
        client: the source of GetOperation calls and handles (an
            :class:`~lro_grpc.AsyncOperationsClient`, or any
            :class:`BatchSource`).
        names: operation names to track from the start.
        timeout: overall time to wait, seconds or ``timedelta``, counted from
            construction; ``None`` waits for ever.
        poll_policy: how often to poll each operation (each operation follows
            it on its own schedule); by default each operation gets what the
            client would use for it alone (the client's policy, else its API's
            preset, e.g. 10 s for Service Management), or
            :data:`~lro_grpc.policies.DEFAULT_POLL_POLICY` for a client that
            has no such notion.
        max_in_flight: GetOperation RPCs in flight at most, for a scheduler
            of this waiter's own (default: share the client's; without one,
            :data:`DEFAULT_MAX_IN_FLIGHT`).
        qps: GetOperation calls per second at most, for a scheduler of this
            waiter's own (default: share the client's; without one, no budget).
        progress: called with a :class:`BatchProgress` when iteration starts,
            after each reported operation and when the deadline passes, in the
            iterating task; an exception it raises ends the iteration.
        rpc_timeout: timeout of one GetOperation (clipped to the deadline).
        keep_open: keep iterating when everything added so far is reported.
        journal: a file (SQLite) that makes the batch durable: the names are
            written to it before the first poll, each outcome as soon as it is
            seen (within 0.1 s), and each delivery. Given again with the same
            names (or more; ``names=None``: every name in it), the batch
            resumes: outcomes delivered before are neither yielded nor polled,
            outcomes recorded but not delivered are yielded first without an
            RPC, the rest are polled. An outcome counts as delivered once the
            consumer asks for the next one or the iteration ends normally, so
            a crash repeats at most the one in the consumer's hand. One
            process per journal.

    Raises:
        TypeError, ValueError: an argument is of the wrong type or out of range.
        InvalidNameError: a name is malformed (before any RPC).
        JournalError: the journal is in use by another process, is not a
            readable journal, or was made for another endpoint or API.
    """

    def __init__(
        self,
        client: BatchSource[T] | BatchClient[T],
        names: Iterable[str] | None = (),
        *,
        timeout: Duration | None = None,
        poll_policy: PollPolicy | None = None,
        max_in_flight: int | None = None,
        qps: float | None = None,
        progress: Callable[[BatchProgress], object] | None = None,
        rpc_timeout: Duration | None = DEFAULT_BATCH_RPC_TIMEOUT,
        keep_open: bool = False,
        journal: JournalPath | Journal | None = None,
    ) -> None:
        if names is None and journal is None:
            raise TypeError("names=None (every name in the journal) needs a journal")
        checked = None if names is None else check_names(names)
        if journal is not None and not isinstance(journal, Journal | str | os.PathLike):
            raise TypeError(f"journal must be a file path or None, got {journal!r}")
        timeout_s, policy, rpc_timeout_s = check_settings(timeout, poll_policy, rpc_timeout, progress)
        limits = own_limits(max_in_flight, qps)
        source = as_batch_source(client)
        if limits is None and source.scheduler is not None:
            self._scheduler: BatchScheduler = source.scheduler()
            self._owns_scheduler = False
        else:
            limit, rate = limits or (DEFAULT_MAX_IN_FLIGHT, None)
            self._scheduler = BatchScheduler(source.fetch, max_in_flight=limit, qps=rate, list_fetch=source.list_page)
            self._owns_scheduler = True
        self._wrap: Callable[[operations_pb2.Operation], T] = source.wrap
        self._timeout = timeout_s
        self._deadline = Deadline.after(timeout_s, now=time.monotonic())
        self._policy = policy
        # Per-name defaults come from the client (an API's preset follows the name's form).
        self._explicit_policy = poll_policy
        self._policy_for = source.poll_policy_for
        self._subscription = _Subscription(self, self._deadline, rpc_timeout_s)
        self._progress = progress
        self._keep_open = keep_open

        self._known: dict[str, Entry | None] = {}  # name -> entry while tracked, None once reported
        self._backlog: list[Entry] = []  # added before the first iteration
        self._counts = Counts()  # as reported to the consumer
        self._out: collections.deque[tuple[str, T, bool] | TimedOut | Aborted] = collections.deque()
        self._out_ready: asyncio.Future[None] | None = None
        self._started = False
        self._finished = False
        self.polls = 0
        """GetOperation calls started so far (the client's own retries not counted)."""

        self._journal: Journal | None = None
        self._owns_journal = False
        self._in_hand: str | None = None  # handed out, not yet delivered (the consumer holds it)
        if journal is None:
            assert checked is not None  # None was refused above without a journal
            self._add(checked, None)
            return
        if isinstance(journal, Journal):
            self._journal = journal
        else:
            self._journal = open_journal(source, journal, checked)
            self._owns_journal = True
        try:
            self._add(checked, None)
        except BaseException:
            self._close_journal()
            raise

    # ----------------------------------------------------------------- public API

    @property
    def scheduler(self) -> BatchScheduler:
        """The scheduler polling this waiter's operations."""
        return self._scheduler

    def add(self, names: Iterable[str], *, poll_policy: PollPolicy | None = None) -> int:
        """Track more operations; allowed before and during iteration.

        Names already tracked or already reported by this waiter are ignored.

        Args:
            names: operation names.
            poll_policy: their polling policy (default: the waiter's).

        Returns:
            How many new operations are now tracked.

        Raises:
            RuntimeError: the waiter has finished (deadline passed, closed, or
                everything reported without ``keep_open``).
            TypeError: a name is not a ``str``.
            InvalidNameError: a name is malformed (nothing is added then).
        """
        return self._add(check_names(names), poll_policy)

    def _add(self, checked: list[str] | None, poll_policy: PollPolicy | None) -> int:
        """:meth:`add` for names already validated (each name is validated once per batch)."""
        if poll_policy is not None and not isinstance(poll_policy, PollPolicy):
            raise TypeError(f"poll_policy must be a PollPolicy, got {poll_policy!r}")
        if self._finished:
            raise RuntimeError("this BatchWaiter has finished; create a new one to track more operations")
        policy = poll_policy or self._explicit_policy
        replayed = 0
        if self._journal is not None:
            known = self._known
            admitted = self._journal.admit(None if checked is None else [n for n in checked if n not in known])
            for name in admitted.skipped:
                known[name] = None
            for name, serialized in admitted.replay:
                known[name] = None
                pb = operations_pb2.Operation.FromString(serialized)
                self._out.append((name, self._wrap(pb), _core.operation_failed(pb)))
            replayed = len(admitted.replay)
            self._counts.tracked += replayed
            checked = admitted.poll
            if replayed:
                self._signal_out()
        assert checked is not None  # without a journal, names are always given
        new: list[Entry] = []
        for name in checked:
            if name in self._known:
                continue
            entry = Entry(self._subscription, name, self._scheduler.next_order(), policy or self._default_policy(name))
            self._known[name] = entry
            new.append(entry)
        self._counts.tracked += len(new)
        if new:
            if self._started:
                self._scheduler.schedule(new)
            else:
                self._backlog.extend(new)
        return len(new) + replayed

    def _default_policy(self, name: str) -> PollPolicy:
        if self._policy_for is None:
            return self._policy
        return self._policy_for(name, None)

    def close_input(self) -> None:
        """With ``keep_open``: no more :meth:`add` calls will come; end when all are reported."""
        self._keep_open = False
        self._signal_out()

    @property
    def progress(self) -> BatchProgress:
        """The current counts (as reported to the consumer so far)."""
        return self._counts.snapshot()

    def __aiter__(self) -> BatchWaiter[T]:
        return self

    async def __anext__(self) -> T:
        item = await self._next_pair()
        return item[1]

    async def aclose(self) -> None:
        """Stop polling this waiter's operations. Idempotent.

        Returns once no task polls them any more; a scheduler of the waiter's
        own stops, the client's keeps serving its other waiters.
        """
        self._finished = True
        self._backlog.clear()
        try:
            if self._owns_scheduler:
                await self._scheduler.aclose()
            else:
                await self._scheduler.detach(self._subscription)
        finally:
            self._close_journal()

    def _close_journal(self) -> None:
        if self._owns_journal and self._journal is not None:
            self._owns_journal = False
            self._journal.close()

    async def __aenter__(self) -> BatchWaiter[T]:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # ----------------------------------------------------------------- consumer side

    async def _next_pair(self) -> tuple[str, T]:
        if self._in_hand is not None:
            # The consumer asks for the next outcome: the one in its hand is delivered.
            name, self._in_hand = self._in_hand, None
            self._journal.deliver(name)  # type: ignore[union-attr]  # set only with a journal
        if not self._started:
            self._start()
        while True:
            if self._out:
                item = self._out.popleft()
                if isinstance(item, TimedOut):
                    error = self._timed_out(item)
                    await self.aclose()
                    raise error
                if isinstance(item, Aborted):
                    await self.aclose()
                    raise item.error
                name, handle, failed = item
                self._counts.done += 1
                self._counts.failed += failed
                if self._journal is not None and self._journal.waiter_marks:
                    self._in_hand = name
                self._notify()
                return name, handle
            if self._finished:
                raise StopAsyncIteration
            if self._counts.done == self._counts.tracked and not self._keep_open:
                self._finished = True
                await self.aclose()
                raise StopAsyncIteration
            loop = asyncio.get_running_loop()
            self._out_ready = loop.create_future()
            try:
                await self._out_ready
            finally:
                self._out_ready = None

    def _timed_out(self, item: TimedOut) -> BatchTimeoutError:
        entries = sorted(item.entries, key=lambda entry: entry.order)
        self._counts.timed_out = len(entries)
        self._notify()
        pending = [self._wrap(last_seen(entry)) for entry in entries]
        names = [entry.name for entry in entries]
        return BatchTimeoutError(
            f"{len(entries)} operation(s) still running after the batch timeout of {self._timeout} s",
            pending=pending,
            pending_names=names,
            timeout=self._timeout,
            last_errors=[
                None
                if entry.last_error is None
                else _core.rpc_error(entry.last_error, method="GetOperation", operation_name=entry.name)
                for entry in entries
            ],
        )

    def _notify(self) -> None:
        if self._progress is not None:
            self._progress(self._counts.snapshot())

    def _signal_out(self) -> None:
        if self._out_ready is not None and not self._out_ready.done():
            self._out_ready.set_result(None)

    def _emit(self, item: tuple[str, T, bool] | TimedOut | Aborted) -> None:
        self._out.append(item)
        self._signal_out()

    # ----------------------------------------------------------------- what the scheduler reports

    def _start(self) -> None:
        self._started = True
        self._notify()
        if self._finished:
            return
        if self._deadline.expired(time.monotonic()):
            self._expired(self._backlog)
            self._backlog = []
            return
        backlog, self._backlog = self._backlog, []
        self._scheduler.attach(self._subscription, backlog)

    def _expired(self, leftovers: list[Entry]) -> None:
        """The deadline passed: report what is left."""
        self._finished = True
        if leftovers:
            self._emit(TimedOut(leftovers))
        else:  # nothing was running (keep_open with everything reported): just the end
            self._signal_out()

    def _complete(self, entry: Entry, pb: operations_pb2.Operation) -> None:
        self._known[entry.name] = None
        if self._journal is not None:
            self._journal.record(entry.name, pb)
        self._emit((entry.name, self._wrap(pb), _core.operation_failed(pb)))


class _Subscription:
    """A waiter as its scheduler sees it: the :class:`~lro_grpc._batch._ports.Subscriber` port."""

    __slots__ = ("_waiter", "deadline", "rpc_timeout")

    def __init__(self, waiter: BatchWaiter[Any], deadline: Deadline, rpc_timeout: float | None) -> None:
        self._waiter = waiter
        self.deadline = deadline
        self.rpc_timeout = rpc_timeout

    def polled(self) -> None:
        self._waiter.polls += 1

    def deliver(self, entry: Entry, pb: operations_pb2.Operation) -> None:
        self._waiter._complete(entry, pb)

    def expire(self, entries: list[Entry]) -> None:
        self._waiter._expired(entries)

    def abort(self, error: BaseException) -> None:
        self._waiter._emit(Aborted(error))


async def as_completed(
    client: BatchSource[T] | BatchClient[T],
    names: Iterable[str] | None,
    *,
    timeout: Duration | None = None,
    poll_policy: PollPolicy | None = None,
    max_in_flight: int | None = None,
    qps: float | None = None,
    progress: Callable[[BatchProgress], object] | None = None,
    rpc_timeout: Duration | None = DEFAULT_BATCH_RPC_TIMEOUT,
    journal: JournalPath | None = None,
) -> AsyncIterator[T]:
    """Yield each operation as soon as a poll sees it finished.

    Failed, cancelled and not-found operations are yielded like the others
    (check ``op.error``); they do not stop the batch. See :class:`BatchWaiter`
    for the arguments (``journal`` included: with one, a restarted job
    resumes); to add operations while waiting, use a :class:`BatchWaiter` directly.

    Raises:
        BatchTimeoutError: after the last operation that finished in time, if
            some were still running at the deadline (they are its ``pending``).
        TypeError, ValueError: invalid arguments (before any RPC).
        JournalError: the journal cannot be used (see :class:`BatchWaiter`).
    """
    waiter = BatchWaiter(
        client,
        names,
        timeout=timeout,
        poll_policy=poll_policy,
        max_in_flight=max_in_flight,
        qps=qps,
        progress=progress,
        rpc_timeout=rpc_timeout,
        journal=journal,
    )
    try:
        async for handle in waiter:
            yield handle
    finally:
        await waiter.aclose()


async def wait_all(
    client: BatchSource[T] | BatchClient[T],
    names: Iterable[str] | None,
    *,
    timeout: Duration | None = None,
    poll_policy: PollPolicy | None = None,
    max_in_flight: int | None = None,
    qps: float | None = None,
    progress: Callable[[BatchProgress], object] | None = None,
    rpc_timeout: Duration | None = DEFAULT_BATCH_RPC_TIMEOUT,
    journal: JournalPath | None = None,
) -> list[T]:
    """Wait for every operation; return them in input order.

    A name given twice is polled once; its result appears at both positions.
    Failed, cancelled and not-found operations are results, not exceptions.
    With a ``journal`` (see :class:`BatchWaiter`), every outcome recorded in
    it is returned from it without an RPC, the others are polled, and all
    count as delivered once this returns; ``names=None`` means every name
    in the journal, in the order recorded.

    Raises:
        BatchTimeoutError: some operations were still running at the
            deadline; its ``results`` holds every name's finished operation or
            last seen state, in input order.
        TypeError, ValueError: invalid arguments (before any RPC).
        JournalError: the journal cannot be used (see :class:`BatchWaiter`).
    """
    ordered = None if names is None else check_names(names)
    opened = None
    if journal is not None:
        opened = open_journal(client, journal, ordered, replay_delivered=True, waiter_marks=False)
    try:
        if opened is not None and ordered is None:
            ordered = check_names(opened.names)
        waiter = BatchWaiter(
            client,
            ordered,
            timeout=timeout,
            poll_policy=poll_policy,
            max_in_flight=max_in_flight,
            qps=qps,
            progress=progress,
            rpc_timeout=rpc_timeout,
            journal=opened,
        )
        assert ordered is not None  # BatchWaiter refuses None without a journal
        finished: dict[str, T] = {}
        try:
            while True:
                try:
                    name, handle = await waiter._next_pair()
                except StopAsyncIteration:
                    break
                except BatchTimeoutError as error:
                    raise with_results(error, ordered, finished) from None
                finished[name] = handle
        finally:
            await waiter.aclose()
        if opened is not None:
            opened.deliver_all()
    finally:
        if opened is not None:
            opened.close()
    return [finished[name] for name in ordered]


def with_results(error: BatchTimeoutError, ordered: list[str], finished: dict[str, Any]) -> BatchTimeoutError:
    last_seen = dict(zip(error.pending_names, error.pending, strict=True))
    results = [finished[name] if name in finished else last_seen[name] for name in ordered]
    return BatchTimeoutError(
        str(error),
        pending=error.pending,
        pending_names=error.pending_names,
        results=results,
        timeout=error.timeout,
        last_errors=error.last_errors,
    )
