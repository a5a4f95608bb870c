"""Handles on long-running operations: :class:`Operation` (sync) and :class:`AsyncOperation`.

Both share :class:`BaseOperation`, which holds the last seen
``google.longrunning.Operation`` and everything that needs no I/O: typed
metadata and response (unpacked through a :class:`~lro_grpc.registry.TypeRegistry`),
the error as an exception, and the REST JSON form. The subclasses add the
methods that talk to the server (``refresh``, ``cancel``, ``delete``,
``result``, ``wait``) through the client the handle is bound to.

Example::

    op: Operation[Instance, OperationMetadata] = client.get(name)
    op.metadata.verb                  # typed OperationMetadata
    instance = op.result(timeout=600)
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Protocol, cast

from google.longrunning import operations_pb2

from lro_grpc import _core
from lro_grpc._handle import (
    BaseOperation,
    MetadataT,
    ResponseT,
)
from lro_grpc.errors import OperationError
from lro_grpc.policies import PollPolicy
from lro_grpc.registry import TypeRegistry

__all__ = [
    "AsyncOperation",
    "AsyncOperationsBackend",
    "BaseOperation",
    "MetadataT",
    "Operation",
    "OperationsBackend",
    "ResponseT",
]

Timeout = float | timedelta | _core.UseClientDefault | None
"""An overall call timeout: seconds, ``timedelta``, ``USE_CLIENT_DEFAULT`` or ``None`` (none)."""

RpcTimeout = float | _core.UseClientDefault | None
"""A per-attempt timeout: seconds, ``USE_CLIENT_DEFAULT`` or ``None`` (bounded by the deadline only)."""


class OperationsBackend(Protocol):
    """What an :class:`Operation` needs from the client it is bound to.

    :class:`~lro_grpc.OperationsClient` implements it; the handle calls
    nothing else of the client's. Another implementation (a test double, a
    client of another transport) makes handles work over it unchanged.
    """

    @property
    def registry(self) -> TypeRegistry:
        """The registry the handle unpacks with."""
        ...

    def fetch_operation(
        self, name: str, *, rpc_timeout: RpcTimeout = ..., timeout: Timeout = ...
    ) -> operations_pb2.Operation:
        """One GetOperation of ``name`` (with the client's retries): the raw state."""
        ...

    def follow_operation(
        self,
        handle: BaseOperation[Any, Any],
        *,
        timeout: float | timedelta | None,
        poll_policy: PollPolicy | None,
        rpc_timeout: RpcTimeout = ...,
        use_wait: bool,
    ) -> None:
        """Look at ``handle``'s operation until it is done or ``timeout`` passes, updating the handle.

        Raises:
            WaitTimeoutError: not done in time; its ``operation`` is ``handle``.
            RpcError: an RPC failed for good.
        """
        ...

    def cancel(self, name: str, *, timeout: Timeout = ...) -> None:
        """Ask the server to cancel operation ``name``."""
        ...

    def delete(self, name: str, *, timeout: Timeout = ...) -> None:
        """Delete operation ``name``'s record."""
        ...


class AsyncOperationsBackend(Protocol):
    """What an :class:`AsyncOperation` needs from its client (see :class:`OperationsBackend`).

    :class:`~lro_grpc.AsyncOperationsClient` implements it.
    """

    @property
    def registry(self) -> TypeRegistry:
        """The registry the handle unpacks with."""
        ...

    async def fetch_operation(
        self, name: str, *, rpc_timeout: RpcTimeout = ..., timeout: Timeout = ...
    ) -> operations_pb2.Operation:
        """One GetOperation of ``name`` (see :meth:`OperationsBackend.fetch_operation`)."""
        ...

    async def follow_operation(
        self,
        handle: BaseOperation[Any, Any],
        *,
        timeout: float | timedelta | None,
        poll_policy: PollPolicy | None,
        rpc_timeout: RpcTimeout = ...,
        use_wait: bool,
    ) -> None:
        """Wait on ``handle``'s operation (see :meth:`OperationsBackend.follow_operation`)."""
        ...

    async def cancel(self, name: str, *, timeout: Timeout = ...) -> None:
        """Ask the server to cancel operation ``name``."""
        ...

    async def delete(self, name: str, *, timeout: Timeout = ...) -> None:
        """Delete operation ``name``'s record."""
        ...


class Operation(BaseOperation[ResponseT, MetadataT]):
    """A handle on a long-running operation, with blocking I/O methods.

    Get one from :meth:`OperationsClient.get`, :meth:`OperationsClient.list`,
    :meth:`OperationsClient.wait` or, from a name alone (nothing fetched yet),
    :meth:`OperationsClient.operation`.
    """

    def __init__(
        self,
        operation: operations_pb2.Operation,
        *,
        registry: TypeRegistry | None = None,
        client: OperationsBackend | None = None,
    ) -> None:
        super().__init__(operation, registry=registry, client=client)

    @property
    def client(self) -> OperationsBackend | None:
        """The client the handle talks to (an :class:`~lro_grpc.OperationsClient`), or ``None``."""
        return cast("OperationsBackend | None", self._client)

    def _backend(self) -> OperationsBackend:
        return cast(OperationsBackend, self._require_client())

    def refresh(
        self,
        *,
        rpc_timeout: float | _core.UseClientDefault | None = _core.USE_CLIENT_DEFAULT,
        timeout: float | timedelta | _core.UseClientDefault | None = _core.USE_CLIENT_DEFAULT,
    ) -> None:
        """Fetch the operation's current state (one GetOperation, with retries).

        Args:
            rpc_timeout: timeout of each attempt (default: the client's).
            timeout: overall time for the call and its retries (default: the
                client's retry policy's, 60 s).

        Raises:
            OperationNotFoundError: no such operation (or its record expired).
            RpcError: the RPC failed.
        """
        client = self._backend()
        self._update(client.fetch_operation(self.name, rpc_timeout=rpc_timeout, timeout=timeout))

    def cancel(self, *, timeout: float | timedelta | _core.UseClientDefault | None = _core.USE_CLIENT_DEFAULT) -> None:
        """Ask the server to cancel the operation (best effort; it may still finish).

        The handle is not changed: keep polling (``result``) to see the outcome;
        a cancelled operation ends with :class:`~lro_grpc.errors.OperationCancelledError`.

        Args:
            timeout: overall time for the call and its retries (see :meth:`refresh`).
        """
        client = self._backend()
        client.cancel(self.name, timeout=timeout)

    def delete(self, *, timeout: float | timedelta | _core.UseClientDefault | None = _core.USE_CLIENT_DEFAULT) -> None:
        """Delete the operation's record on the server (does not cancel it).

        Args:
            timeout: overall time for the call and its retries (see :meth:`refresh`).
        """
        client = self._backend()
        client.delete(self.name, timeout=timeout)

    def result(
        self,
        timeout: float | timedelta | None = None,
        *,
        poll_policy: PollPolicy | None = None,
        rpc_timeout: float | _core.UseClientDefault | None = _core.USE_CLIENT_DEFAULT,
    ) -> ResponseT | None:
        """Poll with GetOperation until the operation is done, then return its response.

        Args:
            timeout: the overall wait in seconds or ``timedelta``; ``None`` waits for ever.
            poll_policy: the interval between polls (default: the client's, else the API's preset).
            rpc_timeout: the timeout of each RPC, which is not the overall wait.

        Returns:
            The typed response, or ``None`` for an operation that finished with no value.

        Raises:
            OperationCancelledError: the operation was cancelled.
            OperationError: the operation failed on the server.
            WaitTimeoutError: not done within ``timeout``; its ``operation`` is this handle.
            RpcError: an RPC failed for good.
            UnknownTypeError: the response type is not registered.
        """
        self._until_done(timeout, poll_policy, use_wait=False, rpc_timeout=rpc_timeout)
        return self._outcome()

    def exception(
        self,
        timeout: float | timedelta | None = None,
        *,
        poll_policy: PollPolicy | None = None,
    ) -> OperationError | None:
        """Poll until the operation is done, then return its error instead of raising it.

        Like ``google.api_core.operation.Operation.exception()``.

        Args:
            timeout: the overall wait in seconds or ``timedelta``; ``None`` waits for ever.
            poll_policy: the interval between polls (default: the client's, else the API's preset).

        Returns:
            The :class:`~lro_grpc.errors.OperationError` (an
            :class:`~lro_grpc.errors.OperationCancelledError` if cancelled), or
            ``None`` if the operation succeeded.

        Raises:
            WaitTimeoutError: not done within ``timeout``; its ``operation`` is this handle.
            RpcError: an RPC failed for good.
        """
        self._until_done(timeout, poll_policy, use_wait=False)
        return self.error

    def wait(
        self,
        timeout: float | timedelta | None = None,
        *,
        poll_policy: PollPolicy | None = None,
    ) -> Operation[ResponseT, MetadataT]:
        """Wait until the operation is done using WaitOperation (or polling), and return this handle.

        Unlike :meth:`result`, a failed operation does not raise: inspect :attr:`error`.

        Raises:
            WaitTimeoutError: not done within ``timeout``; its ``operation`` is this handle.
            RpcError: an RPC failed for good.
        """
        self._until_done(timeout, poll_policy, use_wait=True)
        return self

    def _until_done(
        self,
        timeout: float | timedelta | None,
        poll_policy: PollPolicy | None,
        *,
        use_wait: bool,
        rpc_timeout: float | _core.UseClientDefault | None = _core.USE_CLIENT_DEFAULT,
    ) -> None:
        if not self.done:
            client = self._backend()
            client.follow_operation(
                self, timeout=timeout, poll_policy=poll_policy, rpc_timeout=rpc_timeout, use_wait=use_wait
            )


class AsyncOperation(BaseOperation[ResponseT, MetadataT]):
    """A handle on a long-running operation, with asyncio I/O methods.

    The same data API as :class:`Operation`; ``refresh``, ``cancel``,
    ``delete``, ``result`` and ``wait`` are coroutines.
    """

    def __init__(
        self,
        operation: operations_pb2.Operation,
        *,
        registry: TypeRegistry | None = None,
        client: AsyncOperationsBackend | None = None,
    ) -> None:
        super().__init__(operation, registry=registry, client=client)

    @property
    def client(self) -> AsyncOperationsBackend | None:
        """The client the handle talks to (an :class:`~lro_grpc.AsyncOperationsClient`), or ``None``."""
        return cast("AsyncOperationsBackend | None", self._client)

    def _backend(self) -> AsyncOperationsBackend:
        return cast(AsyncOperationsBackend, self._require_client())

    async def refresh(
        self,
        *,
        rpc_timeout: float | _core.UseClientDefault | None = _core.USE_CLIENT_DEFAULT,
        timeout: float | timedelta | _core.UseClientDefault | None = _core.USE_CLIENT_DEFAULT,
    ) -> None:
        """Fetch the operation's current state (see :meth:`Operation.refresh`)."""
        client = self._backend()
        self._update(await client.fetch_operation(self.name, rpc_timeout=rpc_timeout, timeout=timeout))

    async def cancel(
        self, *, timeout: float | timedelta | _core.UseClientDefault | None = _core.USE_CLIENT_DEFAULT
    ) -> None:
        """Ask the server to cancel the operation (see :meth:`Operation.cancel`)."""
        client = self._backend()
        await client.cancel(self.name, timeout=timeout)

    async def delete(
        self, *, timeout: float | timedelta | _core.UseClientDefault | None = _core.USE_CLIENT_DEFAULT
    ) -> None:
        """Delete the operation's record on the server (does not cancel it)."""
        client = self._backend()
        await client.delete(self.name, timeout=timeout)

    async def result(
        self,
        timeout: float | timedelta | None = None,
        *,
        poll_policy: PollPolicy | None = None,
        rpc_timeout: float | _core.UseClientDefault | None = _core.USE_CLIENT_DEFAULT,
    ) -> ResponseT | None:
        """Poll until done and return the typed response (see :meth:`Operation.result`)."""
        await self._until_done(timeout, poll_policy, use_wait=False, rpc_timeout=rpc_timeout)
        return self._outcome()

    async def exception(
        self,
        timeout: float | timedelta | None = None,
        *,
        poll_policy: PollPolicy | None = None,
    ) -> OperationError | None:
        """Poll until done, then return the error instead of raising it (see :meth:`Operation.exception`)."""
        await self._until_done(timeout, poll_policy, use_wait=False)
        return self.error

    async def wait(
        self,
        timeout: float | timedelta | None = None,
        *,
        poll_policy: PollPolicy | None = None,
    ) -> AsyncOperation[ResponseT, MetadataT]:
        """Wait until done and return this handle (see :meth:`Operation.wait`)."""
        await self._until_done(timeout, poll_policy, use_wait=True)
        return self

    async def _until_done(
        self,
        timeout: float | timedelta | None,
        poll_policy: PollPolicy | None,
        *,
        use_wait: bool,
        rpc_timeout: float | _core.UseClientDefault | None = _core.USE_CLIENT_DEFAULT,
    ) -> None:
        if not self.done:
            client = self._backend()
            await client.follow_operation(
                self, timeout=timeout, poll_policy=poll_policy, rpc_timeout=rpc_timeout, use_wait=use_wait
            )
