"""The batch scheduler: one heap of due operations, one dispatcher, a bounded set of workers.

It decides *when* each tracked operation is looked at and keeps every shared
limit (RPCs in flight, calls per second, the ``RESOURCE_EXHAUSTED`` pause,
each waiter's deadline). *How* an operation is looked at is a strategy's
business: its own GetOperation (:mod:`._per_operation`) or a listing round
of its whole list scope (:mod:`._sweep`). A due operation is offered to the
sweep first; if it declines, the operation is polled on its own.

The heap holds operations looked at one by one, and one
:class:`~lro_grpc._batch._ports.Ticket` per swept scope for its next listing
round: a swept scope's operations wait in its table, not in the heap.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import math
import random
import time
from collections.abc import Iterable

from google.longrunning import operations_pb2

from lro_grpc._batch._limits import Throttle, TokenBucket
from lro_grpc._batch._per_operation import PerOperation
from lro_grpc._batch._ports import GONE, POLLING, QUEUED, Entry, Fetch, ListPage, Subscriber, Ticket
from lro_grpc._batch._settings import DEFAULT_MAX_IN_FLIGHT, check_limits
from lro_grpc._batch._sweep import Round, Sweeper
from lro_grpc._batch._timing import RETRY_INITIAL, coalesce, nominal_delay
from lro_grpc._core import RpcFailure, retry_info_delay

__all__ = ["BatchScheduler"]

_log = logging.getLogger("lro_grpc.batch")

Job = Entry | Round
"""What a worker runs: one operation's own poll, or a listing round of a scope."""


