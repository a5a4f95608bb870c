"""The synchronous client for ``google.longrunning.Operations``.

:class:`OperationsClient` performs the plans :class:`BaseOperationsClient`
builds (see :mod:`lro_grpc._client_base`) with blocking gRPC calls;
:class:`~lro_grpc.aio.AsyncOperationsClient` performs the same plans with
``await``.

Example::

    with OperationsClient.for_api("financialservices") as client:
        op = client.get("projects/my-proj/locations/us-central1/operations/op-123")
        instance = op.result(timeout=600)
"""

from __future__ import annotations

import builtins
import types
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
from google.longrunning import operations_pb2

from lro_grpc import _channels, _client_base, _core, _fast_get
from lro_grpc._background import BackgroundClient
from lro_grpc._batch._settings import DEFAULT_MAX_IN_FLIGHT
from lro_grpc._client_base import DEFAULT_RPC_TIMEOUT, BaseOperationsClient, OperationPage
from lro_grpc._core import USE_CLIENT_DEFAULT, Plan, RpcCall, RpcFailure, UseClientDefault
from lro_grpc._generated import operations_pb2_grpc
from lro_grpc._handle import check_expected_types, expect_types_each, expect_types_on_error
from lro_grpc._pagers import OperationPager
from lro_grpc.apis import ApiPreset
from lro_grpc.errors import BatchTimeoutError
from lro_grpc.names import validate_operation_name
from lro_grpc.operation import BaseOperation, MetadataT, Operation, ResponseT
from lro_grpc.policies import DEFAULT_RETRY_POLICY, PollPolicy, RetryPolicy
from lro_grpc.registry import TypeRegistry

if TYPE_CHECKING:
    # Imported when a batch is first waited on (see _runner): not every program needs them.
    from lro_grpc import _batch

__all__ = ["DEFAULT_RPC_TIMEOUT", "BaseOperationsClient", "OperationPage", "OperationPager", "OperationsClient"]

T = TypeVar("T")


