"""The asyncio client for ``google.longrunning.Operations``.

:class:`AsyncOperationsClient` has the same methods as
:class:`~lro_grpc.client.OperationsClient`, as coroutines (``list`` returns
an async iterator). It drives the same I/O-free plans; only the RPC and the
sleep are awaited.

No event loop is captured at construction: the ``grpc.aio`` channel is created
on first use, inside the running loop, and the client then belongs to that loop.

Example::

    async with AsyncOperationsClient.for_api("servicemanagement") as client:
        op = await client.wait("operations/rollouts.svc.example.com:2016-07-16r2", timeout=300)
"""

from __future__ import annotations

import asyncio
import builtins
import functools
import types
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any, TypeVar

import grpc
from google.longrunning import operations_pb2
from google.protobuf.message import Message

from lro_grpc import _batch, _channels, _core, _fast_get, _telemetry
from lro_grpc._client_base import DEFAULT_RPC_TIMEOUT, BaseOperationsClient
from lro_grpc._core import USE_CLIENT_DEFAULT, Plan, RpcCall, RpcFailure, UseClientDefault
from lro_grpc._generated import operations_pb2_grpc
from lro_grpc._handle import check_expected_types, expect_types_on_error
from lro_grpc._pagers import AsyncOperationPager
from lro_grpc.apis import ApiPreset
from lro_grpc.errors import BatchTimeoutError
from lro_grpc.names import validate_operation_name
from lro_grpc.operation import AsyncOperation, BaseOperation, MetadataT, ResponseT
from lro_grpc.policies import DEFAULT_RETRY_POLICY, Deadline, PollPolicy, RetryPolicy
from lro_grpc.registry import TypeRegistry

__all__ = ["AsyncOperationPager", "AsyncOperationsClient"]

T = TypeVar("T")


