"""The batch waiter: one scheduler polling many operations over one channel.

A :class:`BatchWaiter` tracks any number of operations by name and reports
each one as soon as a poll sees it done. The polling is done by a
:class:`BatchScheduler`; an :class:`~lro_grpc.AsyncOperationsClient` owns one,
shared by all of its waiters, so their limits hold for the client as a whole.
No task, thread or polling loop exists per operation. The scheduler's parts:

* a heap of ``(next poll time, insertion order, entry)``: the earliest due
  operation is polled first, so no operation starves however many there are
  (and whichever waiter it belongs to);
* one dispatcher coroutine that pops due entries and hands each to an idle
  worker coroutine (a worker that has just finished a poll takes the next due
  entry itself); at most ``max_in_flight`` workers exist, so at most that
  many GetOperation RPCs are in flight (the default, 100, is the usual
  HTTP/2 ``MAX_CONCURRENT_STREAMS`` of one connection);
* next-poll times rounded onto a coarse grid (at most 1/40 of the poll delay
  off), so that polls due at nearly the same moment start, and wake the
  event loop, together;
* an optional calls-per-second budget (a token bucket) shared by every
  operation;
* a global throttle: a ``RESOURCE_EXHAUSTED`` answer pauses the whole
  scheduler for the server's ``google.rpc.RetryInfo`` delay (or, without one,
  a global backoff that grows while the server keeps refusing), and the
  operation is polled again afterwards, never failed for it.

Outcomes, not exceptions: an operation that finished with an error (failed,
cancelled) is reported like any other finished operation; so is one whose
GetOperation failed for good (``NOT_FOUND``: the name is wrong or the record
expired; or another non-transient code such as ``PERMISSION_DENIED``): it is
reported as done, with an error of that code (its ``google.rpc.ErrorInfo``
detail has domain :data:`SYNTHETIC_ERROR_DOMAIN`, telling it apart from an
error the server recorded on the operation). Transient RPC failures left over
after the client's own retries (``UNAVAILABLE``, ``DEADLINE_EXCEEDED``, ...)
just schedule the next poll.

Deadline: each waiter has its own. At its deadline the scheduler stops
polling that waiter's operations. Everything finished before it is reported
first; then :class:`BatchTimeoutError` is raised, carrying every operation
still running with its last seen state (nothing is dropped silently).

Memory: until an operation completes the scheduler keeps only its name, a few
numbers and the serialized bytes of its last seen state (a few hundred bytes
in all), never a handle or a message object.

The synchronous facade, :class:`SyncBatchRunner`, runs the same scheduler on
one background event loop thread.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import heapq
import itertools
import math
import queue
import random
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from typing import Any, Generic, Protocol, TypeVar

import grpc
from google.longrunning import operations_pb2
from google.rpc import error_details_pb2, status_pb2

from lro_grpc.errors import BatchTimeoutError, RpcError
from lro_grpc.names import validate_operation_name
from lro_grpc.policies import DEFAULT_POLL_POLICY, Deadline, Duration, PollPolicy, to_seconds

__all__ = [
    "DEFAULT_BATCH_RPC_TIMEOUT",
    "DEFAULT_MAX_IN_FLIGHT",
    "SYNTHETIC_ERROR_DOMAIN",
    "BatchProgress",
    "BatchScheduler",
    "BatchSource",
    "BatchTimeoutError",
    "BatchWaiter",
    "SyncBatchRunner",
    "SyncBatchWaiter",
    "as_completed",
    "wait_all",
]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
R = TypeVar("R")

DEFAULT_MAX_IN_FLIGHT = 100
"""GetOperation RPCs in flight at most: one HTTP/2 connection's usual stream limit."""

DEFAULT_BATCH_RPC_TIMEOUT = 10.0
"""Per-RPC timeout of one GetOperation poll (the APIs' published Get timeout)."""

SYNTHETIC_ERROR_DOMAIN = "lro-grpc.batch"
"""``ErrorInfo.domain`` of the error given to an operation whose GetOperation failed for good."""

# Codes after which the operation is simply polled again later: the client has
# already retried them; they say nothing about the operation itself.
_TRANSIENT_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.ABORTED,
    }
)

_COALESCE_MIN_DELAY = 0.02

# Global backoff after RESOURCE_EXHAUSTED without a RetryInfo delay.
_THROTTLE_INITIAL = 1.0
_THROTTLE_MULTIPLIER = 2.0
_THROTTLE_MAXIMUM = 30.0

_STATUS_DETAILS_KEY = "grpc-status-details-bin"
_RETRY_INFO_TYPE = "type.googleapis.com/" + error_details_pb2.RetryInfo.DESCRIPTOR.full_name


class BatchSource(Protocol[T_co]):
    """What the waiter needs from a client: one logical GetOperation, and a handle factory.

    :class:`lro_grpc.AsyncOperationsClient` provides both. Any object with
    these two methods works (a test double over a raw stub, for example).
    """

    def _get_operation_pb(
        self, name: str, *, deadline: Deadline, rpc_timeout: float | None = None
    ) -> Awaitable[operations_pb2.Operation]:
        """One GetOperation (with the client's retries), clipped to ``deadline``.

        Raises ``lro_grpc.errors.RpcError`` (or a raw ``grpc.RpcError``) on failure.
        """
        ...

    def _wrap(self, pb: operations_pb2.Operation) -> T_co:
        """The handle the waiter reports for a finished (or timed out) operation."""
        ...


