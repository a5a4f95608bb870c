"""The emulator's HTTP/JSON gateway: the APIs' REST routes over the same services as gRPC.

Each HTTP request is transcoded (:mod:`._transcoding`) into the request
message of the RPC its route names, and handed to the very servicer method the
gRPC server calls, on the emulator's event loop. So fault injection, the
per-call ``x-emulator-*`` headers (read from HTTP headers of the same names),
validation and every state change behave the same on both protocols. What
the servicer returns is printed in the REST JSON shape (:mod:`lro_grpc._json`);
what it aborts with becomes Google's JSON error body.

The HTTP server is the standard library's ``ThreadingHTTPServer``: one thread
per connection, each blocking only on its own call to the event loop. Its
limits (:mod:`._limits`): a listen backlog of :data:`REST_LISTEN_BACKLOG`
(socketserver's default of 5 drops bursts of connections), request bodies of at
most :data:`REST_MAX_BODY_BYTES` (``413`` above; the body is dropped unstored), and at most
:data:`REST_MAX_CONNECTIONS` connections served at once (one more is answered
``503 UNAVAILABLE`` with ``Retry-After``, from a short-lived thread that
reads nothing but the request's head). Errors the HTTP layer itself finds (a
request line or headers too long, a malformed request) are answered with
Google's JSON error body too.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import socket
import socketserver
import threading
from collections.abc import Coroutine, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NoReturn
from urllib.parse import parse_qsl, urlsplit

import grpc
from google.longrunning import operations_pb2
from google.protobuf import empty_pb2
from google.protobuf.message import DecodeError, Message
from google.rpc import status_pb2

from lro_grpc._json import any_to_dict, list_to_dict, operation_to_dict
from lro_grpc.emulator._faults import STATUS_DETAILS_KEY
from lro_grpc.emulator._limits import shown
from lro_grpc.emulator._model import RequestError
from lro_grpc.emulator._server import AMLService, Backend, OperationsService, ServiceManagerService
from lro_grpc.emulator._transcoding import (
    OutputOptions,
    build_request,
    error_body,
    find_route,
    http_status,
    output_options,
)
from lro_grpc.emulator._ui import OperationsPage, UiRequest, header_pairs
from lro_grpc.registry import TypeRegistry, default_registry

__all__ = ["REST_LISTEN_BACKLOG", "REST_MAX_BODY_BYTES", "REST_MAX_CONNECTIONS", "RestGateway"]

REST_LISTEN_BACKLOG = 1024
"""Connections the REST port's listen queue holds before the kernel drops new ones (gRPC's port: 4096)."""
REST_MAX_BODY_BYTES = 1024 * 1024
"""Largest REST request body (1 MiB); a longer ``Content-Length`` is answered ``413`` without reading it."""
REST_MAX_CONNECTIONS = 256
"""REST connections served at once; one more is answered ``503 UNAVAILABLE`` (``Retry-After: 1``) and closed."""

_LOG = logging.getLogger(__name__)
_IDLE_CONNECTION_TIMEOUT = 60.0
_REFUSAL_TIMEOUT = 2.0  # how long an over-capacity connection may take to send its request's head
_DISCARD_LIMIT = 64 * 1024 * 1024  # past this, an oversized body is not read to its end: the connection is dropped
_RESULT_POLL = 0.25


class CallAborted(Exception):
    """A servicer ended the call with a status (what ``context.abort`` does on gRPC)."""

    def __init__(self, code: grpc.StatusCode, message: str, trailing_metadata: Sequence[tuple[str, Any]] = ()) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.trailing_metadata = tuple(trailing_metadata)


class _RestCallContext:
    """What the servicers use of a ``grpc.aio.ServicerContext``, for a call that came over HTTP.

    HTTP request headers stand in for the invocation metadata (names
    lowercased, as gRPC metadata keys are). A REST call has no deadline.
    """

    def __init__(self, headers: Sequence[tuple[str, str]]) -> None:
        self._metadata = tuple((key.lower(), value) for key, value in headers)

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def time_remaining(self) -> float | None:
        return None

    async def abort(
        self, code: grpc.StatusCode, details: str = "", trailing_metadata: Sequence[tuple[str, Any]] = ()
    ) -> NoReturn:
        raise CallAborted(code, details, trailing_metadata)

    async def abort_with_status(self, status: Any) -> NoReturn:
        raise CallAborted(status.code, status.details, status.trailing_metadata or ())


class _HttpRefusal(Exception):
    """A request refused by the HTTP layer with a status of its own (``413``, ``503``)."""

    def __init__(self, http_status: int, code: grpc.StatusCode, message: str, unread: int = 0) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.code = code
        self.message = message
        self.unread = unread  # body bytes the client is sending: read and dropped after the answer


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Idle keep-alive connections would make server_close() wait for ever: they are closed by the gateway instead.
    block_on_close = False
    request_queue_size = REST_LISTEN_BACKLOG

    def __init__(
        self, address: tuple[Any, ...], family: socket.AddressFamily, gateway: RestGateway, max_connections: int
    ) -> None:
        self.address_family = family
        self.gateway = gateway
        self.max_connections = max_connections
        self._slots = threading.BoundedSemaphore(max_connections)
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if self._slots.acquire(blocking=False):
            try:
                super().process_request(request, client_address)
            except BaseException:
                self._slots.release()
                raise
            return
        refusal = threading.Thread(
            target=self._refuse, args=(request, client_address), name="lro-grpc-emulator-rest-refusal", daemon=True
        )
        refusal.start()

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def _refuse(self, request: Any, client_address: Any) -> None:
        try:
            _OverCapacityHandler(request, client_address, self)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)

    def server_bind(self) -> None:
        # HTTPServer.server_bind would look the host's name up (socket.getfqdn), which can stall; nothing needs it.
        socketserver.TCPServer.server_bind(self)
        self.server_name = str(self.server_address[0])
        self.server_port = int(self.server_address[1])

    def handle_error(self, request: Any, client_address: Any) -> None:
        _LOG.debug("REST connection from %s failed", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "lro-grpc-emulator"
    sys_version = ""
    timeout = _IDLE_CONNECTION_TIMEOUT
    # Headers and body leave in one write (flushed after each request), without Nagle's delay: two small
    # writes would otherwise meet the client's delayed ACK and cost ~40 ms a call.
    wbufsize = -1
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.gateway._connection_opened(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.gateway._connection_closed(self.connection)

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PATCH = do_DELETE = do_PUT = do_OPTIONS = do_GET

    def version_string(self) -> str:
        return self.server_version

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Answer what the HTTP layer refuses (request line or headers too long, bad syntax) in Google's JSON shape."""
        grpc_code = grpc.StatusCode.UNIMPLEMENTED if code == 501 else grpc.StatusCode.INVALID_ARGUMENT
        if code >= 500 and code != 501:
            grpc_code = grpc.StatusCode.INTERNAL
        reason = message or self.responses.get(code, ("",))[0]
        self.close_connection = True
        self._send_json(code, self._refusal_body(code, grpc_code, f"HTTP {code}: {reason}"), OutputOptions())

    def handle_expect_100(self) -> bool:
        # Refuse an oversized body before the client sends it, instead of inviting it with "100 Continue".
        try:
            self._check_length()
        except _HttpRefusal as refusal:
            self.close_connection = True
            body = self._refusal_body(refusal.http_status, refusal.code, refusal.message)
            self._send_json(refusal.http_status, body, OutputOptions())
            return False
        return super().handle_expect_100()

    @staticmethod
    def _refusal_body(http_status: int, code: grpc.StatusCode, message: str) -> dict[str, Any]:
        body = error_body(code, message)
        body["error"]["code"] = http_status
        return body

    def log_message(self, format: str, *args: Any) -> None:
        if _LOG.isEnabledFor(logging.DEBUG):
            _LOG.debug("REST %s " + format, self.address_string(), *args)

    def _serve(self) -> None:
        with self.server.gateway.serving_request():
            page = self.server.gateway.page
            if page is not None and page.owns(urlsplit(self.path).path):
                self._answer_page(page)
            else:
                self._answer()

    def _answer_page(self, page: OperationsPage) -> None:
        try:
            body = self._read_body()
        except (RequestError, _HttpRefusal) as error:
            status = error.http_status if isinstance(error, _HttpRefusal) else http_status(error.code)
            self._send_json(status, self._refusal_body(status, error.code, error.message), OutputOptions())
            if isinstance(error, _HttpRefusal) and error.unread:
                self._discard(error.unread)
            return
        client_host = str(self.client_address[0]) if self.client_address else ""
        request = UiRequest(self.command, self.path, header_pairs(list(self.headers.items())), body, client_host)
        response = page.answer(request)
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers:
            self.send_header(name, value)
        if self.server.gateway.closing:
            self.close_connection = True
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)
        self.wfile.flush()

    def _answer(self) -> None:
        gateway = self.server.gateway
        options = OutputOptions()
        unread = 0
        try:
            body = self._read_body()  # first, so that a refused request leaves nothing unread on the connection
            split = urlsplit(self.path)
            query = parse_qsl(split.query, keep_blank_values=True)
            options = output_options(query)
            route, variables = find_route(self.command, split.path)
            request = build_request(route, variables, query, body)
            response = gateway.call(route.service, route.rpc, request, list(self.headers.items()))
            status, payload = 200, gateway.render(response, options)
        except RequestError as error:
            status, payload = gateway.error(error.code, error.message, (), options)
        except CallAborted as error:
            status, payload = gateway.error(error.code, error.message, error.trailing_metadata, options)
        except _HttpRefusal as refusal:
            status, payload = (
                refusal.http_status,
                self._refusal_body(refusal.http_status, refusal.code, refusal.message),
            )
            unread = refusal.unread
        except Exception as error:  # an emulator defect: answer INTERNAL rather than drop the connection
            _LOG.exception("REST %s %s failed", self.command, self.path)
            status, payload = gateway.error(grpc.StatusCode.INTERNAL, f"{type(error).__name__}: {error}", (), options)
        if gateway.closing:
            self.close_connection = True
        self._send_json(status, payload, options)
        if unread:
            self._discard(unread)

    def _discard(self, length: int) -> None:
        """Read and drop up to ``length`` bytes of a refused body, so that a client that sends it all first
        (most do, without ``Expect: 100-continue``) reads the answer instead of a reset connection."""
        remaining = min(length, _DISCARD_LIMIT)
        self.connection.settimeout(_REFUSAL_TIMEOUT)
        with contextlib.suppress(OSError, ValueError):
            while remaining > 0:
                chunk = self.rfile.read1(min(65536, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)

    def _send_json(
        self, status: int, payload: dict[str, Any], options: OutputOptions, headers: Sequence[tuple[str, str]] = ()
    ) -> None:
        encoded = json.dumps(payload, indent=2 if options.pretty else None, ensure_ascii=False).encode("utf-8")
        if options.pretty:
            encoded += b"\n"
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(encoded)))
        for name, value in headers:
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(encoded)
        self.wfile.flush()  # while still counted in flight: stop() closes connections once none is

    def _read_body(self) -> bytes:
        length = self._check_length()
        return self.rfile.read(length) if length else b""

    def _check_length(self) -> int:
        """The request body's length, from its headers.

        Raises:
            RequestError: a chunked body, or a ``Content-Length`` that is not a number.
            _HttpRefusal: ``413`` for a body over :data:`REST_MAX_BODY_BYTES`.
        """
        if self.headers.get("Transfer-Encoding", "").lower() not in ("", "identity"):
            self.close_connection = True
            raise RequestError(
                grpc.StatusCode.INVALID_ARGUMENT, "chunked request bodies are not supported: send Content-Length"
            )
        text = self.headers.get("Content-Length", "0") or "0"
        try:
            length = int(text)
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            raise RequestError(
                grpc.StatusCode.INVALID_ARGUMENT, f"Content-Length: expected a number of bytes, got {shown(text)}"
            )
        if length > REST_MAX_BODY_BYTES:
            self.close_connection = True
            raise _HttpRefusal(
                413,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"body: {length} bytes, over the emulator's limit of {REST_MAX_BODY_BYTES} bytes",
                unread=length,
            )
        return length


