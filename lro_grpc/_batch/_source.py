"""What a batch needs from a client, as one frozen value: :class:`BatchSource`.

An :class:`~lro_grpc.AsyncOperationsClient` builds it (``_batch_source()``);
the waiter, the synchronous runner and the CLI's progress display take it (or
derive one with :func:`dataclasses.replace`), so no part of the batch reads a
client's attributes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar, runtime_checkable

from google.longrunning import operations_pb2

from lro_grpc._batch._ports import Fetch, ListPage
from lro_grpc.policies import PollPolicy

if TYPE_CHECKING:
    from lro_grpc._batch._scheduler import BatchScheduler

__all__ = ["BatchClient", "BatchSource", "as_batch_source"]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


@dataclasses.dataclass(frozen=True)
class BatchSource(Generic[T_co]):
    """A client's side of a batch.

    Attributes:
        fetch: one GetOperation attempt (failures returned as values, see :class:`~._ports.Fetch`).
        wrap: the handle reported for a finished (or timed out) operation.
        list_page: one ListOperations page attempt; ``None``: no sweeps, every
            operation is polled on its own.
        poll_policy_for: the default poll policy for an operation name (the
            API presets); ``None``: the waiter's.
        scheduler: the client's shared scheduler (made on first call);
            ``None``: each waiter makes its own.
        endpoint: what a journal records the client by (``""``: unknown).
        api: the API a journal records (``""``: told by the first name).
    """

    fetch: Fetch
    wrap: Callable[[operations_pb2.Operation], T_co]
    list_page: ListPage | None = None
    poll_policy_for: Callable[[str, PollPolicy | None], PollPolicy] | None = None
    scheduler: Callable[[], BatchScheduler] | None = None
    endpoint: str = ""
    api: str = ""


@runtime_checkable
class BatchClient(Protocol[T_co]):
    """A client that builds a :class:`BatchSource` (:class:`~lro_grpc.AsyncOperationsClient`)."""

    def _batch_source(self) -> BatchSource[T_co]:
        """The client's side of a batch."""
        ...


def as_batch_source(client: BatchSource[T] | BatchClient[T]) -> BatchSource[T]:
    """``client``'s :class:`BatchSource`: ``client`` itself if it is one.

    Raises:
        TypeError: ``client`` is neither a :class:`BatchSource` nor a client that builds one.
    """
    if isinstance(client, BatchSource):
        return client
    if isinstance(client, BatchClient):
        source: object = client._batch_source()
        if isinstance(source, BatchSource):
            return source
    raise TypeError(f"client must be an AsyncOperationsClient or a BatchSource, got {client!r}")
