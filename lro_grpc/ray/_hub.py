"""What a cluster waiter's actor does with its callers' names, without Ray.

A :class:`WaitHub` lives on one event loop (the actor's) beside one
:class:`~lro_grpc.AsyncOperationsClient`. Every caller's call comes in as
:meth:`WaitHub.stream`; the hub tracks each name once in one long-lived
:class:`~lro_grpc.BatchWaiter` on the client's scheduler (so the client's
sweeps and ``batch_qps`` budget serve every caller together), keeps each
outcome as the serialized ``google.longrunning.Operation``, and hands it to
every call waiting for that name. Nothing here imports Ray: the hub is tested
on its own over the emulator, and the actor is a thin shell around it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from lro_grpc._batch import BatchWaiter, Journal, JournalPath, open_journal
from lro_grpc.aio import AsyncOperationsClient
from lro_grpc.policies import PollPolicy

__all__ = ["Chunk", "HubStats", "WaitHub"]

logger = logging.getLogger("lro_grpc.ray")

COALESCE_SECONDS = 0.01
"""How long a call lets outcomes gather before sending them on (a sweep reports many at once)."""

MAX_KEPT_OUTCOMES = 200_000
"""Outcomes kept for later callers; past this, the hub forgets them when it next falls idle."""


@dataclasses.dataclass(frozen=True)
class Chunk:
    """Part of one call's answer, as it crosses the cluster.

    Attributes:
        outcomes: ``(name, serialized google.longrunning.Operation)`` of finished operations.
        timed_out: set on the call's last chunk when its deadline passed: the
            names it still waited for.
    """

    outcomes: list[tuple[str, bytes]]
    timed_out: list[str] | None = None


@dataclasses.dataclass(frozen=True)
class HubStats:
    """What one hub holds and has done.

    Attributes:
        pending: operations tracked and not yet seen finished.
        kept: finished operations' outcomes kept for callers.
        active_calls: calls streaming now.
        calls: calls received so far.
        shared: names a call found already tracked or finished for another call
            (each one cost no poll of its own).
    """

    pending: int
    kept: int
    active_calls: int
    calls: int
    shared: int


class _Call:
    """One caller's call: the names it still waits for and the outcomes not yet sent."""

    __slots__ = ("missing", "ready", "wakeup")

    def __init__(self) -> None:
        self.missing: set[str] = set()
        self.ready: list[tuple[str, bytes]] = []
        self.wakeup = asyncio.Event()

    def deliver(self, name: str, data: bytes) -> None:
        if name in self.missing:
            self.missing.discard(name)
            self.ready.append((name, data))
            self.wakeup.set()