class OperationsClient(BaseOperationsClient):
    """A blocking, thread-safe client for ``google.longrunning.Operations`` over one channel.

    Args:
        target: ``host:port`` to connect to, or a ready ``grpc.Channel`` (which
            the client uses as is and does not close).
        registry: the type registry for metadata, responses and error details.
        retry_policy: retries of transient RPC failures.
        rpc_timeout: timeout of each RPC, in seconds.
        poll_policy: default interval between polls (default: the API's preset).
        credentials: ``google.auth`` credentials for TLS (default: Application Default Credentials).
        quota_project_id: the project billed for quota.
        api: the API's short name or preset (scopes, default polling).
        plaintext: ``True`` for an unencrypted channel (loopback hosts only),
            ``False`` for TLS, ``None`` to choose (plaintext for loopback hosts
            without credentials). ``LRO_GRPC_EMULATOR_HOST`` overrides ``target``.
        batch_max_in_flight: GetOperation RPCs in flight at most, over all of
            this client's :meth:`as_completed` / :meth:`wait_all` batches together.
        batch_qps: calls per second at most, over all of those batches
            together (keep a job under the API's quota); ``None`` for no budget.
        batch_sweep: let those batches look at many operations of one list
            scope (a location, a service) with one ListOperations listing
            when that takes fewer calls than polling each; ``False`` polls
            every operation with its own GetOperation.
        interceptors: ``grpc.UnaryUnaryClientInterceptor`` (and the like) that see
            every call on the client's channel (the given one included).
        async_interceptors: ``grpc.aio`` interceptors for the channel the batch
            waiter (:meth:`as_completed`, :meth:`wait_all`) opens; required there
            when ``interceptors`` are given, so no channel goes without them
            (``[]`` to run the batch waiter without).
        async_channel_factory: makes the ``grpc.aio.Channel`` the batch waiter
            uses (called on its event loop; the client closes it), e.g.
            ``lambda: grpc.aio.secure_channel(host, creds)``. Needed for
            :meth:`as_completed` and :meth:`wait_all` when ``target`` is a
            ready ``grpc.Channel``.

    Raises:
        ValueError: plaintext to a host that is not loopback, or with credentials.
    """

    def __init__(
        self,
        target: str | grpc.Channel,
        *,
        registry: TypeRegistry | None = None,
        retry_policy: RetryPolicy = DEFAULT_RETRY_POLICY,
        rpc_timeout: float | None = DEFAULT_RPC_TIMEOUT,
        poll_policy: PollPolicy | None = None,
        credentials: Any = None,
        quota_project_id: str | None = None,
        api: str | ApiPreset | None = None,
        plaintext: bool | None = None,
        batch_max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        batch_qps: float | None = None,
        batch_sweep: bool = True,
        interceptors: Sequence[Any] = (),
        async_interceptors: Sequence[Any] | None = None,
        async_channel_factory: Callable[[], grpc.aio.Channel] | None = None,
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
        chain = _channels.check_interceptors(interceptors)
        # The batch waiter's asyncio client: these settings, its own channel, opened when first needed.
        self._background: BackgroundClient[Operation[Any, Any]] = BackgroundClient(
            target,
            settings=dict(
                registry=self._registry,
                retry_policy=retry_policy,
                rpc_timeout=rpc_timeout,
                poll_policy=poll_policy,
                api=self._api,
                batch_max_in_flight=self._batch_max_in_flight,
                batch_qps=self._batch_qps,
                batch_sweep=batch_sweep,
            ),
            credentials=credentials,
            quota_project_id=quota_project_id,
            plaintext=plaintext,
            interceptors=chain,
            async_interceptors=async_interceptors,
            async_channel_factory=async_channel_factory,
        )
        self._channel, self.endpoint = _channels.sync_channel_for(
            target,
            credentials=credentials,
            scopes=self._scopes(),
            quota_project_id=quota_project_id,
            plaintext=plaintext,
            interceptors=chain,
        )
        self._owns_channel = self.endpoint is not None
        self._requests_shareable = self._owns_channel and not chain  # no interceptor is handed our requests
        self._stub = operations_pb2_grpc.OperationsStub(self._channel)

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
        batch_max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        batch_qps: float | None = None,
        batch_sweep: bool = True,
        interceptors: Sequence[Any] = (),
        async_interceptors: Sequence[Any] | None = None,
        client_options: Mapping[str, Any] | object | None = None,
        universe_domain: str | None = None,
    ) -> OperationsClient:
        """A client for one API's default host over TLS with Application Default Credentials.

        Args:
            api: ``"financialservices"``, ``"servicemanagement"`` or an :class:`~lro_grpc.apis.ApiPreset`.
            credentials: explicit ``google.auth`` credentials instead of ADC.
            quota_project_id: the project billed for quota.
            endpoint: ``host:port`` instead of the API's default host.
            registry: see :class:`OperationsClient`.
            retry_policy: see :class:`OperationsClient`.
            rpc_timeout: per-RPC timeout (default: the API's, 10 s).
            poll_policy: default polling (default: the API's preset).
            plaintext: see :class:`OperationsClient`.
            batch_max_in_flight: see :class:`OperationsClient`.
            batch_qps: see :class:`OperationsClient`.
            batch_sweep: see :class:`OperationsClient`.
            interceptors: see :class:`OperationsClient`.
            async_interceptors: see :class:`OperationsClient`.
            client_options: what google-api-core clients take: a dict or a
                ``google.api_core.client_options.ClientOptions`` with
                ``api_endpoint``, ``quota_project_id`` and ``universe_domain``
                (any other option set raises ``ValueError``).
            universe_domain: the universe's domain, replacing ``googleapis.com``
                in the default host (default: ``client_options``, then the
                ``GOOGLE_CLOUD_UNIVERSE_DOMAIN`` environment variable).

        Raises:
            ValueError: an unsupported option, or one setting given twice with different values.
        """
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
            async_interceptors=async_interceptors,
        )

    # -- I/O --------------------------------------------------------------------------------------

    def _invoke(self, call: RpcCall) -> Any:
        return self._note_reply(self._attempt(call))

    def _attempt(self, call: RpcCall) -> Any:
        if self._closed:
            raise RuntimeError("the OperationsClient is closed")
        method = getattr(self._stub, call.method)
        if not call.near_deadline or call.timeout is None:
            try:
                return method(call.request, timeout=call.timeout, metadata=call.metadata)
            except grpc.RpcError as error:
                return RpcFailure.from_grpc_error(error)
        # Near the caller's deadline the wait is bounded on our own clock, not only by gRPC's
        # deadline: under CPU contention a blocking call has returned hundreds of ms past it.
        future = method.future(call.request, timeout=call.timeout, metadata=call.metadata)
        try:
            return future.result(timeout=call.timeout)
        except grpc.FutureTimeoutError:
            future.cancel()
            return _core.own_deadline_failure(call)
        except grpc.RpcError as error:
            return RpcFailure.from_grpc_error(error)

    def _run(self, plan: Plan[T]) -> T:
        return _core.run_sync(plan, self._invoke, observe=_client_base.plan_observer())

    def _wrap(self, operation: operations_pb2.Operation) -> Operation[Any, Any]:
        """A handle on ``operation`` bound to this client."""
        return Operation._of_client(operation, self._registry, self)

    def fetch_operation(
        self,
        name: str,
        *,
        rpc_timeout: float | UseClientDefault | None = USE_CLIENT_DEFAULT,
        timeout: float | timedelta | UseClientDefault | None = USE_CLIENT_DEFAULT,
    ) -> operations_pb2.Operation:
        """One GetOperation of ``name``, with retries: the raw ``google.longrunning.Operation``.

        Part of the interface handles use (:class:`~lro_grpc.operation.OperationsBackend`);
        :meth:`get` is this wrapped in a handle.

        Args:
            name: an operation name, already validated.
            rpc_timeout: timeout of each attempt (default: the client's).
            timeout: overall time for the call and its retries (default: the retry policy's).

        Raises:
            OperationNotFoundError: no such operation.
            RpcError: the RPC failed.
        """
        if rpc_timeout is timeout is USE_CLIENT_DEFAULT:
            return _fast_get.fetch(self, name, self._stub, self._requests_shareable, self._invoke)
        return self._run(self._get_plan(name, rpc_timeout=rpc_timeout, timeout=timeout))

    def follow_operation(
        self,
        handle: BaseOperation[Any, Any],
        *,
        timeout: float | timedelta | None,
        poll_policy: PollPolicy | None,
        rpc_timeout: float | UseClientDefault | None = USE_CLIENT_DEFAULT,
        use_wait: bool,
    ) -> None:
        """Look at ``handle``'s operation until it is done or ``timeout`` passes, updating ``handle``.

        Part of the interface handles use (:class:`~lro_grpc.operation.OperationsBackend`):
        ``result()`` and ``wait()`` of a handle are this.

        Args:
            handle: the handle to update with every state seen.
            timeout: the overall wait, an absolute deadline from now; ``None`` waits for ever.
            poll_policy: the interval between looks (default: the client's, else the API's).
            rpc_timeout: timeout of each RPC (default: the client's).
            use_wait: use the WaitOperation RPC (falling back to polling if unimplemented).

        Raises:
            WaitTimeoutError: not done within ``timeout``; its ``operation`` is ``handle``.
            RpcError: an RPC failed for good.
        """
        from lro_grpc import _telemetry

        with _telemetry.waiting(handle.name, lambda: handle.raw):
            self._run(
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
    ) -> Operation[ResponseT, MetadataT]:
        """A handle on operation ``name`` without fetching it (e.g. a batch job that restarts).

        Its ``done`` is ``False`` and its metadata ``None`` until it is refreshed or waited on.

        Args:
            name: the operation's name.
            response_type: decode the response into this message class, so the handle is
                typed ``Operation[response_type, ...]``; an Any of another type raises
                :class:`~lro_grpc.TypeMismatchError` naming both type URLs.
            metadata_type: likewise for the metadata.

        Raises:
            InvalidNameError: ``name`` is malformed.
            TypeError: ``response_type`` or ``metadata_type`` is not a protobuf message class.
        """
        check_expected_types(response_type, metadata_type)
        handle = self._wrap(operations_pb2.Operation(name=validate_operation_name(name)))
        return handle._expect_types(response_type, metadata_type)

    def get(
        self,
        name: str,
        *,
        response_type: type[ResponseT] | None = None,
        metadata_type: type[MetadataT] | None = None,
        rpc_timeout: float | UseClientDefault | None = USE_CLIENT_DEFAULT,
        timeout: float | timedelta | UseClientDefault | None = USE_CLIENT_DEFAULT,
    ) -> Operation[ResponseT, MetadataT]:
        """Fetch an operation (GetOperation, with retries).

        Args:
            name: e.g. ``projects/p/locations/l/operations/op-123`` or ``operations/some.id:1``.
            response_type: the response's message class (see :meth:`operation`).
            metadata_type: the metadata's message class (see :meth:`operation`).
            rpc_timeout: timeout of each attempt (default: the client's).
            timeout: overall time for the call and its retries, seconds or
                ``timedelta`` (default: the retry policy's, 60 s); ``None``:
                bounded by the retry policy's attempts only.

        Raises:
            InvalidNameError: ``name`` is malformed (no RPC is made).
            TypeError: ``response_type`` or ``metadata_type`` is not a protobuf message class.
            OperationNotFoundError: no such operation, or its record expired.
            RpcError: the RPC failed (``DEADLINE_EXCEEDED`` once ``timeout`` is spent).
        """
        name = validate_operation_name(name)
        check_expected_types(response_type, metadata_type)
        handle = self._wrap(self.fetch_operation(name, rpc_timeout=rpc_timeout, timeout=timeout))
        return handle if response_type is metadata_type is None else handle._expect_types(response_type, metadata_type)

    def list(
        self,
        parent: str,
        *,
        filter: str = "",
        page_size: int | None = None,
        return_partial_success: bool = False,
        timeout: float | timedelta | UseClientDefault | None = USE_CLIENT_DEFAULT,
    ) -> OperationPager[Operation[Any, Any]]:
        """List operations under ``parent``, fetching pages lazily as you iterate.

        Args:
            parent: ``projects/{project}/locations/{location}``, ``operations`` or ``""``.
            filter: server-side filter, e.g. ``"done=false"``.
            page_size: operations per page (default: the server's).
            return_partial_success: let the server skip unreachable locations
                (see :attr:`OperationPager.unreachable`).
            timeout: overall time for the whole listing, every page and its
                retries, counted from the first page's request; iterating past
                it raises ``RpcError`` (``DEADLINE_EXCEEDED``). Not given: no
                limit on the listing, each page's call ends within the
                client's overall timeout (see :meth:`get`); ``None``: neither.

        A listing always ends: a page token given twice, or more than
        :data:`~lro_grpc._core.MAX_EMPTY_PAGES` (100) empty pages in a row that
        each name a next page, raise ``RpcError`` (``INTERNAL``) naming ``parent``.

        Raises:
            InvalidNameError: ``parent`` is malformed (no RPC is made).
            TypeError: ``timeout`` is not a duration.
            ValueError: ``timeout`` is negative or not finite.
        """
        state = self._list_state(
            parent, filter=filter, page_size=page_size, return_partial_success=return_partial_success
        )
        plans = self._page_plans(timeout)
        return OperationPager(state, lambda request: self._run(plans(request)), self._wrap)

    def cancel(self, name: str, *, timeout: float | timedelta | UseClientDefault | None = USE_CLIENT_DEFAULT) -> None:
        """Ask the server to cancel an operation (best effort: it may still finish).

        Args:
            name: the operation's name.
            timeout: overall time for the call and its retries (see :meth:`get`).

        Raises:
            InvalidNameError: ``name`` is malformed (no RPC is made).
            RpcError: the RPC failed.
        """
        self._run(self._cancel_plan(validate_operation_name(name), timeout))

    def delete(self, name: str, *, timeout: float | timedelta | UseClientDefault | None = USE_CLIENT_DEFAULT) -> None:
        """Delete an operation's record (the operation is not cancelled).

        Args:
            name: the operation's name.
            timeout: overall time for the call and its retries (see :meth:`get`).

        Raises:
            InvalidNameError: ``name`` is malformed (no RPC is made).
            RpcError: the RPC failed.
        """
        self._run(self._delete_plan(validate_operation_name(name), timeout))

    def wait(
        self,
        name: str,
        *,
        response_type: type[ResponseT] | None = None,
        metadata_type: type[MetadataT] | None = None,
        timeout: float | timedelta | None = None,
        poll_policy: PollPolicy | None = None,
    ) -> Operation[ResponseT, MetadataT]:
        """Wait until an operation is done, with the WaitOperation RPC.

        If the server answers WaitOperation with ``UNIMPLEMENTED``, this and
        every later wait of the client poll GetOperation instead. A failed
        operation is returned, not raised: use ``result()`` or ``error``.

        Args:
            name: the operation's name.
            response_type: the response's message class (see :meth:`operation`).
            metadata_type: the metadata's message class (see :meth:`operation`).
            timeout: the overall wait; ``None`` waits for ever.
            poll_policy: the interval between polls, and the least time between WaitOperation calls.

        Raises:
            InvalidNameError: ``name`` is malformed (no RPC is made).
            TypeError: ``response_type`` or ``metadata_type`` is not a protobuf message class.
            WaitTimeoutError: not done within ``timeout`` (carries the last seen state).
            RpcError: an RPC failed for good.
        """
        check_expected_types(response_type, metadata_type)
        handle: Operation[Any, Any] = self._wrap(operations_pb2.Operation(name=validate_operation_name(name)))
        handle._expect_types(response_type, metadata_type)
        self.follow_operation(handle, timeout=timeout, poll_policy=poll_policy, use_wait=True)
        return handle

    # -- many operations at once --------------------------------------------------------------------

    def _runner(self) -> _batch.SyncBatchRunner[Operation[Any, Any]]:
        if self._closed:
            raise RuntimeError("the OperationsClient is closed")
        return self._background.runner(self._wrap)

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
    ) -> Iterator[Operation[ResponseT, MetadataT]]:
        """Yield each operation as soon as a poll sees it done, however many there are.

        The same scheduler as :meth:`lro_grpc.AsyncOperationsClient.as_completed`,
        run on one background event loop owned by this client (started on first
        use, stopped by :meth:`close`): no thread per operation. Every batch of
        the client shares that scheduler and its limits (``batch_max_in_flight``,
        ``batch_qps``), however many run at once. Failed,
        cancelled and not-found operations are yielded like the others (check
        ``op.error``); they do not stop the batch.

        Args:
            names: operation names (validated before any RPC; duplicates polled once).
            timeout: overall time to wait, seconds or ``timedelta``; ``None`` waits for ever.
            response_type: every response's message class (see :meth:`operation`).
            metadata_type: every metadata's message class (see :meth:`operation`).
            poll_policy: polling for every operation (default: per operation,
                what :meth:`wait` would use: the client's, else its API's preset).
            journal: a file that makes the batch durable: run again with the
                same journal (and the same names, more, or ``None`` for every
                name in it), a killed job resumes; outcomes already delivered
                are not yielded or polled again, at most the one in hand when
                it died is repeated. See :class:`~lro_grpc.BatchWaiter`.
            progress: called with :class:`~lro_grpc.BatchProgress` counts, on the iterating thread.

        Raises:
            BatchTimeoutError: after the last operation that finished in time, if
                some were still running at the deadline (its ``pending`` holds
                their last seen state).
            InvalidNameError: a malformed name (before any RPC).
            JournalError: the journal is in use, unreadable, or another endpoint's or API's.
            RuntimeError: the client is closed, or was built on a ready channel.
        """
        names = self._batch_names(names, response_type, metadata_type)
        completed = self._runner().as_completed(
            names,
            timeout=timeout,
            poll_policy=poll_policy,
            progress=progress,
            rpc_timeout=None,
            journal=journal,
        )
        from lro_grpc import _telemetry

        completed = _telemetry.traced_results(completed, names or [], lambda op: op.raw)
        if response_type is None and metadata_type is None:
            return completed
        return expect_types_each(completed, response_type, metadata_type)

    def wait_all(
        self,
        names: Iterable[str] | None,
        *,
        response_type: type[ResponseT] | None = None,
        metadata_type: type[MetadataT] | None = None,
        timeout: float | timedelta | None = None,
        poll_policy: PollPolicy | None = None,
        progress: Callable[[_batch.BatchProgress], object] | None = None,
        journal: _batch.JournalPath | None = None,
    ) -> builtins.list[Operation[ResponseT, MetadataT]]:
        """Wait for every operation and return them in input order.

        Arguments as for :meth:`as_completed`. Failed, cancelled and not-found
        operations are results, not exceptions.

        Raises:
            BatchTimeoutError: some operations were still running at the
                deadline; its ``results`` holds every name's finished operation
                or last seen state, in input order.
        """
        names = self._batch_names(names, response_type, metadata_type)
        from lro_grpc import _telemetry

        with _telemetry.tracing_batch(names or []) as trace:
            try:
                results = self._runner().wait_all(
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

    def close(self) -> None:
        """Close the channel (if the client created it) and stop the batch waiter's loop. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._background.close()
        if self._owns_channel:
            self._channel.close()

    def __enter__(self) -> OperationsClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: types.TracebackType | None,
    ) -> None:
        self.close()
