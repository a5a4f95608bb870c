"""The synchronous face of the batch waiter: the same scheduler on one background event loop."""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import dataclasses
import logging
import queue
import sys
import threading
import weakref
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from typing import Any, Generic, TypeVar

from google.longrunning import operations_pb2

from lro_grpc import _core
from lro_grpc._batch._journal import Journal
from lro_grpc._batch._journal_open import JournalPath, open_journal
from lro_grpc._batch._settings import (
    DEFAULT_BATCH_RPC_TIMEOUT,
    BatchProgress,
    Counts,
    check_names,
    check_settings,
    own_limits,
)
from lro_grpc._batch._source import BatchClient, BatchSource, as_batch_source
from lro_grpc._batch._waiter import Aborted, BatchWaiter, with_results
from lro_grpc.errors import BatchTimeoutError
from lro_grpc.policies import Duration, PollPolicy

__all__ = ["SyncBatchRunner", "SyncBatchWaiter"]

_log = logging.getLogger("lro_grpc.batch")

T = TypeVar("T")
R = TypeVar("R")


def _raw(pb: operations_pb2.Operation) -> operations_pb2.Operation:
    return pb


_END = object()
_WAKE = object()
_CLOSE_WAIT = 10.0  # seconds a close waits for the background scheduler to stop
_WAKE_EVERY = 0.25
"""Seconds a blocked caller's thread sleeps at most before it looks again.

A process signal (Ctrl-C) may be taken by any thread, gRPC's included; Python
then raises ``KeyboardInterrupt`` in the main thread only when that thread next
runs, which a wait with no timeout never does. Waiting in slices keeps an
interrupt at most this late.
"""


def _wait_for(future: concurrent.futures.Future[R]) -> R:
    """``future.result()``, waited for in slices so that an interrupt is seen."""
    while True:
        try:
            return future.result(timeout=_WAKE_EVERY)
        except concurrent.futures.TimeoutError:
            continue


def _take(items: queue.SimpleQueue[Any]) -> Any:
    """The next item of ``items``, waited for in slices so that an interrupt is seen."""
    while True:
        try:
            return items.get(timeout=_WAKE_EVERY)
        except queue.Empty:
            continue


