"""The Ray actor behind a cluster waiter: one client, one scheduler, one :class:`~._hub.WaitHub`."""

from __future__ import annotations

import collections
import logging
import warnings
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import ray

from lro_grpc.policies import PollPolicy
from lro_grpc.ray._hub import Chunk, HubStats, WaitHub
from lro_grpc.ray._settings import ActorSettings

__all__ = ["ActorStats", "CallCounter", "WaiterActor"]

logger = logging.getLogger("lro_grpc.ray")


class CallCounter(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]  # grpc is untyped
    """Counts the RPC attempts of the actor's client, by method, and the sweeps (first pages of listings)."""

    def __init__(self) -> None:
        self.calls: collections.Counter[str] = collections.Counter()
        self.sweeps = 0

    async def intercept_unary_unary(
        self, continuation: Callable[[Any, Any], Any], client_call_details: Any, request: Any
    ) -> Any:
        method = client_call_details.method
        if isinstance(method, bytes):
            method = method.decode()
        short = method.rsplit("/", 1)[-1]
        self.calls[short] += 1
        if short == "ListOperations" and not request.page_token:
            self.sweeps += 1
        return await continuation(client_call_details, request)


ActorStats = dict[str, Any]
"""One actor's stats as they cross the cluster (see :class:`~lro_grpc.ray.ClusterStats`)."""


class WaiterActor:
    """An asyncio actor holding the cluster's one client for ``settings``.

    Ray runs its methods on one event loop (async actor); the client, its
    scheduler and the hub live on that loop. Wrapped with ``ray.remote`` by
    :func:`remote_class`; :class:`~lro_grpc.ray.ClusterWaiter` sets the actor's
    options (name, restarts, retries) when it creates one.
    """

    def __init__(self, settings: ActorSettings) -> None:
        self._settings = settings
        self._counter = CallCounter()
        self._hub = WaitHub(lambda: settings.make_client(interceptors=[self._counter]), journal=settings.journal)
        context = ray.get_runtime_context()
        with warnings.catch_warnings():  # Ray's own property reads a deprecated one of its own
            warnings.simplefilter("ignore", DeprecationWarning)
            self._reconstructed = bool(context.was_current_actor_reconstructed)
        logger.info(
            "cluster waiter actor %s %s (%s)",
            context.get_actor_name() or "?",
            "restarted" if self._reconstructed else "started",
            settings.describe(),
        )

    @ray.method(max_task_retries=-1)  # read-only: safe to repeat on a restarted actor
    def settings(self) -> ActorSettings:
        """The settings this actor's client was built from."""
        return self._settings

    # Never replayed by Ray: a replay skips as many items as the first attempt had
    # yielded, and a restarted actor sees operations finish in another order. The
    # caller resumes instead, asking for the names it still lacks.
    @ray.method(num_returns="streaming", max_task_retries=0)
    async def stream(
        self, names: list[str], timeout: float | None, poll_policy: PollPolicy | None
    ) -> AsyncIterator[Chunk]:
        """The outcomes of ``names``, in chunks as they are known (see :meth:`WaitHub.stream`)."""
        async for chunk in self._hub.stream(names, timeout=timeout, poll_policy=poll_policy):
            yield chunk

    @ray.method(max_task_retries=-1)
    def stats(self) -> ActorStats:
        """Counts of this actor (a plain dict: it crosses the cluster)."""
        hub: HubStats = self._hub.stats()
        return {
            "pending": hub.pending,
            "kept": hub.kept,
            "active_calls": hub.active_calls,
            "calls": hub.calls,
            "shared": hub.shared,
            "rpcs": {"GetOperation": 0, "ListOperations": 0, **self._counter.calls},
            "sweeps": self._counter.sweeps,
            "reconstructed": self._reconstructed,
        }


_remote: Any = None


def remote_class() -> Any:
    """``ray.remote(WaiterActor)`` (made once per process)."""
    global _remote
    if _remote is None:
        _remote = ray.remote(WaiterActor)
    return _remote