class AsyncOperationsClient(BaseOperationsClient):
    """An asyncio client for ``google.longrunning.Operations`` over one ``grpc.aio`` channel.

    Arguments as for :class:`~lro_grpc.client.OperationsClient`; ``target`` may
    be a ready ``grpc.aio.Channel`` (used as is, not closed by the client).
    ``batch_max_in_flight`` and ``batch_qps`` limit the client's one batch
    :class:`~lro_grpc.BatchScheduler`, shared by every :meth:`as_completed`,
    :meth:`wait_all` and :class:`~lro_grpc.BatchWaiter` on this client;
    ``batch_sweep=False`` makes it poll every operation on its own instead of
    sweeping list scopes with ListOperations. ``interceptors``
    (``grpc.aio.UnaryUnaryClientInterceptor`` ...) see every call on the channel
    the client creates (give a ready channel its own).

    Raises:
        ValueError: plaintext to a host that is not loopback, or with credentials.
    """

    def __init__(
        self,
        target: str | grpc.aio.Channel,
        *,
        registry: TypeRegistry | None = None,
        retry_policy: RetryPolicy = DEFAULT_RETRY_POLICY,
        rpc_timeout: float | None = DEFAULT_RPC_TIMEOUT,
        poll_policy: PollPolicy | None = None,
        credentials: Any = None,
        quota_project_id: str | None = None,
        api: str | ApiPreset | None = None,
        plaintext: bool | None = None,
        batch_max_in_flight: int = _batch.DEFAULT_MAX_IN_FLIGHT,
        batch_qps: float | None = None,
        batch_sweep: bool = True,
        interceptors: Sequence[grpc.aio.ClientInterceptor] = (),
    ) -> None:
        super().__init__(
            registry=registry,
            retry_policy=retry_policy,
            rpc_timeout=rpc_timeout,
            poll_policy=poll_policy,
            api=api,
            batch_max_in_flight=batch_max_in_flight,
            batch_qps=batch_qps,
            batch_sweep=batch_sweep,
        )
        self._scheduler: _batch.BatchScheduler | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._channel: grpc.aio.Channel | None = None
        self._stub: Any = None
        self._make_channel: Callable[[], grpc.aio.Channel] | None
        chain = _channels.check_interceptors(interceptors)
        if isinstance(target, grpc.aio.Channel):
            if credentials is not None or quota_project_id is not None or plaintext is not None or chain:
                raise ValueError(
                    "credentials, quota_project_id, plaintext and interceptors apply only to channels the client "
                    f"creates, not to the given channel {target!r} (give interceptors to grpc.aio.*_channel)"
                )
            self._channel = target
            self._stub = operations_pb2_grpc.OperationsStub(target)
            self._owns_channel = False
            self._headers_shareable = False  # its interceptors, if any, may change a call's headers or request
            self._make_channel = None
            self.endpoint: _channels.Endpoint | None = None
        else:
            self.endpoint = _channels.resolve_endpoint(
                target, plaintext=plaintext, has_credentials=credentials is not None
            )
            self._owns_channel = True
            self._headers_shareable = not chain
            self._make_channel = functools.partial(
                _channels.create_async_channel,
                self.endpoint,
                credentials=None if self.endpoint.plaintext else credentials,
                scopes=self._scopes(),
                quota_project_id=quota_project_id,
                interceptors=chain,
            )

    @classmethod
    def for_api(
        cls,
        api: str | ApiPreset,
        *,
        credentials: Any = None,
        quota_project_id: str | None = None,
        endpoint: str | None = None,
        registry: TypeRegistry | None = None,
        retry_policy: RetryPolicy = DEFAULT_RETRY_POLICY,
        rpc_timeout: float | UseClientDefault | None = USE_CLIENT_DEFAULT,
        poll_policy: PollPolicy | None = None,
        plaintext: bool | None = None,
        batch_max_in_flight: int = _batch.DEFAULT_MAX_IN_FLIGHT,
        batch_qps: float | None = None,
        batch_sweep: bool = True,
        interceptors: Sequence[grpc.aio.ClientInterceptor] = (),
        client_options: Mapping[str, Any] | object | None = None,
        universe_domain: str | None = None,
    ) -> AsyncOperationsClient:
        """A client for one API's default host (see :meth:`OperationsClient.for_api`)."""
        target, preset, rpc_timeout_s, quota_project = cls._for_api_target(
            api,
            endpoint,
            rpc_timeout,
            quota_project_id=quota_project_id,
            client_options=client_options,
            universe_domain=universe_domain,
        )
        return cls(
            target,
            registry=registry,
            retry_policy=retry_policy,
            rpc_timeout=rpc_timeout_s,
            poll_policy=poll_policy,
            credentials=credentials,
            quota_project_id=quota_project,
            api=preset,
            plaintext=plaintext,
            batch_max_in_flight=batch_max_in_flight,
            batch_qps=batch_qps,
            batch_sweep=batch_sweep,
            interceptors=interceptors,
        )

    # -- I/O --------------------------------------------------------------------------------------

    def _current_stub(self) -> Any:
        if self._closed:
            raise RuntimeError("the AsyncOperationsClient is closed")
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif self._loop is not loop:
            raise RuntimeError("this AsyncOperationsClient is in use by another event loop; create one per loop")
        if self._stub is None:
            if self._make_channel is None:  # pragma: no cover - a given channel always has its stub
                raise RuntimeError("no channel to use")
            self._channel = self._make_channel()
            self._stub = operations_pb2_grpc.OperationsStub(self._channel)
        return self._stub

    async def _invoke(self, call: RpcCall) -> Any:
        method = getattr(self._current_stub(), call.method)
        metadata = _fast_get.aio_headers(call.metadata) if self._headers_shareable else call.metadata
        try:
            reply = await method(call.request, timeout=call.timeout, metadata=metadata)
        except grpc.aio.AioRpcError as error:
            reply = RpcFailure.from_grpc_error(error)
        return self._note_reply(reply)

    async def _run(self, plan: Plan[T]) -> T:
        return await _core.run_async(plan, self._invoke, observe=_telemetry.observer())

    def _wrap(self, operation: operations_pb2.Operation) -> AsyncOperation[Any, Any]:
        """A handle on ``operation`` bound to this client."""
        return AsyncOperation._of_client(operation, self._registry, self)

    async def fetch_operation(
        self,
        name: str,
        *,
        rpc_timeout: float | UseClientDefault | None = USE_CLIENT_DEFAULT,
        timeout: float | timedelta | UseClientDefault | None = USE_CLIENT_DEFAULT,
    ) -> operations_pb2.Operation:
        """One GetOperation of ``name``, the raw state (see :meth:`OperationsClient.fetch_operation`)."""
        return await self._fetch(name, rpc_timeout, timeout)

    def _fetch(
        self,
        name: str,
        rpc_timeout: float | UseClientDefault | None,
        timeout: float | timedelta | UseClientDefault | None,
    ) -> Awaitable[operations_pb2.Operation]:
        # What fetch_operation awaits, for get to await with one coroutine less: with the client's own
        # settings, the first attempt straight on the stub (see lro_grpc._fast_get).
        if rpc_timeout is timeout is USE_CLIENT_DEFAULT:
            return _fast_get.fetch_async(self, name, self._current_stub(), self._headers_shareable, self._invoke)
        return self._run(self._get_plan(name, rpc_timeout=rpc_timeout, timeout=timeout))

    async def _fetch_once(
        self, name: str, *, deadline: Deadline, rpc_timeout: float | None
    ) -> operations_pb2.Operation | RpcFailure:
        """One GetOperation attempt for the batch scheduler: the operation, or the failure as a value.

        Headers as for :meth:`get`, the timeout clipped to ``deadline``
        (``rpc_timeout`` ``None``: the client's). No retry and no sleep here:
        the scheduler owns retry timing in a batch (a failed poll is
        rescheduled; no worker waits out a backoff).
        """
        return await self._attempt("GetOperation", _core.get_request(name), name, deadline, rpc_timeout)

    async def _list_page_once(
        self, request: operations_pb2.ListOperationsRequest, *, deadline: Deadline, rpc_timeout: float | None
    ) -> operations_pb2.ListOperationsResponse | RpcFailure:
        """One ListOperations attempt (one page) for the batch scheduler's sweeps, as :meth:`_fetch_once`."""
        return await self._attempt("ListOperations", request, request.name, deadline, rpc_timeout)

    async def _attempt(
        self, method: _core.Method, request: Any, routing_name: str, deadline: Deadline, rpc_timeout: float | None
    ) -> Any:
        plan = _core.attempt_plan(
            method,
            request,
            routing_name=routing_name,
            deadline=deadline,
            rpc_timeout=self._rpc_timeout if rpc_timeout is None else rpc_timeout,
            clock=self._clock,
        )
        return await _core.run_async(plan, self._invoke)

    def _batch_source(self) -> _batch.BatchSource[AsyncOperation[Any, Any]]:
        """What a batch needs from this client (the waiter, the sync runner and the CLI take it)."""
        endpoint = self.endpoint.target if self.endpoint is not None else ""
        return _batch.BatchSource(
            fetch=self._fetch_once,
            wrap=self._wrap,
            list_page=self._list_page_once if self._batch_sweep else None,
            poll_policy_for=self._poll_policy_for,
            scheduler=self._batch_scheduler,
            endpoint=endpoint if isinstance(endpoint, str) else "",
            api=self.api.name if self.api is not None else "",
        )

    async def follow_operation(
        self,
        handle: BaseOperation[Any, Any],
        *,
        timeout: float | timedelta | None,
        poll_policy: PollPolicy | None,
        rpc_timeout: float | UseClientDefault | None = USE_CLIENT_DEFAULT,
        use_wait: bool,
    ) -> None:
        """Wait on ``handle``'s operation, updating it (see :meth:`OperationsClient.follow_operation`)."""
        with _telemetry.waiting(handle.name, lambda: handle.raw):
            await self._run(
                self._handle_wait_plan(
                    handle, timeout=timeout, poll_policy=poll_policy, rpc_timeout=rpc_timeout, use_wait=use_wait
                )
            )

    # -- public API -------------------------------------------------------------------------------

    def operation(
        self,
        name: str,
        *,
        response_type: type[ResponseT] | None = None,
        metadata_type: type[MetadataT] | None = None,
    ) -> AsyncOperation[ResponseT, MetadataT]:
        """A handle on operation ``name`` without fetching it (see :meth:`OperationsClient.operation`)."""
        check_expected_types(response_type, metadata_type)
        handle = self._wrap(operations_pb2.Operation(name=validate_operation_name(name)))
        return handle._expect_types(response_type, metadata_type)

    async def get(
        self,
        name: str,
        *,
        response_type: type[ResponseT] | None = None,
        metadata_type: type[MetadataT] | None = None,
        rpc_timeout: float | UseClientDefault | None = USE_CLIENT_DEFAULT,
        timeout: float | timedelta | UseClientDefault | None = USE_CLIENT_DEFAULT,
    ) -> AsyncOperation[ResponseT, MetadataT]:
        """Fetch an operation (see :meth:`OperationsClient.get`)."""
        name = validate_operation_name(name)
        check_expected_types(response_type, metadata_type)
        handle = self._wrap(await self._fetch(name, rpc_timeout, timeout))
        return handle if response_type is metadata_type is None else handle._expect_types(response_type, metadata_type)

    def list(
        self,
        parent: str,
        *,
        filter: str = "",
        page_size: int | None = None,
        return_partial_success: bool = False,
        timeout: float | timedelta | UseClientDefault | None = USE_CLIENT_DEFAULT,
    ) -> AsyncOperationPager[AsyncOperation[Any, Any]]:
        """List operations under ``parent`` as an async iterator (see :meth:`OperationsClient.list`).

        ``timeout`` bounds the whole listing, as there.

        Raises:
            InvalidNameError: ``parent`` is malformed (no RPC is made).
            TypeError: ``timeout`` is not a duration.
            ValueError: ``timeout`` is negative or not finite.
        """
        state = self._list_state(
            parent, filter=filter, page_size=page_size, return_partial_success=return_partial_success
        )
        plans = self._page_plans(timeout)

        async def fetch(request: operations_pb2.ListOperationsRequest) -> operations_pb2.ListOperationsResponse:
            return await self._run(plans(request))

        return AsyncOperationPager(state, fetch, self._wrap)

    async def cancel(
        self, name: str, *, timeout: float | timedelta | UseClientDefault | None = USE_CLIENT_DEFAULT
    ) -> None:
        """Ask the server to cancel an operation (see :meth:`OperationsClient.cancel`)."""
        await self._run(self._cancel_plan(validate_operation_name(name), timeout))

    async def delete(
        self, name: str, *, timeout: float | timedelta | UseClientDefault | None = USE_CLIENT_DEFAULT
    ) -> None:
        """Delete an operation's record (see :meth:`OperationsClient.delete`)."""
        await self._run(self._delete_plan(validate_operation_name(name), timeout))

    async def wait(
        self,
        name: str,
        *,
        response_type: type[ResponseT] | None = None,
        metadata_type: type[MetadataT] | None = None,
        timeout: float | timedelta | None = None,
        poll_policy: PollPolicy | None = None,
    ) -> AsyncOperation[ResponseT, MetadataT]:
        """Wait until an operation is done, with WaitOperation (see :meth:`OperationsClient.wait`)."""
        check_expected_types(response_type, metadata_type)
        handle: AsyncOperation[Any, Any] = self._wrap(operations_pb2.Operation(name=validate_operation_name(name)))
        handle._expect_types(response_type, metadata_type)
        await self.follow_operation(handle, timeout=timeout, poll_policy=poll_policy, use_wait=True)
        return handle

    # -- many operations at once --------------------------------------------------------------------

    def as_completed(
        self,
        names: Iterable[str] | None,
        *,
        response_type: type[ResponseT] | None = None,
        metadata_type: type[MetadataT] | None = None,
        timeout: float | timedelta | None = None,
        poll_policy: PollPolicy | None = None,
        progress: Callable[[_batch.BatchProgress], object] | None = None,
        journal: _batch.JournalPath | None = None,
    ) -> AsyncIterator[AsyncOperation[ResponseT, MetadataT]]:
        """Yield each operation as soon as a poll sees it done, however many there are.

        One scheduler per client polls every operation of all its batches over
        its channel: no task per operation, at most ``batch_max_in_flight`` RPCs
        at once and at most ``batch_qps`` GetOperation calls per second for all
        batches together, and a ``RESOURCE_EXHAUSTED`` slows all of them down.
        Failed, cancelled and not-found operations are yielded like the others
        (check ``op.error``); they do not stop the batch.

        Args:
            names: operation names (validated before any RPC; duplicates polled once).
            timeout: overall time to wait, seconds or ``timedelta``; ``None`` waits for ever.
            response_type: every response's message class (see :meth:`OperationsClient.operation`).
            metadata_type: every metadata's message class (see :meth:`OperationsClient.operation`).
            poll_policy: polling for every operation (default: per operation,
                what :meth:`wait` would use: the client's, else its API's preset).
            journal: a file that makes the batch durable: run again with the
                same journal (and the same names, more, or ``None`` for every
                name in it), a killed job resumes; outcomes already delivered
                are not yielded or polled again, at most the one in hand when
                it died is repeated. See :class:`~lro_grpc.BatchWaiter`.
            progress: called with :class:`~lro_grpc.BatchProgress` counts as results come in.

        Raises:
            BatchTimeoutError: after the last operation that finished in time, if
                some were still running at the deadline (its ``pending`` holds
                their last seen state).
            InvalidNameError: a malformed name (before any RPC).
            JournalError: the journal is in use, unreadable, or another endpoint's or API's.
        """
        names = self._batch_names(names, response_type, metadata_type)
        completed = _batch.as_completed(
            self,
            names,
            timeout=timeout,
            poll_policy=poll_policy,
            progress=progress,
            rpc_timeout=None,
            journal=journal,
        )
        completed = _telemetry.traced_results_async(completed, names or [], lambda op: op.raw)
        if response_type is None and metadata_type is None:
            return completed
        return _expect_types_async(completed, response_type, metadata_type)

    async def wait_all(
        self,
        names: Iterable[str] | None,
        *,
        response_type: type[ResponseT] | None = None,
        metadata_type: type[MetadataT] | None = None,
        timeout: float | timedelta | None = None,
        poll_policy: PollPolicy | None = None,
        progress: Callable[[_batch.BatchProgress], object] | None = None,
        journal: _batch.JournalPath | None = None,
    ) -> builtins.list[AsyncOperation[ResponseT, MetadataT]]:
        """Wait for every operation and return them in input order.

        Arguments as for :meth:`as_completed`. Failed, cancelled and not-found
        operations are results, not exceptions.

        Raises:
            BatchTimeoutError: some operations were still running at the
                deadline; its ``results`` holds every name's finished operation
                or last seen state, in input order.
        """
        names = self._batch_names(names, response_type, metadata_type)
        with _telemetry.tracing_batch(names or []) as trace:
            try:
                results = await _batch.wait_all(
                    self,
                    names,
                    timeout=timeout,
                    poll_policy=poll_policy,
                    progress=progress,
                    rpc_timeout=None,
                    journal=journal,
                )
            except BatchTimeoutError as error:
                expect_types_on_error(error, response_type, metadata_type)
                raise
            typed = self._typed_results(results, trace, response_type, metadata_type)
        return typed

    def _batch_scheduler(self) -> _batch.BatchScheduler:
        """The client's one batch scheduler (made on first use)."""
        if self._closed:
            raise RuntimeError("the AsyncOperationsClient is closed")
        if self._scheduler is None:
            self._scheduler = _batch.BatchScheduler(
                self._fetch_once,
                max_in_flight=self._batch_max_in_flight,
                qps=self._batch_qps,
                list_fetch=self._list_page_once if self._batch_sweep else None,
            )
        return self._scheduler

    async def close(self) -> None:
        """Close the channel (if the client created it) and end its batches. Idempotent.

        A batch still being iterated raises ``RuntimeError`` at its next step.
        """
        if self._closed:
            return
        self._closed = True
        if self._scheduler is not None:
            await self._scheduler.aclose(RuntimeError("the AsyncOperationsClient was closed while waiting"))
        if self._owns_channel and self._channel is not None:
            await self._channel.close()

    async def __aenter__(self) -> AsyncOperationsClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: types.TracebackType | None,
    ) -> None:
        await self.close()


async def _expect_types_async(
    handles: AsyncIterator[AsyncOperation[Any, Any]],
    response_type: type[Message] | None,
    metadata_type: type[Message] | None,
) -> AsyncIterator[AsyncOperation[Any, Any]]:
    """``handles`` as they come, each set to decode into the given classes (see ``expect_types_each``)."""
    try:
        async for handle in handles:
            yield handle._expect_types(response_type, metadata_type)
    except BatchTimeoutError as error:
        expect_types_on_error(error, response_type, metadata_type)
        raise
    finally:
        close = getattr(handles, "aclose", None)
        if close is not None:
            await close()
