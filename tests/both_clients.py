"""Both clients behind one awaitable interface, so that a promise is written once and checked for both.

The ``kind`` fixture (conftest.py) is parametrized ``sync`` / ``async``. A test
awaits every call through it: the asyncio client's coroutines are awaited,
the synchronous client's blocking calls run in a worker thread
(``asyncio.to_thread``), so one ``async def`` test drives either. Only what
is about threads, tasks or event loops stays in a test of one client.

Example::

    async def test_get(kind: ClientKind, any_client: AnyClient) -> None:
        op = await kind.call(any_client.get, NAME)
        assert await kind.call(op.result, timeout=5) is not None
        names = [op.name for op in await kind.collect(any_client.list(PARENT))]
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any

import grpc
from sent_calls import SentCalls, SyncSentCalls

from lro_grpc import AsyncOperation, AsyncOperationsClient, Operation, OperationsClient

__all__ = ["AnyClient", "ClientKind", "Stepper"]

AnyClient = Any
"""An ``OperationsClient`` or an ``AsyncOperationsClient`` (whichever ``kind`` made)."""


class Stepper:
    """Steps through one iterator (sync or async) an item at a time, from the event loop."""

    def __init__(self, kind: ClientKind, iterable: Any) -> None:
        self._kind = kind
        self._iterator = aiter(iterable) if kind.is_async else iter(iterable)

    async def next(self) -> Any:
        """The next item (``StopIteration`` / ``StopAsyncIteration`` at the end)."""
        if self._kind.is_async:
            return await anext(self._iterator)
        return await asyncio.to_thread(next, self._iterator)

    async def rest(self) -> list[Any]:
        """Every item left, in order."""
        if self._kind.is_async:
            return [item async for item in self._iterator]
        return await asyncio.to_thread(list, self._iterator)


class ClientKind:
    """The synchronous or the asyncio client, and how a test drives it from an ``async def``.

    Attributes:
        is_async: the asyncio client (else the synchronous one).
        client_class: ``AsyncOperationsClient`` or ``OperationsClient``.
        handle_class: ``AsyncOperation`` or ``Operation``.
    """

    def __init__(self, *, is_async: bool) -> None:
        self.is_async = is_async
        self.client_class: type[Any] = AsyncOperationsClient if is_async else OperationsClient
        self.handle_class: type[Any] = AsyncOperation if is_async else Operation

    def __repr__(self) -> str:
        return "async" if self.is_async else "sync"

    async def call(self, function: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """``await function(...)`` for the asyncio client, ``function(...)`` in a worker thread for the sync one."""
        if self.is_async:
            return await function(*args, **kwargs)
        return await asyncio.to_thread(function, *args, **kwargs)

    async def collect(self, iterable: Iterable[Any]) -> list[Any]:
        """Every item of a pager (or its ``pages``, or a batch's iterator), in order."""
        return await Stepper(self, iterable).rest()

    def stepper(self, iterable: Any) -> Stepper:
        """Step through ``iterable`` one item at a time (to observe laziness)."""
        return Stepper(self, iterable)

    def sent_calls(self) -> SentCalls | SyncSentCalls:
        """An interceptor of this kind recording every call the client sends (give it as ``interceptors=[...]``)."""
        return SentCalls() if self.is_async else SyncSentCalls()

    @contextlib.asynccontextmanager
    async def closing(self, client: AnyClient) -> AsyncIterator[AnyClient]:
        """Yield ``client``; close it at the end (``with`` / ``async with`` for either kind)."""
        try:
            yield client
        finally:
            await self.call(client.close)

    def open(self, target: Any, **options: Any) -> contextlib.AbstractAsyncContextManager[AnyClient]:
        """A client of this kind on ``target`` (an address or a channel of this kind), closed at the end."""
        return self.closing(self.client_class(target, **options))

    @contextlib.asynccontextmanager
    async def channel(self, target: str, options: Sequence[tuple[str, Any]] = ()) -> AsyncIterator[Any]:
        """An insecure channel of this kind (``grpc.aio`` or ``grpc``) to ``target``, closed at the end."""
        if self.is_async:
            async with grpc.aio.insecure_channel(target, options=options) as aio_channel:
                yield aio_channel
        else:
            with grpc.insecure_channel(target, options=options) as sync_channel:
                yield sync_channel