class _OverCapacityHandler(_Handler):
    """Answers one request on a connection past :data:`REST_MAX_CONNECTIONS` with ``503``, then closes it."""

    timeout = _REFUSAL_TIMEOUT

    def setup(self) -> None:
        BaseHTTPRequestHandler.setup(self)

    def finish(self) -> None:
        BaseHTTPRequestHandler.finish(self)

    def handle(self) -> None:
        self.close_connection = True
        self.handle_one_request()

    def handle_expect_100(self) -> bool:
        return True  # the body is never read: no "100 Continue" to invite it

    def _serve(self) -> None:
        self.close_connection = True
        message = (
            f"the emulator's REST gateway serves at most {self.server.max_connections} connections at once; "
            "retry shortly"
        )
        body = self._refusal_body(503, grpc.StatusCode.UNAVAILABLE, message)
        self._send_json(503, body, OutputOptions(), headers=(("Retry-After", "1"),))


class RestGateway:
    """Serves the two APIs' REST routes over an emulator backend, from threads of its own.

    Args:
        backend: the emulator's shared state (its event loop must be bound and running).
        loop: the event loop the backend's servicers run on.
        host: interface to listen on.
        port: port to listen on; ``0`` picks a free one (see :attr:`port`).
        registry: resolves the types inside operations when printing JSON.
        max_connections: connections served at once (:data:`REST_MAX_CONNECTIONS`).
        page_grpc_target: serve the operations page at ``/ui/`` (:mod:`._ui`), whose
            commands name this gRPC target; ``None``: no page.

    Raises:
        OSError: the address cannot be bound (port taken).
    """

    def __init__(
        self,
        backend: Backend,
        loop: asyncio.AbstractEventLoop,
        *,
        host: str,
        port: int,
        registry: TypeRegistry | None = None,
        max_connections: int = REST_MAX_CONNECTIONS,
        page_grpc_target: str | None = None,
    ) -> None:
        self._loop = loop
        self._services: dict[str, Any] = {
            "Operations": OperationsService(backend),
            "AML": AMLService(backend),
            "ServiceManager": ServiceManagerService(backend),
        }
        self._registry = registry if registry is not None else default_registry()
        family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        self._server = _Server(address, family, self, max_connections)
        self.page = (
            None
            if page_grpc_target is None
            else OperationsPage(backend, registry=self._registry, grpc_target=page_grpc_target)
        )
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._in_flight = 0
        self._idle = threading.Condition()
        self._closing = threading.Event()
        self._abandon = threading.Event()

    @property
    def port(self) -> int:
        """The port the gateway listens on."""
        return int(self._server.server_address[1])

    @property
    def closing(self) -> bool:
        """Whether :meth:`stop` has begun (answers then close their connection)."""
        return self._closing.is_set()

    def start(self) -> None:
        """Start serving on a thread of its own."""
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="lro-grpc-emulator-rest", daemon=True
        )
        self._thread.start()

    def stop(self, grace: float) -> None:
        """Stop accepting, give calls in flight up to ``grace`` seconds, then close every connection.

        Calls still running after ``grace`` are answered ``503 UNAVAILABLE``.
        """
        self._closing.set()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
        with self._idle:
            self._idle.wait_for(lambda: self._in_flight == 0, timeout=grace)
        self._abandon.set()
        with self._idle:  # the abandoned calls answer within one _RESULT_POLL
            self._idle.wait_for(lambda: self._in_flight == 0, timeout=_RESULT_POLL * 4)
        self._server.server_close()
        with self._idle:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def call(self, service: str, rpc: str, request: Message, headers: Sequence[tuple[str, str]]) -> Message:
        """Run one RPC on the emulator's event loop, as the gRPC server would, and wait for its answer.

        Raises:
            CallAborted: the servicer aborted the call (its status), or the
                emulator is stopping (``UNAVAILABLE``).
        """
        if self._abandon.is_set():
            raise CallAborted(grpc.StatusCode.UNAVAILABLE, "the emulator is stopping")
        handler = getattr(self._services[service], rpc)
        coroutine: Coroutine[Any, Any, Message] = handler(request, _RestCallContext(headers))
        try:
            future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        except RuntimeError:  # the loop has closed
            coroutine.close()
            raise CallAborted(grpc.StatusCode.UNAVAILABLE, "the emulator is stopping") from None
        while True:
            try:
                return future.result(timeout=_RESULT_POLL)
            except concurrent.futures.TimeoutError:
                if self._abandon.is_set():
                    future.cancel()
                    raise CallAborted(grpc.StatusCode.UNAVAILABLE, "the emulator is stopping") from None

    @contextlib.contextmanager
    def serving_request(self) -> Iterator[None]:
        """Count one request as in flight, from reading it to writing its answer (``stop`` waits for these)."""
        with self._idle:
            self._in_flight += 1
        try:
            yield
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()

    def render(self, response: Message, options: OutputOptions) -> dict[str, Any]:
        """A servicer's response in the REST JSON shape."""
        numbers = options.enums_as_numbers
        if isinstance(response, operations_pb2.Operation):
            return operation_to_dict(response, self._registry, enums_as_numbers=numbers)
        if isinstance(response, operations_pb2.ListOperationsResponse):
            return list_to_dict(
                response.operations,
                self._registry,
                next_page_token=response.next_page_token,
                unreachable=response.unreachable,
                enums_as_numbers=numbers,
            )
        if isinstance(response, empty_pb2.Empty):
            return {}
        raise TypeError(f"no REST rendering for {type(response).__name__}")

    def error(
        self,
        code: grpc.StatusCode,
        message: str,
        trailing_metadata: Sequence[tuple[str, Any]],
        options: OutputOptions,
    ) -> tuple[int, dict[str, Any]]:
        """The HTTP status and JSON body for a call that ended with ``code``.

        The details come from a ``grpc-status-details-bin`` trailer, as on gRPC.
        """
        details: list[dict[str, Any]] = []
        for key, value in trailing_metadata:
            if key == STATUS_DETAILS_KEY and isinstance(value, bytes):
                try:
                    status = status_pb2.Status.FromString(value)
                except DecodeError:
                    continue
                details.extend(
                    any_to_dict(detail, self._registry, enums_as_numbers=options.enums_as_numbers)
                    for detail in status.details
                )
        body = error_body(code, message, details)
        return body["error"]["code"], body

    # --- bookkeeping, from the handler threads ----------------------------------------------------

    def _connection_opened(self, connection: socket.socket) -> None:
        with self._idle:
            self._connections.add(connection)
        if self._abandon.is_set():
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def _connection_closed(self, connection: socket.socket) -> None:
        with self._idle:
            self._connections.discard(connection)
