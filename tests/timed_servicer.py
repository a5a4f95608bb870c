"""An in-test ``google.longrunning.Operations`` server whose operations finish at set times.

Its ListOperations can be made hostile (filters ignored or rejected, running
operations left out, errors mid-listing, unreachable locations, a page token
that repeats, a smaller page than asked); it counts every call.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import threading
import time
from collections.abc import AsyncIterator

import grpc
from google.longrunning import operations_pb2
from google.protobuf import wrappers_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from lro_grpc._generated import operations_pb2_grpc

__all__ = ["Listings", "Op", "Server", "serving"]


@dataclasses.dataclass
class Op:
    name: str
    finish_at: float  # monotonic time; inf: never
    fail: bool = False


class Listings:
    """How the server's ListOperations misbehaves."""

    def __init__(self) -> None:
        self.ignore_filter = False
        self.reject: grpc.StatusCode | None = None
        self.omit_running = 0.0  # fraction of running operations left out of each listing
        self.fail_page: int | None = None  # 0-based page that fails with UNAVAILABLE (each listing)
        self.unreachable: list[str] = []
        self.repeat_token = False
        self.refuse: int = 0  # RESOURCE_EXHAUSTED for the next N listings
        self.page_cap: int | None = None  # the server's own largest page
        self.gate: asyncio.Event | None = None  # set: each listing waits for it to open
        self.waiting = asyncio.Event()  # set when a listing first waits at the gate


class Server(operations_pb2_grpc.OperationsServicer):  # type: ignore[misc]
    def __init__(self) -> None:
        self.ops: dict[str, Op] = {}
        self.listings = Listings()
        self.calls: dict[str, int] = {"GetOperation": 0, "ListOperations": 0}
        self.call_times: list[float] = []  # arrival of every call, either method
        self.gets: dict[str, int] = {}
        self.list_requests: list[operations_pb2.ListOperationsRequest] = []
        self.rng = random.Random(7)
        self._lock = threading.Lock()

    def add(self, name: str, finish_in: float, *, fail: bool = False) -> str:
        self.ops[name] = Op(name, time.monotonic() + finish_in, fail)
        return name

    def state(self, op: Op, now: float) -> operations_pb2.Operation:
        pb = operations_pb2.Operation(name=op.name)
        pb.metadata.Pack(wrappers_pb2.StringValue(value=f"seen at {now}"))
        if now >= op.finish_at:
            pb.done = True
            if op.fail:
                pb.error.CopyFrom(status_pb2.Status(code=code_pb2.ABORTED, message="it broke"))
            else:
                pb.response.Pack(wrappers_pb2.StringValue(value=f"result of {op.name}"))
        return pb

    async def GetOperation(
        self, request: operations_pb2.GetOperationRequest, context: grpc.aio.ServicerContext
    ) -> operations_pb2.Operation:
        with self._lock:
            self.calls["GetOperation"] += 1
            self.call_times.append(time.monotonic())
            self.gets[request.name] = self.gets.get(request.name, 0) + 1
        op = self.ops.get(request.name)
        if op is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no operation {request.name}")
        return self.state(op, time.monotonic())

    def _in_scope(self, op: Op, request: operations_pb2.ListOperationsRequest) -> bool:
        if request.name.startswith("projects/"):
            return op.name.startswith(request.name + "/operations/")
        service = request.filter.split()[0].removeprefix("serviceName=")
        return op.name.startswith(("operations/rollouts." + service + ":",))

    async def ListOperations(
        self, request: operations_pb2.ListOperationsRequest, context: grpc.aio.ServicerContext
    ) -> operations_pb2.ListOperationsResponse:
        listings = self.listings
        if listings.gate is not None and not listings.gate.is_set():
            listings.waiting.set()
            await listings.gate.wait()
        with self._lock:
            self.calls["ListOperations"] += 1
            self.call_times.append(time.monotonic())
            self.list_requests.append(request)
            refused = listings.refuse > 0
            listings.refuse -= refused
        if refused:
            info = error_details_pb2.RetryInfo()
            info.retry_delay.FromNanoseconds(300_000_000)
            status = status_pb2.Status(code=code_pb2.RESOURCE_EXHAUSTED, message="quota")
            status.details.add().Pack(info)
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                "quota",
                trailing_metadata=(("grpc-status-details-bin", status.SerializeToString()),),
            )
        if listings.reject is not None:
            await context.abort(listings.reject, f"filter {request.filter!r} is not supported")
        now = time.monotonic()
        offset = int(request.page_token or "0")
        size = request.page_size or 50
        if listings.page_cap is not None:
            size = min(size, listings.page_cap)
        if listings.fail_page is not None and offset // size == listings.fail_page:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "backend went away")
        matching = [
            op
            for op in sorted(self.ops.values(), key=lambda op: op.name)
            # No filter lists every operation of the scope, as a server does; any other, the running ones.
            if self._in_scope(op, request) and (listings.ignore_filter or not request.filter or now < op.finish_at)
        ]
        page = [self.state(op, now) for op in matching[offset : offset + size]]
        if listings.omit_running:
            page = [pb for pb in page if pb.done or self.rng.random() >= listings.omit_running]
        response = operations_pb2.ListOperationsResponse(operations=page, unreachable=listings.unreachable)
        if offset + size < len(matching):
            response.next_page_token = "0" if listings.repeat_token else str(offset + size)
        return response


@contextlib.asynccontextmanager
async def serving(server: Server) -> AsyncIterator[str]:
    grpc_server = grpc.aio.server()
    operations_pb2_grpc.add_OperationsServicer_to_server(server, grpc_server)
    port = grpc_server.add_insecure_port("127.0.0.1:0")
    await grpc_server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await grpc_server.stop(None)
