"""Done callbacks of operation handles (``add_done_callback``), as google-api-core's futures have them.

A callback runs once, with the handle, when the operation is done, or when
following it failed for good (the error is logged on ``lro_grpc.callbacks``;
the handle then shows its last seen state). A callback's own exception is
logged there too and never reaches the code that registered it.

* :class:`~lro_grpc.Operation` (blocking): one worker thread for the whole
  process follows every handle that has callbacks, one GetOperation per
  handle per poll interval (the API's preset for its name), and runs the
  callbacks in that thread. No thread per operation: api-core starts one per
  future.
* :class:`~lro_grpc.AsyncOperation`: a task on the running event loop waits
  (``wait()``, with the client's polling) and runs the callbacks on that loop;
  a callback may be a coroutine function.

A handle already done runs the callback at once: in the calling thread
(blocking), or soon on the running loop (asyncio).
"""

from __future__ import annotations

import asyncio
import heapq
import inspect
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from lro_grpc.apis import get_api
from lro_grpc.names import parse_operation_name
from lro_grpc.policies import DEFAULT_POLL_POLICY, PollPolicy

# The handles are typed Any here: this module sits below lro_grpc.operation, which calls it.

__all__ = ["add_async_done_callback", "add_done_callback"]

_log = logging.getLogger("lro_grpc.callbacks")


def _check(callback: object) -> None:
    if not callable(callback):
        raise TypeError(f"callback must be callable, got {callback!r}")


def _run_callback(callback: Callable[[Any], object], handle: Any) -> object:
    try:
        return callback(handle)
    except Exception:
        _log.exception("done callback %r for %r raised", callback, handle.name)
        return None


def _poll_policy(name: str) -> PollPolicy:
    try:
        return get_api(parse_operation_name(name).api).poll_policy
    except (TypeError, ValueError):
        return DEFAULT_POLL_POLICY


class _Follower:
    """The one thread that follows every blocking handle with callbacks."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._queue: list[tuple[float, int, Any]] = []
        self._callbacks: dict[int, list[Callable[[Any], object]]] = {}
        self._attempts: dict[int, int] = {}
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def add(self, handle: Any, callback: Callable[[Any], object]) -> None:
        with self._lock:
            key = id(handle)
            if key in self._callbacks:
                self._callbacks[key].append(callback)
                return
            self._callbacks[key] = [callback]
            self._attempts[key] = 0
            first = _poll_policy(handle.name).delay(0)
            heapq.heappush(self._queue, (time.monotonic() + first, next(self._order), handle))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="lro-grpc-callbacks", daemon=True)
                self._thread.start()
            self._lock.notify()

    def _next(self) -> Any | None:
        with self._lock:
            while True:
                if not self._queue:
                    self._thread = None  # a later add starts another
                    return None
                due, _, handle = self._queue[0]
                wait = due - time.monotonic()
                if wait <= 0:
                    heapq.heappop(self._queue)
                    return handle
                self._lock.wait(wait)

    def _run(self) -> None:
        while (handle := self._next()) is not None:
            key = id(handle)
            try:
                handle.refresh()
            except Exception as error:
                _log.error("following %r for its done callbacks failed: %s", handle.name, error, exc_info=error)
                self._finish(handle)
                continue
            if handle.done:
                self._finish(handle)
                continue
            with self._lock:
                self._attempts[key] += 1
                delay = _poll_policy(handle.name).delay(self._attempts[key])
                heapq.heappush(self._queue, (time.monotonic() + delay, next(self._order), handle))

    def _finish(self, handle: Any) -> None:
        with self._lock:
            callbacks = self._callbacks.pop(id(handle), [])
            self._attempts.pop(id(handle), None)
        for callback in callbacks:
            _run_callback(callback, handle)


_follower = _Follower()


def add_done_callback(handle: Any, callback: Callable[[Any], object]) -> None:
    """Run ``callback(handle)`` once the operation is done (see the module docstring).

    Raises:
        TypeError: ``callback`` is not callable.
        RuntimeError: the handle is not done and has no client to follow it with.
    """
    _check(callback)
    if handle.done:
        _run_callback(callback, handle)
        return
    handle._require_client()
    _follower.add(handle, callback)


_tasks: set[asyncio.Task[None]] = set()
"""Tasks following asyncio handles (kept referenced until they end)."""


def add_async_done_callback(handle: Any, callback: Callable[[Any], object]) -> None:
    """Run ``callback(handle)`` on the running loop once the operation is done (see the module docstring).

    Raises:
        TypeError: ``callback`` is not callable.
        RuntimeError: no event loop is running, or the handle is not done and has no client.
    """
    _check(callback)
    loop = asyncio.get_running_loop()
    if not handle.done:
        handle._require_client()

    async def follow() -> None:
        if not handle.done:
            try:
                await handle.wait()
            except Exception as error:
                _log.error("following %r for its done callbacks failed: %s", handle.name, error, exc_info=error)
        outcome = _run_callback(callback, handle)
        if inspect.isawaitable(outcome):
            try:
                await outcome
            except Exception:
                _log.exception("done callback %r for %r raised", callback, handle.name)

    task = loop.create_task(follow(), name=f"lro-grpc done callback {handle.name}")
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