class SyncBatchRunner(Generic[T]):
    """Runs batch waiters for synchronous code on one background event loop thread.

    The thread starts on first use and stops in :meth:`close` (also on
    ``with`` exit). The async source (an
    :class:`~lro_grpc.AsyncOperationsClient`, whose channel must be made on
    that loop) is opened there on first use and closed by :meth:`close`.

    Args:
        open_source: called on the background loop; returns an async context
            manager whose value is the client (or :class:`BatchSource`) to poll with;
            its handles are replaced by the raw messages, which ``wrap`` turns into
            the caller's.
        wrap: turns a finished (or timed out) operation message into the
            handle the caller gets; called on the caller's thread.
    """

    def __init__(
        self,
        open_source: Callable[[], AbstractAsyncContextManager[BatchSource[Any] | BatchClient[Any]]],
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
        self._source: BatchSource[operations_pb2.Operation] | None = None
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
                _close_at_exit(self)
            return self._loop

    def _call(self, function: Callable[[], Awaitable[R]]) -> R:
        """Run ``await function()`` on the background loop and return its result."""
        loop = self._ensure_loop()

        async def run() -> R:
            return await function()

        return _wait_for(asyncio.run_coroutine_threadsafe(run(), loop))

    async def _get_source(self) -> BatchSource[operations_pb2.Operation]:
        if self._source is None:
            stack = AsyncExitStack()
            client = await stack.enter_async_context(self._open_source())
            # The raw messages cross to the caller's thread; the handles are made there.
            self._stack, self._source = stack, dataclasses.replace(as_batch_source(client), wrap=_raw)
        return self._source

    def waiter(
        self,
        names: Iterable[str] | None = (),
        *,
        timeout: Duration | None = None,
        poll_policy: PollPolicy | None = None,
        max_in_flight: int | None = None,
        qps: float | None = None,
        progress: Callable[[BatchProgress], object] | None = None,
        rpc_timeout: Duration | None = DEFAULT_BATCH_RPC_TIMEOUT,
        keep_open: bool = False,
        journal: JournalPath | None = None,
    ) -> SyncBatchWaiter[T]:
        """A synchronous :class:`BatchWaiter` (same arguments); polling starts at once.

        ``progress`` is called on the iterating thread; with a ``journal``, an
        outcome counts as delivered once that thread asks for the next one.
        """
        return self._waiter(
            names,
            timeout=timeout,
            poll_policy=poll_policy,
            max_in_flight=max_in_flight,
            qps=qps,
            progress=progress,
            rpc_timeout=rpc_timeout,
            keep_open=keep_open,
            journal=journal,
            replay_delivered=False,
        )

    def _waiter(
        self,
        names: Iterable[str] | None,
        *,
        timeout: Duration | None,
        poll_policy: PollPolicy | None,
        max_in_flight: int | None,
        qps: float | None,
        progress: Callable[[BatchProgress], object] | None,
        rpc_timeout: Duration | None,
        keep_open: bool,
        journal: JournalPath | None,
        replay_delivered: bool,
    ) -> SyncBatchWaiter[T]:
        if names is None and journal is None:
            raise TypeError("names=None (every name in the journal) needs a journal")
        checked = None if names is None else check_names(names)
        check_settings(timeout, poll_policy, rpc_timeout, progress)
        own_limits(max_in_flight, qps)  # checked here, on the caller's thread

        async def create() -> tuple[BatchWaiter[operations_pb2.Operation], Journal | None]:
            source = await self._get_source()
            opened = None
            if journal is not None:
                # This thread's consumer marks deliveries, not the background pump.
                opened = open_journal(source, journal, checked, replay_delivered=replay_delivered, waiter_marks=False)
            try:
                waiter = BatchWaiter(
                    source,
                    checked,
                    timeout=timeout,
                    poll_policy=poll_policy,
                    max_in_flight=max_in_flight,
                    qps=qps,
                    rpc_timeout=rpc_timeout,
                    keep_open=True,
                    journal=opened,
                )
            except BaseException:
                if opened is not None:
                    opened.close()
                raise
            return waiter, opened

        inner, opened = self._call(create)
        waiter = SyncBatchWaiter(self, inner, progress=progress, keep_open=keep_open, journal=opened)
        waiter._marks_each = not replay_delivered
        if checked is not None:
            waiter._order = checked
        elif opened is not None:
            waiter._order = list(opened.names)
        return waiter

    def as_completed(
        self,
        names: Iterable[str] | None,
        *,
        timeout: Duration | None = None,
        poll_policy: PollPolicy | None = None,
        max_in_flight: int | None = None,
        qps: float | None = None,
        progress: Callable[[BatchProgress], object] | None = None,
        rpc_timeout: Duration | None = DEFAULT_BATCH_RPC_TIMEOUT,
        journal: JournalPath | None = None,
    ) -> Iterator[T]:
        """Synchronous :func:`as_completed`: yields each operation as it finishes.

        Raises:
            BatchTimeoutError: as :func:`as_completed`.
            JournalError: the journal cannot be used.
        """
        waiter = self.waiter(
            names,
            timeout=timeout,
            poll_policy=poll_policy,
            max_in_flight=max_in_flight,
            qps=qps,
            progress=progress,
            rpc_timeout=rpc_timeout,
            journal=journal,
        )
        return _closing_iter(waiter)

    def wait_all(
        self,
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
        """Synchronous :func:`wait_all`: every operation, in input order.

        Raises:
            BatchTimeoutError: as :func:`wait_all`.
            JournalError: the journal cannot be used.
        """
        waiter = self._waiter(
            None if names is None else check_names(names),
            timeout=timeout,
            poll_policy=poll_policy,
            max_in_flight=max_in_flight,
            qps=qps,
            progress=progress,
            rpc_timeout=rpc_timeout,
            keep_open=False,
            journal=journal,
            replay_delivered=True,
        )
        ordered = waiter._order
        finished: dict[str, T] = {}
        try:
            while True:
                try:
                    name, handle = waiter._next_pair()
                except StopIteration:
                    break
                except BatchTimeoutError as error:
                    raise with_results(error, ordered, finished) from None
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
            # Bounded: a close (say, on Ctrl-C) must end even if a task will not stop.
            asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout=_CLOSE_WAIT)
        except concurrent.futures.TimeoutError:
            _log.warning("the batch runner's tasks did not stop within %.0f s of close(); leaving them", _CLOSE_WAIT)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=_CLOSE_WAIT)
            if not thread.is_alive():
                loop.close()

    def __enter__(self) -> SyncBatchRunner[T]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