@dataclasses.dataclass(frozen=True)
class BatchProgress:
    """Counts passed to a waiter's ``progress`` callback.

    Attributes:
        done: operations reported finished, whatever the outcome.
        failed: of those, the ones that finished with an error (failed,
            cancelled, or not found).
        pending: operations still being polled.
        timed_out: operations still running when the deadline passed.
    """

    done: int
    failed: int
    pending: int
    timed_out: int = 0

    @property
    def succeeded(self) -> int:
        """Operations that finished without an error."""
        return self.done - self.failed

    @property
    def total(self) -> int:
        """Distinct operations tracked."""
        return self.done + self.pending + self.timed_out


# --------------------------------------------------------------------------- sans-I/O parts


class _TokenBucket:
    """Calls-per-second budget: a bucket of capacity one, refilled at ``rate`` per second.

    Capacity one means no burst: in any window of ``w`` seconds at most
    ``1 + rate * w`` calls start.
    """

    __slots__ = ("rate", "tokens", "updated")

    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate
        self.tokens = 1.0
        self.updated = now

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(1.0, self.tokens + (now - self.updated) * self.rate)
            self.updated = now

    def available_at(self, now: float) -> float:
        """When the next call may start (``now`` if it may start now)."""
        self._refill(now)
        if self.tokens >= 1.0:
            return now
        return now + (1.0 - self.tokens) / self.rate

    def take(self, now: float) -> None:
        """Spend one token (the caller checked :meth:`available_at`)."""
        self._refill(now)
        self.tokens -= 1.0


class _Throttle:
    """BatchScheduler-wide pause after RESOURCE_EXHAUSTED.

    The pause is the server's RetryInfo delay when given, else a backoff that
    doubles (1 s up to 30 s, shortened by up to half at random) for each
    refusal of an RPC started after the previous pause began; refusals of RPCs
    that were already in flight extend the pause without growing it. A
    successful RPC resets the backoff.
    """

    __slots__ = ("paused_at", "refusals", "resume_at")

    def __init__(self) -> None:
        self.resume_at = -math.inf
        self.paused_at = -math.inf
        self.refusals = 0

    def refused(self, *, now: float, rpc_started: float, retry_delay: float | None, rng: random.Random) -> None:
        """Record a RESOURCE_EXHAUSTED answer to an RPC started at ``rpc_started``."""
        if rpc_started >= self.paused_at:
            self.refusals += 1
            self.paused_at = now
        if retry_delay is None:
            base = min(_THROTTLE_MAXIMUM, _THROTTLE_INITIAL * _THROTTLE_MULTIPLIER ** max(0, self.refusals - 1))
            retry_delay = base * (0.5 + 0.5 * rng.random())
        self.resume_at = max(self.resume_at, now + retry_delay)

    def succeeded(self) -> None:
        """Record a successful RPC."""
        self.refusals = 0


class _Counts:
    """Progress counting shared by the async and sync iterators."""

    __slots__ = ("done", "failed", "timed_out", "tracked")

    def __init__(self) -> None:
        self.tracked = 0
        self.done = 0
        self.failed = 0
        self.timed_out = 0

    def snapshot(self) -> BatchProgress:
        pending = self.tracked - self.done - self.timed_out
        return BatchProgress(done=self.done, failed=self.failed, pending=pending, timed_out=self.timed_out)


class _Entry:
    """One tracked operation: small on purpose (see the module docstring)."""

    __slots__ = ("attempts", "last_seen", "name", "order", "policy", "waiter")

    def __init__(self, waiter: BatchWaiter[Any], name: str, order: int, policy: PollPolicy) -> None:
        self.waiter = waiter
        self.name = name
        self.order = order
        self.policy = policy
        self.attempts = 0
        self.last_seen: bytes | None = None


def _check_names(names: Iterable[str]) -> list[str]:
    if isinstance(names, str | bytes):
        raise TypeError(f"names must be an iterable of operation names, not a single {type(names).__name__}: {names!r}")
    try:
        checked = list(names)
    except TypeError:
        raise TypeError(f"names must be an iterable of operation names, got {names!r}") from None
    for name in checked:
        validate_operation_name(name)
    return checked


def _check_settings(
    timeout: Duration | None,
    poll_policy: PollPolicy | None,
    rpc_timeout: Duration | None,
    progress: Callable[[BatchProgress], object] | None,
) -> tuple[float | None, PollPolicy, float | None]:
    timeout_s = None if timeout is None else to_seconds(timeout, what="timeout")
    if poll_policy is None:
        poll_policy = DEFAULT_POLL_POLICY
    elif not isinstance(poll_policy, PollPolicy):
        raise TypeError(f"poll_policy must be a PollPolicy, got {poll_policy!r}")
    rpc_timeout_s = None if rpc_timeout is None else to_seconds(rpc_timeout, what="rpc_timeout")
    if rpc_timeout_s is not None and rpc_timeout_s <= 0:
        raise ValueError(f"rpc_timeout must be > 0, got {rpc_timeout!r}")
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be callable, got {progress!r}")
    return timeout_s, poll_policy, rpc_timeout_s


