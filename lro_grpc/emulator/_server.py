"""The emulator's gRPC services, on a ``grpc.aio`` server.

:class:`Backend` holds the state every service shares (store, clock, faults,
settings) and the change notification ``WaitOperation`` sleeps on. The three
servicer classes translate RPCs into calls on it. All of them run on the
server's event loop thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

import grpc
from google.longrunning import operations_pb2
from google.protobuf import empty_pb2
from google.rpc import status_pb2

from lro_grpc.emulator import _financial_services, _listing, _model, _service_management
from lro_grpc.emulator._clock import SimulatedClock
from lro_grpc.emulator._faults import Faults
from lro_grpc.emulator._limits import oversized_string_field, shown
from lro_grpc.emulator._model import CallControls, OperationRecord, RequestError
from lro_grpc.emulator._pages import RenderedOperations
from lro_grpc.emulator._store import OperationStore

__all__ = ["STARTING_METHODS", "Backend", "add_services", "server_options"]


_PLANNERS: dict[str, Callable[..., OperationRecord]] = {
    "CreateInstance": _financial_services.create_instance,
    "UpdateInstance": _financial_services.update_instance,
    "DeleteInstance": _financial_services.delete_instance,
    "CreateService": _service_management.create_service,
    "DeleteService": _service_management.delete_service,
    "UndeleteService": _service_management.undelete_service,
    "SubmitConfigSource": _service_management.submit_config_source,
    "CreateServiceRollout": _service_management.create_service_rollout,
}
STARTING_METHODS = tuple(_PLANNERS)
"""The RPCs that start an operation (keys of the emulator's ``durations``)."""

_Response = TypeVar("_Response")
_Handler = Callable[[Any, Any, Any], Awaitable[_Response]]


class Backend:
    """State shared by the emulator's services.

    Args:
        store: the operation records.
        clock: the simulated clock.
        faults: fault injection settings (read on every call).
        default_duration: simulated seconds an operation takes unless told otherwise.
        durations: per-RPC durations overriding ``default_duration``.
        retention: simulated seconds a done operation's record is kept.
        cancel_grace: an operation due to finish within this many simulated
            seconds of a cancel request finishes anyway.
        wait_timeout: real seconds ``WaitOperation`` waits when its request has no timeout.
        wait_rpc: serve ``WaitOperation``; neither emulated API offers it, so by
            default it answers ``UNIMPLEMENTED``.
    """

    def __init__(
        self,
        *,
        store: OperationStore,
        clock: SimulatedClock,
        faults: Faults,
        default_duration: float,
        durations: Mapping[str, float],
        retention: float,
        cancel_grace: float,
        wait_timeout: float,
        wait_rpc: bool = False,
    ) -> None:
        self.store = store
        self.clock = clock
        self.faults = faults
        self.default_duration = default_duration
        self.durations = dict(durations)
        self.retention = retention
        self.cancel_grace = cancel_grace
        self.wait_timeout = wait_timeout
        self.wait_rpc = wait_rpc
        self.page_token_secret = store.page_token_secret()
        self.rendered = RenderedOperations()  # listed operations' renderings, kept while valid (see _pages)
        self.stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._changed: asyncio.Event | None = None

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Attach to the server's event loop (call from that loop's thread)."""
        self._loop = loop
        self._loop_thread = threading.get_ident()
        self._changed = asyncio.Event()

    def _notify_in_loop(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = asyncio.Event()

    def notify(self) -> None:
        """Wake every ``WaitOperation`` to look again (state or clock changed). Any thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        if threading.get_ident() == self._loop_thread:
            self._notify_in_loop()
            return
        # The loop may close between the check above and here (emulator stopping): nobody is left to wake.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._notify_in_loop)

    def duration_for(self, method: str, controls: CallControls) -> float:
        """The simulated duration of an operation ``method`` starts."""
        if controls.duration is not None:
            return controls.duration
        return self.durations.get(method, self.default_duration)

    def live(self, name: str, now: float) -> OperationRecord:
        """The unexpired record named ``name``.

        Raises:
            RequestError: ``INVALID_ARGUMENT`` for a malformed name, ``NOT_FOUND``
                if there is no such record (never was, deleted, or expired).
        """
        _model.check_operation_name(name)
        record = self.store.get(name)
        if record is None or record.is_expired(now, self.retention):
            raise _model.not_found(name)
        return record

    def check_offered(self, method: str, name: str) -> None:
        """Refuse ``CancelOperation``/``DeleteOperation`` on Service Management operations.

        Service Management's REST surface has only ``operations.get`` and
        ``operations.list``, and its official client no cancel or delete.

        Raises:
            RequestError: ``INVALID_ARGUMENT`` for a malformed name, ``UNIMPLEMENTED``
                for a Service Management operation (existing or not).
        """
        _model.check_operation_name(name)
        if _model.is_service_management_operation(name):
            raise _model.not_offered(method, name)

    def start_operation(
        self, method: str, request: Any, metadata: Iterable[tuple[str, str | bytes]] | None
    ) -> operations_pb2.Operation:
        """Start the operation an RPC of :data:`STARTING_METHODS` asks for; the operation as first seen.

        Args:
            method: the RPC's short name, e.g. ``"CreateInstance"``.
            request: its request message.
            metadata: the call's request metadata (the per-call control headers).

        Raises:
            RequestError: the request is refused (bad field, reused ``request_id``,
                existing rollout id, bad control header).
        """
        controls = CallControls.from_metadata(metadata)
        now = self.clock.now()
        record = _PLANNERS[method](request, now=now, duration=self.duration_for(method, controls), controls=controls)
        stored = self.store.insert(record)
        if method == "CreateServiceRollout":
            # "Any previous pending and running Rollouts and associated Operations will be automatically
            # cancelled so that the latest Rollout will not be blocked by previous Rollouts" (SM reference).
            self.store.supersede_rollouts(stored.service_name, now, before_seq=stored.seq)
        self.notify()
        return _model.render(stored, max(now, self.clock.now()))

    def list_operations(self, request: operations_pb2.ListOperationsRequest) -> operations_pb2.ListOperationsResponse:
        """Answer a ``ListOperationsRequest`` (one page; a signed token when more follow).

        The list faults apply here: a filter rejected or ignored, running
        operations left out at random.

        Raises:
            RequestError: ``INVALID_ARGUMENT`` naming ``name``, ``filter``,
                ``page_size`` or ``page_token``.
        """
        faults = self.faults
        if request.filter and faults.list_filter == "reject":
            raise _model.invalid(f"filter: not supported here, got {shown(request.filter)} (injected fault)")
        query = _listing.parse_list_request(
            request, page_token_secret=self.page_token_secret, obey_filter=faults.list_filter == "obey"
        )
        now = self.clock.now()
        heads, more = self.store.list_heads(query, now, self.retention)
        omit = faults.omit_from_listing if faults.list_omit_running else None
        response = self.rendered.page(heads, now, self.store, omit)
        if more and heads:
            response.next_page_token = query.next_page_token(heads[-1][0])
        return response

    def cancel_operation(self, name: str) -> None:
        """What ``CancelOperation`` does: best effort (see ``_model.cancelled``). Any thread.

        Raises:
            RequestError: ``INVALID_ARGUMENT`` (bad name), ``UNIMPLEMENTED`` (Service
                Management), ``NOT_FOUND``.
        """
        self.check_offered("CancelOperation", name)
        now = self.clock.now()
        self.live(name, now)
        if self.store.cancel(name, now, self.cancel_grace) is None:
            raise _model.not_found(name)
        self.notify()

    def delete_operation(self, name: str) -> None:
        """What ``DeleteOperation`` does: forget the record, without cancelling. Any thread.

        Raises:
            RequestError: as :meth:`cancel_operation`.
        """
        self.check_offered("DeleteOperation", name)
        self.live(name, self.clock.now())
        if not self.store.delete(name):
            raise _model.not_found(name)
        self.notify()

    def finish_operation(self, name: str, error: status_pb2.Status | None = None) -> operations_pb2.Operation:
        """End a running operation now: with its response, or with ``error``. Any thread.

        Returns:
            The operation as a client now sees it.

        Raises:
            RequestError: ``INVALID_ARGUMENT`` (bad name), ``NOT_FOUND``, or
                ``FAILED_PRECONDITION`` when it is already done.
        """
        now = self.clock.now()
        self.live(name, now)
        record = self.store.finish(name, now, error)
        if record is None:
            raise RequestError(grpc.StatusCode.FAILED_PRECONDITION, f"operation {shown(name)} is already done")
        self.notify()
        return _model.render(record, now)

    async def wait_for_change(self, timeout: float) -> None:
        """Sleep until :meth:`notify` or ``timeout`` real seconds, whichever is first."""
        changed = self._changed
        if changed is None or timeout <= 0:
            return
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(changed.wait(), timeout)