class BatchScheduler:
    """The poll scheduler: one heap, one dispatcher, a bounded set of workers.

    Every :class:`~lro_grpc.BatchWaiter` attached to a scheduler shares its
    limits: at most ``max_in_flight`` RPCs at once, at most ``qps`` calls per
    second, and one ``RESOURCE_EXHAUSTED`` pause. An
    :class:`~lro_grpc.AsyncOperationsClient` owns one scheduler (made on first
    use, limits set by its ``batch_max_in_flight`` and ``batch_qps``), so all
    of its batches stay under one budget however many run at once.

    With ``list_fetch``, operations that share a list scope (a Financial
    Services location, a Service Management service) are looked at by
    sweeping that scope's running operations with ListOperations whenever
    that costs fewer calls than polling them one by one (see
    :mod:`lro_grpc._batch._sweep`).

    The scheduler runs only while a waiter is attached: its dispatcher and
    workers end when the last one detaches, and start again with the next.
    It belongs to the event loop it first ran on.

    Waiters subscribe through :meth:`attach` and leave through :meth:`detach`;
    the scheduler reaches them only through the
    :class:`~lro_grpc._batch._ports.Subscriber` port, and its strategies reach
    it through :class:`~lro_grpc._batch._ports.Scheduling`.

    Args:
        fetch: one GetOperation attempt: ``await fetch(name, deadline=...,
            rpc_timeout=...)``, the operation or an ``RpcFailure`` (a
            :class:`~lro_grpc._batch.BatchSource`'s ``fetch``).
        max_in_flight: RPCs in flight at most.
        qps: calls per second at most (GetOperation and ListOperations pages); ``None`` for no budget.
        list_fetch: one ListOperations page attempt: ``await list_fetch(request,
            deadline=..., rpc_timeout=...)``; ``None`` polls every operation on its own.
    """

    def __init__(
        self,
        fetch: Fetch,
        *,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        qps: float | None = None,
        list_fetch: ListPage | None = None,
    ) -> None:
        if not callable(fetch):
            raise TypeError(f"fetch must be callable, got {fetch!r}")
        if list_fetch is not None and not callable(list_fetch):
            raise TypeError(f"list_fetch must be callable or None, got {list_fetch!r}")
        max_in_flight, qps = check_limits(max_in_flight, qps)
        self.max_in_flight = max_in_flight
        self.qps = qps
        self._bucket = None if qps is None else TokenBucket(qps, time.monotonic())
        self.throttle = Throttle()
        self.rng = random.Random()
        self._order = itertools.count()
        self._seq = itertools.count()
        self.calls: dict[str, int] = {"GetOperation": 0, "ListOperations": 0}
        """RPCs started by this scheduler, by method (the client's own retries not counted)."""

        self._per_operation = PerOperation(self, fetch)
        self._sweeper = None if list_fetch is None else Sweeper(self, list_fetch)
        self._heap: list[tuple[float, int, Entry | Ticket]] = []
        # Entries being polled on their own -> the worker polling them (None until it starts).
        self.in_flight: dict[Entry, asyncio.Task[None] | None] = {}
        # Entries in a swept scope's table, or claimed by a listing round of their scope.
        self.sweeping: set[Entry] = set()
        self._waiters: set[Subscriber] = set()
        self._dispatcher: asyncio.Task[None] | None = None
        self._workers: set[asyncio.Task[None]] = set()
        self._stopping: set[asyncio.Task[None]] = set()  # cancelled, not yet finished
        self._idle: list[asyncio.Future[Job]] = []
        self._wakeup: asyncio.Future[None] | None = None
        self._sleeping_until = -math.inf  # when the dispatcher wakes by itself (-inf: it is awake)
        self._needs_worker = False  # the dispatcher has a due operation and no free worker

    @property
    def sweeps(self) -> bool:
        """Whether this scheduler sweeps list scopes (it was given a ``list_fetch``)."""
        return self._sweeper is not None

    # ----------------------------------------------------------------- waiters

    @property
    def waiters(self) -> int:
        """Waiters attached now."""
        return len(self._waiters)

    def attach(self, waiter: Subscriber, entries: Iterable[Entry]) -> None:
        """Start polling ``waiter``'s operations (in the running event loop)."""
        self._waiters.add(waiter)
        self.schedule(entries)
        if self._dispatcher is None:
            loop = asyncio.get_running_loop()
            self._dispatcher = loop.create_task(self._dispatch(), name="lro-grpc-batch-dispatch")
        self._wake()  # its deadline may be the earliest

    def schedule(self, entries: Iterable[Entry]) -> None:
        """Start polling more operations of an attached waiter."""
        now = time.monotonic()
        sweeper = self._sweeper
        for entry in entries:
            if sweeper is not None:
                sweeper.track(entry)
            self.push(entry, now)

    def next_order(self) -> int:
        """The insertion order of the next entry (input order across waiters)."""
        return next(self._order)

    def _remove(self, waiter: Subscriber) -> tuple[list[Entry], list[asyncio.Task[None]]]:
        """Take ``waiter``'s operations out: queued, claimed by a sweep, and in flight (their workers cancelled)."""
        self._waiters.discard(waiter)
        kept: list[tuple[float, int, Entry | Ticket]] = []
        left: list[Entry] = []
        for item in self._heap:
            entry = item[2]
            if entry.seq != item[1] or entry.state != QUEUED:
                continue  # stale: dropped while rebuilding
            if type(entry) is Entry and entry.waiter is waiter:
                left.append(entry)
            else:
                kept.append(item)
        heapq.heapify(kept)
        self._heap = kept
        for entry in [entry for entry in self.sweeping if entry.waiter is waiter]:
            self.sweeping.discard(entry)
            left.append(entry)
        cancelled: list[asyncio.Task[None]] = []
        for entry in [entry for entry in self.in_flight if entry.waiter is waiter]:
            task = self.in_flight.pop(entry)
            left.append(entry)
            if task is not None and not task.done():
                self._retire(task)
                cancelled.append(task)
        for entry in left:
            self._forget(entry)
        if not self._waiters:
            cancelled.extend(self._stop())
        else:
            self._wake()
        return left, cancelled

    def _retire(self, task: asyncio.Task[None]) -> None:
        task.cancel()
        self._workers.discard(task)
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    def _stop(self) -> list[asyncio.Task[None]]:
        """No waiter is left: cancel the dispatcher and the idle workers."""
        tasks = [*self._workers]
        if self._dispatcher is not None:
            tasks.append(self._dispatcher)
        self._dispatcher = None
        self._idle = []
        for task in tasks:
            if not task.done():
                self._retire(task)
        self._workers = set()
        return tasks

    async def detach(self, waiter: Subscriber) -> None:
        """Stop polling ``waiter``'s operations; returns once no task of the scheduler polls them."""
        _, cancelled = self._remove(waiter)
        current = asyncio.current_task()
        waiting = [task for task in {*cancelled, *self._stopping} if task is not current]
        if waiting:
            await asyncio.gather(*waiting, return_exceptions=True)

    async def aclose(self, error: BaseException | None = None) -> None:
        """Detach every waiter (they end with ``error``, if given) and stop. Idempotent."""
        for waiter in list(self._waiters):
            if error is not None:
                waiter.abort(error)
            self._remove(waiter)
        self._stop()
        current = asyncio.current_task()
        waiting = [task for task in self._stopping if task is not current]
        if waiting:
            await asyncio.gather(*waiting, return_exceptions=True)

    # ----------------------------------------------------------------- the entries' lifecycle (strategies call these)

    def push(self, entry: Entry, due: float) -> None:
        """Queue ``entry`` to be looked at at ``due`` (any older heap item of it turns stale)."""
        self._enqueue(entry, due)

    def push_round(self, ticket: Ticket, due: float) -> None:
        """Queue a scope's next listing round at ``due`` (any older heap item of it turns stale)."""
        self._enqueue(ticket, due)

    def _enqueue(self, item: Entry | Ticket, due: float) -> None:
        seq = next(self._seq)
        item.seq = seq
        item.due = due
        item.state = QUEUED
        heapq.heappush(self._heap, (due, seq, item))
        if due < self._sleeping_until:
            self._wake()

    def requeue(self, entry: Entry, started: float) -> None:
        """``entry`` was seen running by a look started at ``started``: queue its next look."""
        delay = entry.policy.delay(entry.attempts, rng=self.rng)
        entry.attempts += 1
        self.push(entry, coalesce(started + delay, delay))

    def refused(self, failure: RpcFailure, rpc_started: float) -> None:
        """An RPC started at ``rpc_started`` was refused for quota: pause every look (see :class:`Throttle`)."""
        throttle = self.throttle
        now = time.monotonic()
        delay = retry_info_delay(failure.trailing_metadata)
        throttle.refused(now=now, rpc_started=rpc_started, retry_delay=delay, rng=self.rng)
        if _log.isEnabledFor(logging.INFO):
            _log.info(
                "RESOURCE_EXHAUSTED: the batch scheduler pauses every look for %.3f s (refusals in a row: %d)",
                throttle.resume_at - now,
                throttle.refusals,
                extra={"lro_code": "RESOURCE_EXHAUSTED", "lro_delay": throttle.resume_at - now},
            )

    def retry_later(self, entry: Entry) -> None:
        """A look at ``entry`` failed for a passing reason: try again after a backoff.

        The backoff starts at :data:`~lro_grpc._batch._timing.RETRY_INITIAL`,
        doubles with each consecutive failure (shortened by up to half at
        random) and never exceeds the entry's poll delay, so an operation that
        finished during an outage is seen at most one poll interval after the
        server is back. An answered look resets it.
        """
        failures = entry.failures
        entry.failures = failures + 1
        ceiling = nominal_delay(entry.policy, entry.attempts)
        backoff = min(ceiling, RETRY_INITIAL * 2.0 ** min(failures, 32)) * (0.5 + 0.5 * self.rng.random())
        self.push(entry, time.monotonic() + backoff)

    def finish(self, entry: Entry, pb: operations_pb2.Operation, *, answered_at: float | None = None) -> None:
        """``entry`` is done (``pb`` is its final state): report it to its waiter.

        ``answered_at``: when its own GetOperation's answer said so (listings
        shown later are held to it).
        """
        if answered_at is not None and self._sweeper is not None:
            self._sweeper.saw_done(entry, answered_at)
        self._forget(entry)
        entry.waiter.deliver(entry, pb)

    def _forget(self, entry: Entry) -> None:
        entry.state = GONE
        if self._sweeper is not None:
            self._sweeper.untrack(entry)

    def count_call(self, method: str, subscriber: Subscriber | None = None) -> None:
        """Count one RPC started (and, for a GetOperation, tell its subscriber)."""
        self.calls[method] += 1
        if subscriber is not None:
            subscriber.polled()

    async def call_slot(self) -> None:
        """Wait until the throttle and the calls-per-second budget allow one more call, and spend it.

        For calls made inside a running job (the second and later pages of a
        listing round); the dispatcher spends the first call of every job.
        """
        while True:
            now = time.monotonic()
            start = self.throttle.resume_at
            if self._bucket is not None:
                start = max(start, self._bucket.available_at(now))
            if start <= now:
                if self._bucket is not None:
                    self._bucket.take(now)
                return
            await asyncio.sleep(start - now)

    # ----------------------------------------------------------------- scheduling

    def _wake(self) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    def _head(self) -> Entry | Ticket | None:
        """The earliest queued entry or round, dropping stale heap items on the way."""
        heap = self._heap
        while heap:
            _, seq, entry = heap[0]
            if entry.seq == seq and entry.state == QUEUED:
                return entry
            heapq.heappop(heap)
        return None

    def _next_start(self, now: float) -> float | None:
        """When the earliest due operation may be looked at (``None``: nothing is queued)."""
        head = self._head()
        if head is None:
            return None
        start = head.due
        if self.throttle.resume_at > start:
            start = self.throttle.resume_at
        if self._bucket is not None:
            start = max(start, self._bucket.available_at(now))
        return start

    def _take(self, now: float) -> Job | None:
        """Pop the earliest due item, spend one call, and decide how it is looked at.

        ``None`` (no call spent): it was a scope's round, not worth listing
        (the scope's operations are queued on their own instead), or an
        operation held until its scope's listing in flight ends.
        """
        entry = heapq.heappop(self._heap)[2]
        sweeper = self._sweeper
        if isinstance(entry, Ticket):
            sweep = None if sweeper is None else sweeper.round_due(entry, now)
            if sweep is not None and self._bucket is not None:
                self._bucket.take(now)
            return sweep
        if entry.scope is None or entry.confirm:
            sweeper = None  # polled on its own
        elif sweeper is not None and sweeper.hold(entry, now):
            return None  # held until its scope's listing in flight ends
        if self._bucket is not None:
            self._bucket.take(now)
        if sweeper is not None:
            sweep = sweeper.round_for(entry, now)
            if sweep is not None:
                return sweep
        entry.state = POLLING
        self.in_flight[entry] = None
        return entry

    def _expire_due(self, now: float) -> float | None:
        """Expire the waiters whose deadline passed; return the earliest deadline left."""
        earliest: float | None = None
        for waiter in list(self._waiters):
            deadline = waiter.deadline
            expires_at = deadline.expires_at
            if expires_at is None:
                continue
            if deadline.expired(now):
                left, _ = self._remove(waiter)
                waiter.expire(left)
            elif earliest is None or expires_at < earliest:
                earliest = expires_at
        return earliest

    async def _dispatch(self) -> None:
        loop = asyncio.get_running_loop()
        timer: asyncio.TimerHandle | None = None
        try:
            while self._waiters:
                now = time.monotonic()
                wake_at = self._expire_due(now)
                if not self._waiters:
                    break
                self._needs_worker = False
                start = self._next_start(now)
                if start is not None:
                    if start <= now:
                        idle = self._idle
                        while idle and idle[-1].done():  # its worker was cancelled
                            idle.pop()
                        if idle or len(self._workers) < self.max_in_flight:
                            job = self._take(now)
                            if job is None:
                                continue
                            if idle:
                                idle.pop().set_result(job)
                            else:
                                worker = loop.create_task(self._work(job), name="lro-grpc-batch-worker")
                                self._workers.add(worker)
                                worker.add_done_callback(self._workers.discard)
                            continue
                        self._needs_worker = True  # every worker is busy: the first one free wakes us
                    else:
                        wake_at = start if wake_at is None else min(wake_at, start)
                wakeup: asyncio.Future[None] = loop.create_future()
                self._wakeup = wakeup
                self._sleeping_until = math.inf if wake_at is None else wake_at
                if wake_at is not None:
                    timer = loop.call_later(max(0.0, wake_at - now), self._wake)
                try:
                    await wakeup
                finally:
                    if self._wakeup is wakeup:  # not yet replaced by a newer dispatcher
                        self._wakeup = None
                        self._sleeping_until = -math.inf
                    if timer is not None:
                        timer.cancel()
                        timer = None
        except asyncio.CancelledError:
            raise
        except Exception as error:  # a bug: end every batch loudly, through its consumer
            for waiter in list(self._waiters):
                waiter.abort(error)
                self._remove(waiter)
        if self._dispatcher is asyncio.current_task():
            self._stop()

    async def _work(self, job: Job) -> None:
        loop = asyncio.get_running_loop()
        per_operation = self._per_operation
        while True:
            try:
                if isinstance(job, Round):
                    await job.run()
                else:
                    await per_operation.poll(job)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # e.g. the client rejected a name: end that batch, through its consumer
                if type(job) is Entry:
                    self.in_flight.pop(job, None)  # so that removing its waiter does not cancel this worker
                for waiter in _waiters_of(job):
                    waiter.abort(error)
                    self._remove(waiter)
            # Under load, take the next due operation directly instead of going
            # through the dispatcher: one task switch less per poll.
            following = self._take_directly()
            if following is not None:
                job = following
                continue
            future: asyncio.Future[Job] = loop.create_future()
            self._idle.append(future)
            if self._needs_worker:
                self._wake()
            job = await future

    def _take_directly(self) -> Job | None:
        """The next due job for a worker that just finished one (``None``: none, or one for the dispatcher).

        One whose waiter is past its deadline is left to the dispatcher, which expires it first.
        """
        while True:
            now = time.monotonic()
            start = self._next_start(now)
            if start is None or start > now:
                return None
            head = self._heap[0][2]
            if head.expired(now) if isinstance(head, Ticket) else head.waiter.deadline.expired(now):
                return None
            job = self._take(now)
            if job is not None:
                return job


def _waiters_of(job: Job) -> set[Subscriber]:
    if isinstance(job, Round):
        return job.waiters()
    return {job.waiter}
