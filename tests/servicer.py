"""A small scripted ``google.longrunning.Operations`` servicer for tests, with fault injection.

It serves over real gRPC on loopback (see :func:`serve`) and records every
call it receives (method, request, headers, arrival time, the deadline the
client gave), so tests assert behaviour from the server's side.

Example::

    servicer = ScriptedOperations()
    servicer.add(operations_pb2.Operation(name="operations/x", done=False))
    servicer.inject("GetOperation", Fault(grpc.StatusCode.UNAVAILABLE))
    with serve(servicer) as target:
        ...
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent import futures
from typing import Any

import grpc
from google.longrunning import operations_pb2
from google.protobuf import any_pb2, duration_pb2, empty_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2

from lro_grpc._generated import operations_pb2_grpc
from lro_grpc.policies import PollPolicy, RetryPolicy

__all__ = [
    "DELIVERY_ALLOWANCE",
    "FAST_POLL",
    "FAST_RETRY",
    "LATE_UNDER_LOAD",
    "Fault",
    "ReceivedCall",
    "ScriptedOperations",
    "pack",
    "serve",
    "serve_on_loopback",
]

FAST_RETRY = RetryPolicy(initial=0.01, multiplier=2, maximum=0.05, jitter=0, max_attempts=4, timeout=5)
"""Retries quick enough for tests; jitter off so delays are known."""

FAST_POLL = PollPolicy(initial=0.02, multiplier=1, maximum=0.02, jitter=0)
"""Polling quick enough for tests."""


LATE_UNDER_LOAD = 2.0
"""How long past its deadline a test lets a wait or call end, seen from the client.

README promises ``T`` + 100 ms on a quiet machine; on a loaded 2-core machine it
measured up to +148 ms and once +670 ms (the process not scheduled at all), and
with the load average at 10 a sync wait on a hung server once ended 1.08 s late.
A wait that ignores its deadline is late by a hung server's seconds (the tests
hang 5 s) or an ``rpc_timeout``. Whether an RPC outlived the deadline is asserted
at the server instead (:attr:`ReceivedCall.deadline_at`), and how late waits end
is measured by ``benchmarks/sync_deadline_under_load.py``.
"""

DELIVERY_ALLOWANCE = 0.25
"""How far past the client's deadline a call's deadline may look at the server.

