"""The asyncio client a synchronous client's batches poll with, on the batch runner's background loop.

:class:`~lro_grpc.OperationsClient` keeps its own settings here when it is made
(checking the ``async_*`` arguments then, before any batch), and
:meth:`BackgroundClient.opener` tells the batch runner how to open the asyncio
client on its event loop when a batch first needs it; :meth:`BackgroundClient.runner`
makes that runner once, for all of the client's batches.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import grpc

from lro_grpc import _channels

if TYPE_CHECKING:
    from google.longrunning import operations_pb2

    from lro_grpc._batch import SyncBatchRunner
    from lro_grpc.aio import AsyncOperationsClient

T = TypeVar("T")

__all__ = ["BackgroundClient"]


class BackgroundClient(Generic[T]):
    """What a synchronous client's batches open their asyncio client with.

    Args:
        target: the synchronous client's target; a ready ``grpc.Channel`` has no
            address to open another channel to, so ``async_channel_factory`` is
            needed then.
        settings: the asyncio client's keyword arguments besides its channel.
        credentials: as for the synchronous client.
        quota_project_id: as for the synchronous client.
        plaintext: as for the synchronous client.
        interceptors: the synchronous client's interceptors, checked.
        async_interceptors: ``grpc.aio`` interceptors for the asyncio client's channel.
        async_channel_factory: opens the asyncio client's channel instead.

    Raises:
        TypeError: ``async_channel_factory`` is not callable, or an interceptor has the wrong type.
        ValueError: ``async_interceptors`` with ``async_channel_factory``.
    """

    def __init__(
        self,
        target: str | grpc.Channel,
        *,
        settings: dict[str, Any],
        credentials: Any,
        quota_project_id: str | None,
        plaintext: bool | None,
        interceptors: Sequence[Any],
        async_interceptors: Sequence[Any] | None,
        async_channel_factory: Callable[[], grpc.aio.Channel] | None,
    ) -> None:
        async_chain = (
            None
            if async_interceptors is None
            else _channels.check_interceptors(async_interceptors, what="async_interceptors")
        )
        if async_channel_factory is not None and not callable(async_channel_factory):
            raise TypeError(f"async_channel_factory must be callable, got {async_channel_factory!r}")
        if async_channel_factory is not None and async_chain:
            raise ValueError("async_interceptors do not apply to async_channel_factory's channel: give them to it")
        self._interceptors = interceptors
        self._async_interceptors = async_chain
        self._async_channel_factory = async_channel_factory
        self._async_settings = settings
        self._async_target: dict[str, Any] | None = None
        self._runner: SyncBatchRunner[T] | None = None
        self._runner_lock = threading.Lock()
        if not isinstance(target, grpc.Channel):
            self._async_target = dict(
                target=target,
                credentials=credentials,
                quota_project_id=quota_project_id,
                plaintext=plaintext,
                interceptors=async_chain or (),
            )

    def opener(self) -> Callable[[], AbstractAsyncContextManager[AsyncOperationsClient]]:
        """How the batch waiter opens its asyncio client (called on its event loop)."""
        from lro_grpc.aio import AsyncOperationsClient

        settings = self._async_settings
        factory = self._async_channel_factory
        if factory is None:
            target = self._async_target
            if target is None:
                raise RuntimeError(
                    "as_completed() and wait_all() on a client made from a ready grpc.Channel need "
                    "async_channel_factory= (how to open the grpc.aio channel the batch waiter polls over)"
                )
            if self._interceptors and self._async_interceptors is None:
                raise ValueError(
                    "interceptors= apply to the synchronous channel; the batch waiter opens a grpc.aio channel: "
                    "pass async_interceptors= (grpc.aio interceptors, or [] for none) to the client"
                )
            return lambda: AsyncOperationsClient(**target, **settings)

        @contextlib.asynccontextmanager
        async def open_on_loop() -> AsyncIterator[AsyncOperationsClient]:
            channel = factory()
            if not isinstance(channel, grpc.aio.Channel):
                raise TypeError(f"async_channel_factory must return a grpc.aio.Channel, got {channel!r}")
            try:
                async with AsyncOperationsClient(channel, **settings) as client:
                    yield client
            finally:
                await channel.close()

        return open_on_loop

    def runner(self, wrap: Callable[[operations_pb2.Operation], T]) -> SyncBatchRunner[T]:
        """The batch runner of the client's batches, made on first use (thread-safe)."""
        open_batch_client = self.opener()
        with self._runner_lock:
            if self._runner is None:
                from lro_grpc._batch import SyncBatchRunner

                self._runner = SyncBatchRunner(open_batch_client, wrap=wrap)
            return self._runner

    def close(self) -> None:
        """Stop the batch runner's loop, if one was made. Idempotent."""
        with self._runner_lock:
            runner, self._runner = self._runner, None
        if runner is not None:
            runner.close()