def _rpc(method: str) -> Callable[[_Handler[_Response]], _Handler[_Response]]:
    """Wrap a handler: apply injected faults first, answer :class:`RequestError` with its status."""

    def decorate(handler: _Handler[_Response]) -> _Handler[_Response]:
        @functools.wraps(handler)
        async def wrapper(self: Any, request: Any, context: Any) -> _Response:
            backend: Backend = self.backend
            decision = backend.faults.decide(method)
            if decision is not None:
                if decision.latency:
                    await asyncio.sleep(decision.latency)
                if decision.code is not None:
                    await context.abort(decision.code, decision.message, decision.trailing_metadata)
            try:
                problem = oversized_string_field(request)
                if problem is not None:
                    raise _model.invalid(problem)
                return await handler(self, request, context)
            except RequestError as error:
                await context.abort(error.code, error.message)
                raise  # unreachable: abort raises

        return wrapper

    return decorate


class OperationsService:
    """``google.longrunning.Operations`` over the emulator's records."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    @_rpc("GetOperation")
    async def GetOperation(self, request: Any, context: Any) -> operations_pb2.Operation:
        backend = self.backend
        now = backend.clock.now()
        return _model.render(backend.live(request.name, now), now)

    @_rpc("ListOperations")
    async def ListOperations(self, request: Any, context: Any) -> operations_pb2.ListOperationsResponse:
        return self.backend.list_operations(request)

    @_rpc("DeleteOperation")
    async def DeleteOperation(self, request: Any, context: Any) -> empty_pb2.Empty:
        self.backend.delete_operation(request.name)
        return empty_pb2.Empty()

    @_rpc("CancelOperation")
    async def CancelOperation(self, request: Any, context: Any) -> empty_pb2.Empty:
        self.backend.cancel_operation(request.name)
        return empty_pb2.Empty()

    @_rpc("WaitOperation")
    async def WaitOperation(self, request: Any, context: Any) -> operations_pb2.Operation:
        backend = self.backend
        if not backend.wait_rpc:
            raise RequestError(
                grpc.StatusCode.UNIMPLEMENTED,
                "WaitOperation: neither emulated API offers it; "
                "serve it with lro-grpc emulator --wait-rpc (Emulator(wait_rpc=True))",
            )
        if request.HasField("timeout"):
            timeout = request.timeout.ToNanoseconds() / 1e9
            if timeout < 0:
                raise _model.invalid(f"timeout: must be >= 0, got {timeout!r} s")
        else:
            timeout = backend.wait_timeout
        loop = asyncio.get_running_loop()
        give_up = loop.time() + timeout
        rpc_remaining = context.time_remaining()
        if rpc_remaining is not None:
            # Answer (not done) a little before the RPC deadline rather than let the caller see DEADLINE_EXCEEDED.
            give_up = min(give_up, loop.time() + rpc_remaining - min(0.5, rpc_remaining * 0.2))
        while True:
            now = backend.clock.now()
            record = backend.live(request.name, now)
            left = give_up - loop.time()
            if record.is_done(now) or left <= 0 or backend.stopping:
                return _model.render(record, now)
            until_done = backend.clock.real_seconds_until(record.end_at)
            # A hair past the computed end, so the next look sees it done despite float rounding.
            await backend.wait_for_change(min(left, until_done + 0.001 if math.isfinite(until_done) else left))


class _Starter:
    """Shared body of the RPCs that start an operation."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def start(self, method: str, request: Any, context: Any) -> operations_pb2.Operation:
        return self.backend.start_operation(method, request, context.invocation_metadata())


