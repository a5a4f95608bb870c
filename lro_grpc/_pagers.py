"""The pagers of a ListOperations call: :class:`OperationPager` (blocking) and :class:`AsyncOperationPager`.

Both walk a :class:`~lro_grpc._core.ListPageState` with the page fetch their
client gives them; ``lro_grpc.client`` and ``lro_grpc.aio`` export them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Generic

from google.longrunning import operations_pb2

from lro_grpc import _core
from lro_grpc._client_base import HandleT, OperationPage

__all__ = ["AsyncOperationPager", "OperationPager"]


class _Pager(Generic[HandleT]):
    """Where a listing stands, and how a fetched page becomes an :class:`OperationPage` (both pagers)."""

    def __init__(self, state: _core.ListPageState, wrap: Callable[[operations_pb2.Operation], HandleT]) -> None:
        self._state = state
        self._wrap = wrap

    @property
    def unreachable(self) -> list[str]:
        """Locations the server reported unreachable in the pages fetched so far."""
        return list(self._state.unreachable)

    @property
    def next_page_token(self) -> str | None:
        """Token of the next page; ``None`` before the first page, empty after the last."""
        return self._state.next_page_token

    @property
    def pages_fetched(self) -> int:
        """How many pages have been fetched."""
        return self._state.pages_fetched

    def _page(self, response: operations_pb2.ListOperationsResponse) -> OperationPage[HandleT]:
        self._state.record(response)
        return OperationPage(
            operations=[self._wrap(op) for op in response.operations],
            next_page_token=response.next_page_token,
            unreachable=list(response.unreachable),
            raw=response,
        )


class OperationPager(_Pager[HandleT]):
    """Operations of a ListOperations call, fetched page by page as you iterate.

    Iterate it for the operations, or over :attr:`pages` for whole pages (use
    one or the other: they share one position). Nothing is fetched before
    iteration starts.
    """

    def __init__(
        self,
        state: _core.ListPageState,
        fetch: Callable[[operations_pb2.ListOperationsRequest], operations_pb2.ListOperationsResponse],
        wrap: Callable[[operations_pb2.Operation], HandleT],
    ) -> None:
        super().__init__(state, wrap)
        self._fetch = fetch

    @property
    def pages(self) -> Iterator[OperationPage[HandleT]]:
        """The remaining pages, each fetched when reached."""
        while (request := self._state.next_request()) is not None:
            yield self._page(self._fetch(request))

    def __iter__(self) -> Iterator[HandleT]:
        for page in self.pages:
            yield from page.operations


class AsyncOperationPager(_Pager[HandleT]):
    """Operations of a ListOperations call, fetched page by page as you ``async for`` over it.

    Iterate it for the operations, or over :attr:`pages` for whole pages (one
    or the other: they share one position). Nothing is fetched before
    iteration starts.
    """

    def __init__(
        self,
        state: _core.ListPageState,
        fetch: Callable[[operations_pb2.ListOperationsRequest], Awaitable[operations_pb2.ListOperationsResponse]],
        wrap: Callable[[operations_pb2.Operation], HandleT],
    ) -> None:
        super().__init__(state, wrap)
        self._fetch = fetch

    @property
    def pages(self) -> AsyncIterator[OperationPage[HandleT]]:
        """The remaining pages, each fetched when reached."""
        return self._pages()

    async def _pages(self) -> AsyncIterator[OperationPage[HandleT]]:
        while (request := self._state.next_request()) is not None:
            yield self._page(await self._fetch(request))

    async def __aiter__(self) -> AsyncIterator[HandleT]:
        async for page in self._pages():
            for operation in page.operations:
                yield operation