def _check_limits(max_in_flight: int, qps: float | None, *, prefix: str = "") -> tuple[int, float | None]:
    if isinstance(max_in_flight, bool) or not isinstance(max_in_flight, int):
        raise TypeError(f"{prefix}max_in_flight must be an int, got {max_in_flight!r}")
    if max_in_flight < 1:
        raise ValueError(f"{prefix}max_in_flight must be >= 1, got {max_in_flight!r}")
    if qps is not None:
        if isinstance(qps, bool) or not isinstance(qps, int | float):
            raise TypeError(f"{prefix}qps must be a number of calls per second or None, got {qps!r}")
        if not math.isfinite(qps) or qps <= 0:
            raise ValueError(f"{prefix}qps must be a finite number > 0, got {qps!r}")
        qps = float(qps)
    return max_in_flight, qps


def _own_limits(max_in_flight: int | None, qps: float | None) -> tuple[int, float | None] | None:
    """A waiter's own scheduler limits, checked; ``None`` when neither is given (share the client's)."""
    if max_in_flight is None and qps is None:
        return None
    return _check_limits(DEFAULT_MAX_IN_FLIGHT if max_in_flight is None else max_in_flight, qps)


def _rpc_code(exc: BaseException) -> grpc.StatusCode | None:
    if isinstance(exc, RpcError):
        return exc.code
    if isinstance(exc, grpc.RpcError):
        code = getattr(exc, "code", None)
        if callable(code):
            value = code()
            return value if isinstance(value, grpc.StatusCode) else grpc.StatusCode.UNKNOWN
    return None


def _rpc_details(exc: BaseException) -> str:
    if isinstance(exc, RpcError):
        return exc.details
    details = getattr(exc, "details", None)
    if callable(details):
        value = details()
        if isinstance(value, str):
            return value
    return str(exc)