class AMLService(_Starter):
    """The operation-starting RPCs of Financial Services ``AML``."""

    @_rpc("CreateInstance")
    async def CreateInstance(self, request: Any, context: Any) -> operations_pb2.Operation:
        return self.start("CreateInstance", request, context)

    @_rpc("UpdateInstance")
    async def UpdateInstance(self, request: Any, context: Any) -> operations_pb2.Operation:
        return self.start("UpdateInstance", request, context)

    @_rpc("DeleteInstance")
    async def DeleteInstance(self, request: Any, context: Any) -> operations_pb2.Operation:
        return self.start("DeleteInstance", request, context)


class ServiceManagerService(_Starter):
    """The operation-starting RPCs of Service Management ``ServiceManager``."""

    @_rpc("CreateService")
    async def CreateService(self, request: Any, context: Any) -> operations_pb2.Operation:
        return self.start("CreateService", request, context)

    @_rpc("DeleteService")
    async def DeleteService(self, request: Any, context: Any) -> operations_pb2.Operation:
        return self.start("DeleteService", request, context)

    @_rpc("UndeleteService")
    async def UndeleteService(self, request: Any, context: Any) -> operations_pb2.Operation:
        return self.start("UndeleteService", request, context)

    @_rpc("SubmitConfigSource")
    async def SubmitConfigSource(self, request: Any, context: Any) -> operations_pb2.Operation:
        return self.start("SubmitConfigSource", request, context)

    @_rpc("CreateServiceRollout")
    async def CreateServiceRollout(self, request: Any, context: Any) -> operations_pb2.Operation:
        return self.start("CreateServiceRollout", request, context)


def add_services(server: Any, backend: Backend) -> None:
    """Register the three services on a ``grpc.aio`` server."""
    from lro_grpc._generated import financialservices_v1_pb2_grpc, operations_pb2_grpc, servicemanagement_v1_pb2_grpc

    operations_pb2_grpc.add_OperationsServicer_to_server(OperationsService(backend), server)
    financialservices_v1_pb2_grpc.add_AMLServicer_to_server(AMLService(backend), server)
    servicemanagement_v1_pb2_grpc.add_ServiceManagerServicer_to_server(ServiceManagerService(backend), server)


def server_options() -> list[tuple[str, Any]]:
    """Channel arguments for the emulator's server."""
    # No SO_REUSEPORT: a second server on a taken port must fail, not silently share it.
    return [("grpc.so_reuseport", 0)]