class WaitHub:
    """Tracks every caller's names once and fans each outcome out to its callers.

    Args:
        client_factory: makes the one client (called on the hub's event loop,
            on first use; the hub closes it in :meth:`aclose`).
        journal: a journal file for the hub's batch (see
            :class:`~lro_grpc.BatchWaiter`): outcomes recorded in it are
            handed out again without an RPC after a restart.
    """

    def __init__(
        self, client_factory: Callable[[], AsyncOperationsClient], *, journal: JournalPath | None = None
    ) -> None:
        self._client_factory = client_factory
        self._client: AsyncOperationsClient | None = None
        self._journal_path = journal
        self._journal: Journal | None = None
        self._waiter: BatchWaiter[Any] | None = None
        self._consumer: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None
        self._outcomes: dict[str, bytes] = {}
        self._tracked: set[str] = set()  # added to the current waiter, not finished yet
        self._subscribers: dict[str, list[_Call]] = {}
        self._active = 0
        self._calls = 0
        self._shared = 0

    @property
    def client(self) -> AsyncOperationsClient:
        """The hub's client (made on first use)."""
        if self._client is None:
            self._client = self._client_factory()
        return self._client

    def stats(self) -> HubStats:
        """The hub's counts now."""
        return HubStats(
            pending=len(self._tracked),
            kept=len(self._outcomes),
            active_calls=self._active,
            calls=self._calls,
            shared=self._shared,
        )

    async def stream(
        self, names: list[str], *, timeout: float | None, poll_policy: PollPolicy | None
    ) -> AsyncIterator[Chunk]:
        """Yield the outcomes of ``names`` (validated names) as they are known, in chunks.

        Each name's outcome comes once. Names another call already waits for
        are not tracked again; names finished before come at once. When
        ``timeout`` passes first, the last chunk's ``timed_out`` lists the
        names still running.
        """
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        call = _Call()
        self._active += 1
        self._calls += 1
        try:
            ready, new = self._subscribe(call, names)
            if new:
                self._ensure_waiter().add(new, poll_policy=poll_policy)
            if ready:
                yield Chunk(ready)
            while call.missing:
                if self._failure is not None:
                    raise RuntimeError(f"the cluster waiter's batch failed: {self._failure!r}") from self._failure
                remaining = None if deadline is None else deadline - loop.time()
                if remaining is not None and remaining <= 0:
                    yield Chunk(self._take(call), timed_out=sorted(call.missing))
                    return
                if not call.ready:
                    try:
                        await asyncio.wait_for(call.wakeup.wait(), remaining)
                    except asyncio.TimeoutError:  # not yet TimeoutError on Python 3.10
                        continue
                    await asyncio.sleep(COALESCE_SECONDS)
                yield Chunk(self._take(call))
            if call.ready:  # the last outcomes came while the caller held the previous chunk
                yield Chunk(self._take(call))
        finally:
            self._active -= 1
            self._unsubscribe(call)
            if self._active == 0 and self._tracked:
                self._abandon()

    def _subscribe(self, call: _Call, names: list[str]) -> tuple[list[tuple[str, bytes]], list[str]]:
        ready: list[tuple[str, bytes]] = []
        new: list[str] = []
        for name in dict.fromkeys(names):
            data = self._outcomes.get(name)
            if data is not None:
                ready.append((name, data))
                self._shared += 1
                continue
            call.missing.add(name)
            self._subscribers.setdefault(name, []).append(call)
            if name in self._tracked:
                self._shared += 1
            else:
                self._tracked.add(name)
                new.append(name)
        return ready, new

    @staticmethod
    def _take(call: _Call) -> list[tuple[str, bytes]]:
        ready, call.ready = call.ready, []
        call.wakeup.clear()
        return ready

    def _unsubscribe(self, call: _Call) -> None:
        for name in call.missing:
            waiting = self._subscribers.get(name)
            if waiting is not None and call in waiting:
                waiting.remove(call)
                if not waiting:
                    del self._subscribers[name]

    def _ensure_waiter(self) -> BatchWaiter[Any]:
        if self._waiter is None:
            client = self.client
            if self._journal_path is not None and self._journal is None:
                # Every recorded outcome is handed out again (delivered or not): the hub's
                # callers, not the hub, are the consumers that count.
                self._journal = open_journal(client, self._journal_path, [], replay_delivered=True, waiter_marks=False)
            self._waiter = BatchWaiter(client, (), keep_open=True, journal=self._journal)
            self._consumer = asyncio.get_running_loop().create_task(self._consume(self._waiter))
        return self._waiter

    async def _consume(self, waiter: BatchWaiter[Any]) -> None:
        try:
            async for op in waiter:
                name = op.name
                data = op.raw.SerializeToString()
                if waiter is not self._waiter:
                    return
                self._outcomes[name] = data
                self._tracked.discard(name)
                for call in self._subscribers.pop(name, ()):
                    call.deliver(name, data)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # every call still waiting is told, not left hanging
            logger.error("cluster waiter batch failed: %r", error)
            self._failure = error
            for calls in self._subscribers.values():
                for call in calls:
                    call.wakeup.set()

    def _abandon(self) -> None:
        """No call waits any more: stop polling what is left (a later call tracks it again)."""
        waiter, consumer = self._waiter, self._consumer
        self._waiter = self._consumer = None
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("no caller waits for %d tracked operation(s): they are no longer polled", len(self._tracked))
        self._tracked.clear()
        if len(self._outcomes) > MAX_KEPT_OUTCOMES:
            self._outcomes.clear()
        if consumer is not None:
            consumer.cancel()
        if waiter is not None:
            closing = asyncio.get_running_loop().create_task(waiter.aclose())
            closing.add_done_callback(_log_failure)

    async def aclose(self) -> None:
        """Stop polling and close the client and the journal."""
        waiter, consumer = self._waiter, self._consumer
        self._waiter = self._consumer = None
        if consumer is not None:
            consumer.cancel()
        if waiter is not None:
            await waiter.aclose()
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        if self._client is not None:
            await self._client.close()
            self._client = None


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.warning("closing an abandoned batch failed: %r", task.exception())