def _retry_delay(exc: BaseException) -> float | None:
    """The ``google.rpc.RetryInfo`` delay a failed RPC carried, in seconds, if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        delay = getattr(current, "retry_delay", None)
        if isinstance(delay, int | float) and not isinstance(delay, bool) and delay >= 0:
            return float(delay)
        trailing = getattr(current, "trailing_metadata", None)
        if callable(trailing):
            try:
                pairs = trailing() or ()
            except Exception:  # a half-built error object: no RetryInfo to find
                pairs = ()
            for key, value in pairs:
                if key == _STATUS_DETAILS_KEY and isinstance(value, bytes):
                    found = _retry_delay_from_status(value)
                    if found is not None:
                        return found
        current = current.__cause__
    return None


def _retry_delay_from_status(serialized: bytes) -> float | None:
    try:
        status = status_pb2.Status.FromString(serialized)
    except Exception:  # corrupt details: ignore them, fall back to the global backoff
        return None
    for detail in status.details:
        if detail.type_url == _RETRY_INFO_TYPE:
            info = error_details_pb2.RetryInfo()
            if detail.Unpack(info):
                return float(info.retry_delay.seconds + info.retry_delay.nanos / 1e9)
    return None


def _synthetic_failure(name: str, code: grpc.StatusCode, details: str) -> operations_pb2.Operation:
    """A done operation whose error says why GetOperation failed for good."""
    info = error_details_pb2.ErrorInfo(
        reason=code.name, domain=SYNTHETIC_ERROR_DOMAIN, metadata={"method": "GetOperation"}
    )
    message = f"GetOperation failed: {code.name}: {details}"
    if code is grpc.StatusCode.NOT_FOUND:
        message += " (the operation does not exist, or its record expired)"
    status = status_pb2.Status(code=code.value[0], message=message)
    status.details.add().Pack(info)
    return operations_pb2.Operation(name=name, done=True, error=status)


def _coalesce(due: float, delay: float) -> float:
    """``due`` moved to the nearest point of a grid at most 1/20 of ``delay`` apart.

    Polls due at nearly the same time then start together, and so do their
    answers: the event loop and gRPC wake once for the group instead of once
    per poll. Grid steps are powers of two, so the grids of different delays
    share points. No operation is polled more than ``delay / 40`` earlier or
    later than its policy says; delays under 20 ms are left alone.
    """
    if delay < _COALESCE_MIN_DELAY:
        return due
    step = 2.0 ** math.floor(math.log2(delay / 20.0))
    return round(due / step) * step


def _last_seen(entry: _Entry) -> operations_pb2.Operation:
    if entry.last_seen is None:
        return operations_pb2.Operation(name=entry.name)
    return operations_pb2.Operation.FromString(entry.last_seen)


# Items of a waiter's output queue, besides (name, handle, failed) triples.
class _TimedOut:
    __slots__ = ("entries",)

    def __init__(self, entries: list[_Entry]) -> None:
        self.entries = entries


class _Aborted:
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


_MISSING: Any = object()


# --------------------------------------------------------------------------- the async scheduler


class BatchScheduler:
    """The poll scheduler: one heap, one dispatcher, a bounded set of workers.

    Every :class:`BatchWaiter` attached to a scheduler shares its limits: at
    most ``max_in_flight`` GetOperation RPCs at once, at most ``qps`` calls
    per second, and one ``RESOURCE_EXHAUSTED`` pause. An
    :class:`~lro_grpc.AsyncOperationsClient` owns one scheduler (made on first
    use, limits set by its ``batch_max_in_flight`` and ``batch_qps``), so all
    of its batches stay under one budget however many run at once.

    The scheduler runs only while a waiter is attached: its dispatcher and
    workers end when the last one detaches, and start again with the next.
    It belongs to the event loop it first ran on.

    Args:
        fetch: one logical GetOperation: ``await fetch(name, deadline=...,
            rpc_timeout=...)`` (a :class:`BatchSource`'s ``_get_operation_pb``).
        max_in_flight: GetOperation RPCs in flight at most.
        qps: GetOperation calls per second at most; ``None`` for no budget.
    """

    def __init__(
        self,
        fetch: Callable[..., Awaitable[operations_pb2.Operation]],
        *,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        qps: float | None = None,
    ) -> None:
        if not callable(fetch):
            raise TypeError(f"fetch must be callable, got {fetch!r}")
        max_in_flight, qps = _check_limits(max_in_flight, qps)
        self._fetch = fetch
        self.max_in_flight = max_in_flight
        self.qps = qps
        self._bucket = None if qps is None else _TokenBucket(qps, time.monotonic())
        self._throttle = _Throttle()
        self._rng = random.Random()
        self._order = itertools.count()

        self._heap: list[tuple[float, int, _Entry]] = []
        # Entries being polled -> the worker polling them (None until it starts).
        self._in_flight: dict[_Entry, asyncio.Task[None] | None] = {}
        self._waiters: set[BatchWaiter[Any]] = set()
        self._dispatcher: asyncio.Task[None] | None = None
        self._workers: set[asyncio.Task[None]] = set()
        self._stopping: set[asyncio.Task[None]] = set()  # cancelled, not yet finished
        self._idle: list[asyncio.Future[_Entry]] = []
        self._wakeup: asyncio.Future[None] | None = None
        self._sleeping_until = -math.inf  # when the dispatcher wakes by itself (-inf: it is awake)
        self._needs_worker = False  # the dispatcher has a due operation and no free worker

    # ----------------------------------------------------------------- waiters

    @property
    def waiters(self) -> int:
        """Waiters attached now."""
        return len(self._waiters)

    def _attach(self, waiter: BatchWaiter[Any], entries: Iterable[_Entry]) -> None:
        """Start polling ``waiter``'s operations (in the running event loop)."""
        self._waiters.add(waiter)
        self._schedule(entries)
        if self._dispatcher is None:
            loop = asyncio.get_running_loop()
            self._dispatcher = loop.create_task(self._dispatch(), name="lro-grpc-batch-dispatch")
        self._wake()  # its deadline may be the earliest

    def _schedule(self, entries: Iterable[_Entry]) -> None:
        now = time.monotonic()
        for entry in entries:
            heapq.heappush(self._heap, (now, entry.order, entry))
        self._wake()

    def _next_order(self) -> int:
        return next(self._order)

    def _remove(self, waiter: BatchWaiter[Any]) -> tuple[list[_Entry], list[asyncio.Task[None]]]:
        """Take ``waiter``'s operations out: queued ones and in-flight ones (whose workers are cancelled)."""
        self._waiters.discard(waiter)
        kept: list[tuple[float, int, _Entry]] = []
        left: list[_Entry] = []
        for item in self._heap:
            if item[2].waiter is waiter:
                left.append(item[2])
            else:
                kept.append(item)
        if left:
            heapq.heapify(kept)
            self._heap = kept
        cancelled: list[asyncio.Task[None]] = []
        for entry in [entry for entry in self._in_flight if entry.waiter is waiter]:
            task = self._in_flight.pop(entry)
            left.append(entry)
            if task is not None and not task.done():
                self._retire(task)
                cancelled.append(task)
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

    async def _detach(self, waiter: BatchWaiter[Any]) -> None:
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
                waiter._emit(_Aborted(error))
            self._remove(waiter)
        self._stop()
        current = asyncio.current_task()
        waiting = [task for task in self._stopping if task is not current]
        if waiting:
            await asyncio.gather(*waiting, return_exceptions=True)

    # ----------------------------------------------------------------- scheduling

    def _wake(self) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    def _next_start(self, now: float) -> float | None:
        """When the earliest due operation may be polled (``None``: nothing is queued)."""
        heap = self._heap
        if not heap:
            return None
        start = heap[0][0]
        if self._throttle.resume_at > start:
            start = self._throttle.resume_at
        if self._bucket is not None:
            start = max(start, self._bucket.available_at(now))
        return start

    def _take(self, now: float) -> _Entry:
        """Pop the earliest due operation and count its poll as started."""
        entry = heapq.heappop(self._heap)[2]
        if self._bucket is not None:
            self._bucket.take(now)
        self._in_flight[entry] = None
        entry.waiter.polls += 1
        return entry

    def _expire_due(self, now: float) -> float | None:
        """Expire the waiters whose deadline passed; return the earliest deadline left."""
        earliest: float | None = None
        for waiter in list(self._waiters):
            expires_at = waiter._deadline.expires_at
            if expires_at is None:
                continue
            if waiter._deadline.expired(now):
                left, _ = self._remove(waiter)
                waiter._expired(left)
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
                        if idle:
                            idle.pop().set_result(self._take(now))
                            continue
                        if len(self._workers) < self.max_in_flight:
                            worker = loop.create_task(self._work(self._take(now)), name="lro-grpc-batch-worker")
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
                waiter._emit(_Aborted(error))
                self._remove(waiter)
        if self._dispatcher is asyncio.current_task():
            self._stop()

    async def _work(self, entry: _Entry) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                await self._poll(entry)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # e.g. the client rejected a name: end that batch, through its consumer
                waiter = entry.waiter
                self._in_flight.pop(entry, None)
                waiter._emit(_Aborted(error))
                self._remove(waiter)
            # Under load, take the next due operation directly instead of going
            # through the dispatcher: one task switch less per poll.
            now = time.monotonic()
            start = self._next_start(now)
            if start is not None and start <= now and not self._heap[0][2].waiter._deadline.expired(now):
                entry = self._take(now)
                continue
            future: asyncio.Future[_Entry] = loop.create_future()
            self._idle.append(future)
            if self._needs_worker:
                self._wake()
            entry = await future

    async def _poll(self, entry: _Entry) -> None:
        if entry not in self._in_flight:  # its waiter went away before this worker started
            return
        self._in_flight[entry] = asyncio.current_task()
        waiter = entry.waiter
        started = time.monotonic()
        try:
            pb = await self._fetch(entry.name, deadline=waiter._deadline, rpc_timeout=waiter._rpc_timeout)
        except asyncio.CancelledError:
            raise
        except (RpcError, grpc.RpcError) as error:
            if self._in_flight.pop(entry, _MISSING) is not _MISSING:  # else: its waiter went away meanwhile
                self._failed_rpc(entry, error, started)
            return
        except TimeoutError:
            # The client gave up at the waiter's deadline; the dispatcher reports the operation.
            if self._in_flight.pop(entry, _MISSING) is not _MISSING:
                self._requeue(entry, started)
            return
        if self._in_flight.pop(entry, _MISSING) is _MISSING:
            return
        self._throttle.succeeded()
        if pb.done:
            waiter._complete(entry, pb)
        else:
            entry.last_seen = pb.SerializeToString()
            self._requeue(entry, started)

    def _requeue(self, entry: _Entry, started: float) -> None:
        delay = entry.policy.delay(entry.attempts, rng=self._rng)
        entry.attempts += 1
        self._push(entry, _coalesce(started + delay, delay))

    def _push(self, entry: _Entry, due: float) -> None:
        heapq.heappush(self._heap, (due, entry.order, entry))
        if due < self._sleeping_until:
            self._wake()

    def _failed_rpc(self, entry: _Entry, error: BaseException, started: float) -> None:
        code = _rpc_code(error) or grpc.StatusCode.UNKNOWN
        if code is grpc.StatusCode.RESOURCE_EXHAUSTED:
            self._throttle.refused(
                now=time.monotonic(), rpc_started=started, retry_delay=_retry_delay(error), rng=self._rng
            )
            # Same due time as before: it goes first once the pause is over.
            self._push(entry, started)
        elif code in _TRANSIENT_CODES:
            self._requeue(entry, started)
        else:
            entry.waiter._complete(entry, _synthetic_failure(entry.name, code, _rpc_details(error)))


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

    Raises:
        TypeError, ValueError: an argument is of the wrong type or out of range.
        InvalidNameError: a name is malformed (before any RPC).
    """

    def __init__(
        self,
        client: BatchSource[T],
        names: Iterable[str] = (),
        *,
        timeout: Duration | None = None,
        poll_policy: PollPolicy | None = None,
        max_in_flight: int | None = None,
        qps: float | None = None,
        progress: Callable[[BatchProgress], object] | None = None,
        rpc_timeout: Duration | None = DEFAULT_BATCH_RPC_TIMEOUT,
        keep_open: bool = False,
    ) -> None:
        names = _check_names(names)
        timeout_s, policy, rpc_timeout_s = _check_settings(timeout, poll_policy, rpc_timeout, progress)
        own_limits = _own_limits(max_in_flight, qps)
        fetch = getattr(client, "_get_operation_pb", None)
        wrap = getattr(client, "_wrap", None)
        if not callable(fetch) or not callable(wrap):
            raise TypeError(f"client must provide _get_operation_pb() and _wrap() (a BatchSource), got {client!r}")
        shared = getattr(client, "_batch_scheduler", None)
        if own_limits is None and callable(shared):
            self._scheduler: BatchScheduler = shared()
            self._owns_scheduler = False
        else:
            limit, rate = own_limits or (DEFAULT_MAX_IN_FLIGHT, None)
            self._scheduler = BatchScheduler(fetch, max_in_flight=limit, qps=rate)
            self._owns_scheduler = True
        self._wrap: Callable[[operations_pb2.Operation], T] = wrap
        self._timeout = timeout_s
        self._deadline = Deadline.after(timeout_s, now=time.monotonic())
        self._policy = policy
        # Per-name defaults come from the client (an API's preset follows the name's form).
        self._explicit_policy = poll_policy
        self._policy_for: Callable[[str, PollPolicy | None], PollPolicy] | None = getattr(
            client, "_poll_policy_for", None
        )
        self._rpc_timeout = rpc_timeout_s
        self._progress = progress
        self._keep_open = keep_open

        self._known: dict[str, _Entry | None] = {}  # name -> entry while tracked, None once reported
        self._backlog: list[_Entry] = []  # added before the first iteration
        self._counts = _Counts()  # as reported to the consumer
        self._out: collections.deque[tuple[str, T, bool] | _TimedOut | _Aborted] = collections.deque()
        self._out_ready: asyncio.Future[None] | None = None
        self._started = False
        self._finished = False
        self.polls = 0
        """GetOperation calls started so far (the client's own retries not counted)."""

        self.add(names)

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
        checked = _check_names(names)
        if poll_policy is not None and not isinstance(poll_policy, PollPolicy):
            raise TypeError(f"poll_policy must be a PollPolicy, got {poll_policy!r}")
        if self._finished:
            raise RuntimeError("this BatchWaiter has finished; create a new one to track more operations")
        policy = poll_policy or self._explicit_policy
        new: list[_Entry] = []
        for name in checked:
            if name in self._known:
                continue
            entry = _Entry(self, name, self._scheduler._next_order(), policy or self._default_policy(name))
            self._known[name] = entry
            new.append(entry)
        self._counts.tracked += len(new)
        if new:
            if self._started:
                self._scheduler._schedule(new)
            else:
                self._backlog.extend(new)
        return len(new)

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
        if self._owns_scheduler:
            await self._scheduler.aclose()
        else:
            await self._scheduler._detach(self)

    async def __aenter__(self) -> BatchWaiter[T]:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # ----------------------------------------------------------------- consumer side

    async def _next_pair(self) -> tuple[str, T]:
        if not self._started:
            self._start()
        while True:
            if self._out:
                item = self._out.popleft()
                if isinstance(item, _TimedOut):
                    error = self._timed_out(item)
                    await self.aclose()
                    raise error
                if isinstance(item, _Aborted):
                    await self.aclose()
                    raise item.error
                name, handle, failed = item
                self._counts.done += 1
                self._counts.failed += failed
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

    def _timed_out(self, item: _TimedOut) -> BatchTimeoutError:
        entries = sorted(item.entries, key=lambda entry: entry.order)
        self._counts.timed_out = len(entries)
        self._notify()
        pending = [self._wrap(_last_seen(entry)) for entry in entries]
        names = [entry.name for entry in entries]
        return BatchTimeoutError(
            f"{len(entries)} operation(s) still running after the batch timeout of {self._timeout} s",
            pending=pending,
            pending_names=names,
            timeout=self._timeout,
        )

    def _notify(self) -> None:
        if self._progress is not None:
            self._progress(self._counts.snapshot())

    def _signal_out(self) -> None:
        if self._out_ready is not None and not self._out_ready.done():
            self._out_ready.set_result(None)

    def _emit(self, item: tuple[str, T, bool] | _TimedOut | _Aborted) -> None:
        self._out.append(item)
        self._signal_out()

    # ----------------------------------------------------------------- called by the scheduler

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
        self._scheduler._attach(self, backlog)

    def _expired(self, leftovers: list[_Entry]) -> None:
        """The deadline passed: report what is left."""
        self._finished = True
        if leftovers:
            self._emit(_TimedOut(leftovers))
        else:  # nothing was running (keep_open with everything reported): just the end
            self._signal_out()

    def _complete(self, entry: _Entry, pb: operations_pb2.Operation) -> None:
        self._known[entry.name] = None
        self._emit((entry.name, self._wrap(pb), pb.HasField("error")))


# --------------------------------------------------------------------------- async functions


async def as_completed(
    client: BatchSource[T],
    names: Iterable[str],
    *,
    timeout: Duration | None = None,
    poll_policy: PollPolicy | None = None,
    max_in_flight: int | None = None,
    qps: float | None = None,
    progress: Callable[[BatchProgress], object] | None = None,
    rpc_timeout: Duration | None = DEFAULT_BATCH_RPC_TIMEOUT,
) -> AsyncIterator[T]:
    """Yield each operation as soon as a poll sees it finished.

    Failed, cancelled and not-found operations are yielded like the others
    (check ``op.error``); they do not stop the batch. See :class:`BatchWaiter`
    for the arguments; to add operations while waiting, use a
    :class:`BatchWaiter` directly.

    Raises:
        BatchTimeoutError: after the last operation that finished in time, if
            some were still running at the deadline (they are its ``pending``).
        TypeError, ValueError: invalid arguments (before any RPC).
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
    )
    try:
        async for handle in waiter:
            yield handle
    finally:
        await waiter.aclose()


async def wait_all(
    client: BatchSource[T],
    names: Iterable[str],
    *,
    timeout: Duration | None = None,
    poll_policy: PollPolicy | None = None,
    max_in_flight: int | None = None,
    qps: float | None = None,
    progress: Callable[[BatchProgress], object] | None = None,
    rpc_timeout: Duration | None = DEFAULT_BATCH_RPC_TIMEOUT,
) -> list[T]:
    """Wait for every operation; return them in input order.

    A name given twice is polled once; its result appears at both positions.
    Failed, cancelled and not-found operations are results, not exceptions.

    Raises:
        BatchTimeoutError: some operations were still running at the
            deadline; its ``results`` holds every name's finished operation or
            last seen state, in input order.
        TypeError, ValueError: invalid arguments (before any RPC).
    """
    ordered = _check_names(names)
    waiter = BatchWaiter(
        client,
        ordered,
        timeout=timeout,
        poll_policy=poll_policy,
        max_in_flight=max_in_flight,
        qps=qps,
        progress=progress,
        rpc_timeout=rpc_timeout,
    )
    finished: dict[str, T] = {}
    try:
        while True:
            try:
                name, handle = await waiter._next_pair()
            except StopAsyncIteration:
                break
            except BatchTimeoutError as error:
                raise _with_results(error, ordered, finished) from None
            finished[name] = handle
    finally:
        await waiter.aclose()
    return [finished[name] for name in ordered]


def _with_results(error: BatchTimeoutError, ordered: list[str], finished: dict[str, Any]) -> BatchTimeoutError:
    last_seen = dict(zip(error.pending_names, error.pending, strict=True))
    results = [finished[name] if name in finished else last_seen[name] for name in ordered]
    return BatchTimeoutError(
        str(error),
        pending=error.pending,
        pending_names=error.pending_names,
        results=results,
        timeout=error.timeout,
    )


# --------------------------------------------------------------------------- synchronous facade


class _RawSource:
    """A source whose handles are the raw messages: the sync side wraps them itself."""

    __slots__ = ("_batch_scheduler", "_get_operation_pb", "_poll_policy_for")

    def __init__(self, source: BatchSource[Any]) -> None:
        self._get_operation_pb = source._get_operation_pb
        # Forward the source's per-name default policy (the API presets) and
        # its shared scheduler, if it has them.
        for attribute in ("_poll_policy_for", "_batch_scheduler"):
            value = getattr(source, attribute, None)
            if value is not None:
                setattr(self, attribute, value)

    @staticmethod
    def _wrap(pb: operations_pb2.Operation) -> operations_pb2.Operation:
        return pb


_END = object()
_WAKE = object()
_CLOSE_WAIT = 10.0  # seconds a close waits for the background scheduler to stop


class SyncBatchRunner(Generic[T]):
    """Runs batch waiters for synchronous code on one background event loop thread.

    The thread starts on first use and stops in :meth:`close` (also on
    ``with`` exit). The async source (an
    :class:`~lro_grpc.AsyncOperationsClient`, whose channel must be made on
    that loop) is opened there on first use and closed by :meth:`close`.

    Args:
        open_source: called on the background loop; returns an async context
            manager whose value is the :class:`BatchSource` to poll with.
        wrap: turns a finished (or timed out) operation message into the
            handle the caller gets; called on the caller's thread.
    """

    def __init__(
        self,
        open_source: Callable[[], AbstractAsyncContextManager[BatchSource[Any]]],
        *,
        wrap: Callable[[operations_pb2.Operation], T],
    ) -> None:
        if not callable(open_source):
            raise TypeError(f"open_source must be callable, got {open_source!r}")
        if not callable(wrap):
            raise TypeError(f"wrap must be callable, got {wrap!r}")
        self._open_source = open_source
        self._wrap = wrap
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stack: AsyncExitStack | None = None
        self._source: _RawSource | None = None
        self._closed = False

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._closed:
                raise RuntimeError("this SyncBatchRunner is closed")
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="lro-grpc-batch-loop", daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def _call(self, function: Callable[[], Awaitable[R]]) -> R:
        """Run ``await function()`` on the background loop and return its result."""
        loop = self._ensure_loop()

        async def run() -> R:
            return await function()

        return asyncio.run_coroutine_threadsafe(run(), loop).result()

    async def _get_source(self) -> _RawSource:
        if self._source is None:
            stack = AsyncExitStack()
            source = await stack.enter_async_context(self._open_source())
            self._stack, self._source = stack, _RawSource(source)
        return self._source

    def waiter(
        self,
        names: Iterable[str] = (),
        *,
        timeout: Duration | None = None,
        poll_policy: PollPolicy | None = None,
        max_in_flight: int | None = None,
        qps: float | None = None,
        progress: Callable[[BatchProgress], object] | None = None,
        rpc_timeout: Duration | None = DEFAULT_BATCH_RPC_TIMEOUT,
        keep_open: bool = False,
    ) -> SyncBatchWaiter[T]:
        """A synchronous :class:`BatchWaiter` (same arguments); polling starts at once.

        ``progress`` is called on the iterating thread.
        """
        checked = _check_names(names)
        _check_settings(timeout, poll_policy, rpc_timeout, progress)
        _own_limits(max_in_flight, qps)  # checked here, on the caller's thread

        async def create() -> BatchWaiter[operations_pb2.Operation]:
            source = await self._get_source()
            return BatchWaiter(
                source,
                checked,
                timeout=timeout,
                poll_policy=poll_policy,
                max_in_flight=max_in_flight,
                qps=qps,
                rpc_timeout=rpc_timeout,
                keep_open=True,
            )

        inner = self._call(create)
        return SyncBatchWaiter(self, inner, progress=progress, keep_open=keep_open)

    def as_completed(
        self,
        names: Iterable[str],
        *,
        timeout: Duration | None = None,
        poll_policy: PollPolicy | None = None,
        max_in_flight: int | None = None,
        qps: float | None = None,
        progress: Callable[[BatchProgress], object] | None = None,
        rpc_timeout: Duration | None = DEFAULT_BATCH_RPC_TIMEOUT,
    ) -> Iterator[T]:
        """Synchronous :func:`as_completed`: yields each operation as it finishes.

        Raises:
            BatchTimeoutError: as :func:`as_completed`.
        """
        waiter = self.waiter(
            names,
            timeout=timeout,
            poll_policy=poll_policy,
            max_in_flight=max_in_flight,
            qps=qps,
            progress=progress,
            rpc_timeout=rpc_timeout,
        )
        return _closing_iter(waiter)

    def wait_all(
        self,
        names: Iterable[str],
        *,
        timeout: Duration | None = None,
        poll_policy: PollPolicy | None = None,
        max_in_flight: int | None = None,
        qps: float | None = None,
        progress: Callable[[BatchProgress], object] | None = None,
        rpc_timeout: Duration | None = DEFAULT_BATCH_RPC_TIMEOUT,
    ) -> list[T]:
        """Synchronous :func:`wait_all`: every operation, in input order.

        Raises:
            BatchTimeoutError: as :func:`wait_all`.
        """
        ordered = _check_names(names)
        waiter = self.waiter(
            ordered,
            timeout=timeout,
            poll_policy=poll_policy,
            max_in_flight=max_in_flight,
            qps=qps,
            progress=progress,
            rpc_timeout=rpc_timeout,
        )
        finished: dict[str, T] = {}
        try:
            while True:
                try:
                    name, handle = waiter._next_pair()
                except StopIteration:
                    break
                except BatchTimeoutError as error:
                    raise _with_results(error, ordered, finished) from None
                finished[name] = handle
        finally:
            waiter.close()
        return [finished[name] for name in ordered]

    def close(self) -> None:
        """Stop every waiter, close the source and stop the background thread. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return

        async def shutdown() -> None:
            current = asyncio.current_task()
            others = [task for task in asyncio.all_tasks() if task is not current]
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)
            if self._stack is not None:
                await self._stack.aclose()
            await loop.shutdown_asyncgens()

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), loop).result()
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            loop.close()

    def __enter__(self) -> SyncBatchRunner[T]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _closing_iter(waiter: SyncBatchWaiter[T]) -> Iterator[T]:
    try:
        yield from waiter
    finally:
        waiter.close()