The server's deadline is the ``grpc-timeout`` the client sent plus the call's
transit on loopback (and, for the synchronous client in these tests, the hop
to its worker thread); on a loaded machine that is tens of milliseconds.
"""


def pack(message: Message) -> any_pb2.Any:
    """``message`` in an ``Any`` with the ``type.googleapis.com/`` prefix."""
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


@dataclasses.dataclass(frozen=True)
class Fault:
    """What to do to one call instead of (or before) answering it.

    Attributes:
        code: fail with this status (``None``: answer normally after ``hang``).
        details: the status message.
        retry_delay: seconds of ``google.rpc.RetryInfo`` sent in ``grpc-status-details-bin``.
        hang: seconds to hold the call first (ends early if the client goes away).
    """

    code: grpc.StatusCode | None = None
    details: str = "injected fault"
    retry_delay: float | None = None
    hang: float = 0.0


@dataclasses.dataclass(frozen=True)
class ReceivedCall:
    """One call as the server saw it.

    Attributes:
        method: RPC short name, e.g. ``"GetOperation"``.
        request: the request message.
        metadata: the request headers (last value wins).
        received_at: ``time.monotonic()`` on arrival.
        time_remaining: seconds left before the client's deadline on arrival (``None``: no deadline).
    """

    method: str
    request: Message
    metadata: dict[str, Any]
    received_at: float
    time_remaining: float | None

    @property
    def deadline_at(self) -> float | None:
        """The call's deadline on the server's ``time.monotonic()`` clock (``None``: no deadline).

        It is the client's deadline plus the call's transit on loopback (the
        ``grpc-timeout`` header says what was left when the client sent it).
        """
        return None if self.time_remaining is None else self.received_at + self.time_remaining


class ScriptedOperations(operations_pb2_grpc.OperationsServicer):
    """An in-memory Operations service whose answers tests script.

    * :meth:`add` stores an operation; GetOperation/WaitOperation return it.
    * :meth:`script` queues the states successive GetOperation/WaitOperation calls
      return (the last one sticks).
    * :meth:`finish_at` makes an operation done at a monotonic time.
    * :meth:`inject` queues faults per method, used one per call.
    * ``wait_implemented = False`` answers WaitOperation with ``UNIMPLEMENTED``.
    * ``unreachable`` is reported on the first ListOperations page.
    * CancelOperation makes the operation done with a ``CANCELLED`` error;
      DeleteOperation removes it (later gets: ``NOT_FOUND``).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.operations: dict[str, operations_pb2.Operation] = {}
        self._scripts: dict[str, collections.deque[operations_pb2.Operation]] = {}
        self._finish: dict[str, tuple[float, operations_pb2.Operation]] = {}
        self._faults: dict[str, collections.deque[Fault]] = collections.defaultdict(collections.deque)
        self.calls: list[ReceivedCall] = []
        self.wait_implemented = True
        self.unreachable: list[str] = []
        self.default_page_size = 2

    # -- scripting ----------------------------------------------------------------------------------

    def add(self, *operations: operations_pb2.Operation) -> None:
        """Store operations (replacing any of the same name)."""
        with self._lock:
            for operation in operations:
                self.operations[operation.name] = operation

    def script(self, name: str, *states: operations_pb2.Operation) -> None:
        """Successive GetOperation/WaitOperation answers for ``name``; the last one sticks."""
        with self._lock:
            self._scripts[name] = collections.deque(states)
            self.operations[name] = states[0]

    def finish_at(self, name: str, when: float, final: operations_pb2.Operation) -> None:
        """From monotonic time ``when`` on, ``name`` is ``final``."""
        with self._lock:
            self._finish[name] = (when, final)

    def inject(self, method: str, *faults: Fault) -> None:
        """Queue faults for the next calls of ``method``."""
        with self._lock:
            self._faults[method].extend(faults)

    def calls_to(self, method: str) -> list[ReceivedCall]:
        """Calls received for ``method``, in order."""
        with self._lock:
            return [call for call in self.calls if call.method == method]

    def methods_called(self) -> list[str]:
        """Method names of every call received, in order."""
        with self._lock:
            return [call.method for call in self.calls]

    # -- machinery ----------------------------------------------------------------------------------

    def _receive(self, method: str, request: Message, context: grpc.ServicerContext) -> None:
        # The clock first: received_at + time_remaining then never overstates the client's deadline.
        received_at = time.monotonic()
        remaining = context.time_remaining()
        call = ReceivedCall(
            method=method,
            request=request,
            metadata=dict(context.invocation_metadata()),
            received_at=received_at,
            time_remaining=remaining if remaining is not None and remaining < 1e9 else None,
        )
        with self._lock:
            self.calls.append(call)
            faults = self._faults.get(method)
            fault = faults.popleft() if faults else None
        if fault is None:
            return
        if fault.hang:
            until = time.monotonic() + fault.hang
            while context.is_active() and time.monotonic() < until:
                time.sleep(0.005)
        if fault.code is not None:
            if fault.retry_delay is not None:
                status = status_pb2.Status(code=fault.code.value[0], message=fault.details)
                delay = duration_pb2.Duration()
                delay.FromNanoseconds(round(fault.retry_delay * 1e9))
                status.details.append(pack(error_details_pb2.RetryInfo(retry_delay=delay)))
                context.set_trailing_metadata((("grpc-status-details-bin", status.SerializeToString()),))
            context.abort(fault.code, fault.details)

    def _current(self, name: str, context: grpc.ServicerContext) -> operations_pb2.Operation:
        with self._lock:
            if name not in self.operations:
                context.abort(grpc.StatusCode.NOT_FOUND, f"operation {name!r} not found")
            finish = self._finish.get(name)
            if finish is not None and time.monotonic() >= finish[0]:
                self.operations[name] = finish[1]
                self._scripts.pop(name, None)
            script = self._scripts.get(name)
            if script:
                self.operations[name] = script.popleft() if len(script) > 1 else script[0]
            return self.operations[name]

    # -- RPCs ---------------------------------------------------------------------------------------

    def GetOperation(
        self, request: operations_pb2.GetOperationRequest, context: grpc.ServicerContext
    ) -> operations_pb2.Operation:
        self._receive("GetOperation", request, context)
        return self._current(request.name, context)

    def WaitOperation(
        self, request: operations_pb2.WaitOperationRequest, context: grpc.ServicerContext
    ) -> operations_pb2.Operation:
        self._receive("WaitOperation", request, context)
        if not self.wait_implemented:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "Method not implemented!")
        return self._current(request.name, context)

    def ListOperations(
        self, request: operations_pb2.ListOperationsRequest, context: grpc.ServicerContext
    ) -> operations_pb2.ListOperationsResponse:
        self._receive("ListOperations", request, context)
        with self._lock:
            matching = [
                op
                for name, op in sorted(self.operations.items())
                if (not request.name or name.startswith(request.name + "/") or request.name == "operations")
                and (request.filter != "done=true" or op.done)
                and (request.filter != "done=false" or not op.done)
            ]
        start = int(request.page_token or 0)
        size = request.page_size or self.default_page_size
        page = matching[start : start + size]
        response = operations_pb2.ListOperationsResponse(operations=page)
        if start + size < len(matching):
            response.next_page_token = str(start + size)
        if start == 0 and request.return_partial_success:
            response.unreachable.extend(self.unreachable)
        return response

    def CancelOperation(
        self, request: operations_pb2.CancelOperationRequest, context: grpc.ServicerContext
    ) -> empty_pb2.Empty:
        self._receive("CancelOperation", request, context)
        with self._lock:
            operation = self.operations.get(request.name)
            if operation is None:
                context.abort(grpc.StatusCode.NOT_FOUND, f"operation {request.name!r} not found")
            if not operation.done:
                cancelled = operations_pb2.Operation()
                cancelled.CopyFrom(operation)
                cancelled.done = True
                cancelled.error.CopyFrom(status_pb2.Status(code=code_pb2.CANCELLED, message="Operation cancelled"))
                self.operations[request.name] = cancelled
                self._scripts.pop(request.name, None)
                self._finish.pop(request.name, None)
        return empty_pb2.Empty()

    def DeleteOperation(
        self, request: operations_pb2.DeleteOperationRequest, context: grpc.ServicerContext
    ) -> empty_pb2.Empty:
        self._receive("DeleteOperation", request, context)
        with self._lock:
            if self.operations.pop(request.name, None) is None:
                context.abort(grpc.StatusCode.NOT_FOUND, f"operation {request.name!r} not found")
            self._scripts.pop(request.name, None)
            self._finish.pop(request.name, None)
        return empty_pb2.Empty()


@contextlib.contextmanager
def serve_on_loopback(
    register: Callable[[grpc.Server], object], *, options: Sequence[tuple[str, Any]] = ()
) -> Iterator[str]:
    """A gRPC server on a free loopback port with what ``register`` adds to it; yields ``host:port``."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16), options=options)
    register(server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(grace=None)


@contextlib.contextmanager
def serve(servicer: ScriptedOperations) -> Iterator[str]:
    """Serve ``servicer`` on a free loopback port; yields the ``host:port`` target."""
    with serve_on_loopback(
        lambda server: operations_pb2_grpc.add_OperationsServicer_to_server(servicer, server)
    ) as target:
        yield target
