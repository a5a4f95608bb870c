"""One call of a cluster waiter on the caller's side: ask each shard's actor, resume across restarts.

Exactly once per call: the caller keeps, per shard, the names it still lacks
(in order). A chunk's outcomes are kept only for names still lacking, so an
outcome can never be handed out twice within a call, whatever the actor
sends. When the actor dies mid-call (its process, its node, ``ray.kill``),
the stream raises a ``RayActorError``; the caller then asks the restarted
actor (found again by name) for the names it still lacks, with what is left
of the deadline. Outcomes the dead actor had sent are kept; those it had not
are polled again by the new one. Nothing is lost and nothing repeats.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import ray
from ray.exceptions import RayActorError

from lro_grpc.policies import PollPolicy
from lro_grpc.ray._hub import Chunk

__all__ = ["CallTimedOut", "ShardCall", "merged"]

logger = logging.getLogger("lro_grpc.ray")

RETRY_INITIAL = 0.1
RETRY_MAXIMUM = 2.0


class CallTimedOut(Exception):
    """The call's deadline passed with ``names`` still running (raised after every outcome)."""

    def __init__(self, names: list[str]) -> None:
        super().__init__(f"{len(names)} operation(s) still running")
        self.names = names


class ShardCall:
    """The part of one call that one shard's actor answers.

    Args:
        resolve: the shard's actor handle (called again, to find the restarted
            actor by name, after a failure).
        names: the shard's names, validated, without repeats.
        deadline: ``time.monotonic()`` deadline, or ``None``.
        poll_policy: sent to the actor with the names.
        on_restart: called each time the actor was found dead and the call resumed.
    """

    def __init__(
        self,
        resolve: Callable[[bool], Any],
        names: list[str],
        deadline: float | None,
        poll_policy: PollPolicy | None,
        on_restart: Callable[[], None],
    ) -> None:
        self._resolve = resolve
        self.lacking: dict[str, None] = dict.fromkeys(names)
        self._deadline = deadline
        self._poll_policy = poll_policy
        self._on_restart = on_restart

    def accept(self, chunk: Chunk) -> list[tuple[str, bytes]]:
        """The chunk's outcomes this call still lacked (marked as received)."""
        fresh = [(name, data) for name, data in chunk.outcomes if name in self.lacking]
        for name, _ in fresh:
            del self.lacking[name]
        return fresh

    def _timeout(self) -> float | None:
        return None if self._deadline is None else max(0.0, self._deadline - time.monotonic())

    async def outcomes(self) -> AsyncIterator[list[tuple[str, bytes]]]:
        """Fresh outcomes, in groups, until every name has one.

        Raises:
            CallTimedOut: the deadline passed first (after every outcome before it).
        """
        failures = 0
        fresh_handle = False
        while self.lacking:
            actor = self._resolve(fresh_handle)
            stream = actor.stream.remote(list(self.lacking), self._timeout(), self._poll_policy)
            try:
                async for ref in stream:
                    chunk: Chunk = await ref
                    fresh = self.accept(chunk)
                    if fresh:
                        failures = 0
                        yield fresh
                    if chunk.timed_out is not None:
                        raise CallTimedOut(list(self.lacking))
            except RayActorError as error:
                failures += 1
                self._on_restart()
                timeout = self._timeout()
                logger.warning(
                    "cluster waiter actor unavailable (%s: %s); asking again for %d operation(s)",
                    type(error).__name__,
                    str(error).strip().splitlines()[0] if str(error).strip() else "",
                    len(self.lacking),
                )
                if timeout is not None and timeout <= 0:
                    raise CallTimedOut(list(self.lacking)) from error
                delay = min(RETRY_MAXIMUM, RETRY_INITIAL * 2 ** (failures - 1))
                await asyncio.sleep(delay if timeout is None else min(delay, timeout))
                fresh_handle = True
            finally:
                _cancel(stream)


def _cancel(stream: Any) -> None:
    """Stop the actor's side of a stream the caller no longer reads (no-op once it has ended)."""
    try:
        ray.cancel(stream)
    except Exception:  # the actor is gone, or the stream already ended
        logger.debug("could not cancel a cluster waiter stream", exc_info=True)


async def merged(calls: list[ShardCall]) -> AsyncIterator[list[tuple[str, bytes]]]:
    """Every shard's fresh outcomes as they come.

    Raises:
        CallTimedOut: some shard's deadline passed (after every other outcome); names of every shard.
    """
    if len(calls) == 1:
        async for fresh in calls[0].outcomes():
            yield fresh
        return
    queue: asyncio.Queue[tuple[int, list[tuple[str, bytes]] | BaseException | None]] = asyncio.Queue()

    async def pump(index: int, call: ShardCall) -> None:
        try:
            async for fresh in call.outcomes():
                queue.put_nowait((index, fresh))
        except BaseException as error:
            queue.put_nowait((index, error))
            if isinstance(error, asyncio.CancelledError):
                raise
        else:
            queue.put_nowait((index, None))

    tasks = [asyncio.create_task(pump(index, call)) for index, call in enumerate(calls)]
    timed_out: list[str] = []
    running = len(tasks)
    try:
        while running:
            _, item = await queue.get()
            if item is None:
                running -= 1
            elif isinstance(item, CallTimedOut):
                timed_out.extend(item.names)
                running -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    if timed_out:
        raise CallTimedOut(timed_out)