_open_runners: weakref.WeakSet[SyncBatchRunner[Any]] = weakref.WeakSet()
_exit_hook_lock = threading.Lock()
_exit_hook_registered = False


def _close_at_exit(runner: SyncBatchRunner[Any]) -> None:
    """Close ``runner`` when the interpreter exits, if nobody closed it before.

    At exit, daemon threads (the runner's loop among them) stop running once
    finalization begins; closing the runners first lets their channels close
    cleanly and keeps a half-read iteration from delaying the exit.
    """
    global _exit_hook_registered
    with _exit_hook_lock:
        _open_runners.add(runner)
        if not _exit_hook_registered:
            atexit.register(_close_open_runners)
            _exit_hook_registered = True


def _close_open_runners() -> None:
    for runner in list(_open_runners):
        runner.close()


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
        journal: Journal | None = None,
    ) -> None:
        self._runner = runner
        self._inner = inner
        self._journal = journal
        self._in_hand: str | None = None  # handed out, not yet delivered
        self._marks_each = True  # False for wait_all, which delivers everything when it returns
        self._order: list[str] = []  # every name, in order (what wait_all returns)
        self._progress = progress
        self._keep_open = keep_open
        self._counts = Counts()
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
            items.put(Aborted(RuntimeError("the batch runner was closed while waiting")))
            raise
        except Exception as error:
            items.put(Aborted(error))
        finally:
            try:
                await self._inner.aclose()
            finally:
                self._pump_done.set()

    def add(self, names: Iterable[str], *, poll_policy: PollPolicy | None = None) -> int:
        """Track more operations (see :meth:`BatchWaiter.add`). Returns how many are new."""
        checked = check_names(names)
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
        if self._in_hand is not None and self._journal is not None:
            # The caller asks for the next outcome: the one in its hand is delivered.
            name, self._in_hand = self._in_hand, None
            self._journal.deliver(name)
        if not self._started_report:
            self._started_report = True
            self._notify()
        counts = self._counts
        while True:
            if self._closed:
                raise StopIteration
            if counts.done == counts.tracked and not self._keep_open:
                self._ended_normally()
                self.close()
                raise StopIteration
            item = _take(self._items)
            if item is _WAKE:
                continue
            if item is _END:
                self._closed = True
                self._ended_normally()
                self._close_journal()
                raise StopIteration
            if isinstance(item, Aborted):
                self.close()
                if isinstance(item.error, BatchTimeoutError):
                    raise self._timed_out(item.error)
                raise item.error
            name, pb = item
            handle = self._runner._wrap(pb)
            counts.done += 1
            if _core.operation_failed(pb):
                counts.failed += 1
            if self._journal is not None and self._marks_each:
                self._in_hand = name
            self._notify()
            return name, handle

    def _ended_normally(self) -> None:
        # For wait_all, which returns right after: every outcome it collected is delivered.
        if self._journal is not None and not self._marks_each:
            self._journal.deliver_all()

    def _timed_out(self, error: BatchTimeoutError) -> BatchTimeoutError:
        self._counts.timed_out = len(error.pending)
        self._notify()
        return BatchTimeoutError(
            str(error),
            pending=[self._runner._wrap(pb) for pb in error.pending],
            pending_names=error.pending_names,
            timeout=error.timeout,
            last_errors=error.last_errors,
        )

    def close(self) -> None:
        """Stop polling and wait until the scheduler has stopped. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            thread = self._runner._thread
            if self._loop.is_closed() or thread is None or not thread.is_alive() or sys.is_finalizing():
                # The runner has stopped already (or the interpreter is going away and
                # its daemon threads no longer run): nothing is left to stop or wait for.
                return
            self._loop.call_soon_threadsafe(self._pump_future.cancel)
            if threading.current_thread() is not thread:
                self._pump_done.wait(timeout=_CLOSE_WAIT)
        finally:
            self._close_journal()

    def _close_journal(self) -> None:
        # Whatever the pump recorded is written; the lock is released.
        if self._journal is not None:
            self._journal.close()