class SyncBatchWaiter(Generic[T]):
    """The synchronous face of one :class:`BatchWaiter` (made by :meth:`SyncBatchRunner.waiter`).

    Iterate it from one thread. :meth:`add` and :meth:`close_input` may be
    called from that thread (inside the loop body, too) or from another one,
    e.g. a producer starting operations while this thread reports them.
    Closing the runner stops it.
    """

    def __init__(
        self,
        runner: SyncBatchRunner[T],
        inner: BatchWaiter[operations_pb2.Operation],
        *,
        progress: Callable[[BatchProgress], object] | None,
        keep_open: bool,
    ) -> None:
        self._runner = runner
        self._inner = inner
        self._progress = progress
        self._keep_open = keep_open
        self._counts = _Counts()
        self._counts.tracked = inner.progress.total
        self._items: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()  # add() may run on another thread than the iteration
        self._closed = False
        self._started_report = False
        self._pump_done = threading.Event()
        self._loop = runner._ensure_loop()
        self._pump_future = asyncio.run_coroutine_threadsafe(self._pump(), self._loop)

    async def _pump(self) -> None:
        items = self._items
        try:
            while True:
                items.put(await self._inner._next_pair())
        except StopAsyncIteration:
            items.put(_END)
        except asyncio.CancelledError:
            items.put(_Aborted(RuntimeError("the batch runner was closed while waiting")))
            raise
        except Exception as error:
            items.put(_Aborted(error))
        finally:
            try:
                await self._inner.aclose()
            finally:
                self._pump_done.set()

    def add(self, names: Iterable[str], *, poll_policy: PollPolicy | None = None) -> int:
        """Track more operations (see :meth:`BatchWaiter.add`). Returns how many are new."""
        checked = _check_names(names)
        if self._closed:
            raise RuntimeError("this SyncBatchWaiter has finished; create a new one to track more operations")

        async def add() -> int:
            return self._inner.add(checked, poll_policy=poll_policy)

        added = self._runner._call(add)
        with self._lock:
            self._counts.tracked += added
        return added

    def close_input(self) -> None:
        """With ``keep_open``: no more :meth:`add` calls will come. Any thread may call it."""
        self._keep_open = False
        self._items.put(_WAKE)

    @property
    def progress(self) -> BatchProgress:
        """The current counts (as reported to the caller so far)."""
        return self._counts.snapshot()

    def __iter__(self) -> SyncBatchWaiter[T]:
        return self

    def __next__(self) -> T:
        return self._next_pair()[1]

    def _notify(self) -> None:
        if self._progress is not None:
            self._progress(self._counts.snapshot())

    def _next_pair(self) -> tuple[str, T]:
        if not self._started_report:
            self._started_report = True
            self._notify()
        counts = self._counts
        while True:
            if self._closed:
                raise StopIteration
            if counts.done == counts.tracked and not self._keep_open:
                self.close()
                raise StopIteration
            item = self._items.get()
            if item is _WAKE:
                continue
            if item is _END:
                self._closed = True
                raise StopIteration
            if isinstance(item, _Aborted):
                self.close()
                if isinstance(item.error, BatchTimeoutError):
                    raise self._timed_out(item.error)
                raise item.error
            name, pb = item
            handle = self._runner._wrap(pb)
            counts.done += 1
            if pb.HasField("error"):
                counts.failed += 1
            self._notify()
            return name, handle

    def _timed_out(self, error: BatchTimeoutError) -> BatchTimeoutError:
        self._counts.timed_out = len(error.pending)
        self._notify()
        return BatchTimeoutError(
            str(error),
            pending=[self._runner._wrap(pb) for pb in error.pending],
            pending_names=error.pending_names,
            timeout=error.timeout,
        )

    def close(self) -> None:
        """Stop polling and wait until the scheduler has stopped. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._loop.call_soon_threadsafe(self._pump_future.cancel)
        if not self._loop.is_closed():
            on_loop_thread = threading.current_thread() is self._runner._thread
            if not on_loop_thread:
                self._pump_done.wait(timeout=_CLOSE_WAIT)
