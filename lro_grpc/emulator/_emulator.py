"""The in-process emulator: a test harness that runs the server on its own thread."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from types import TracebackType
from typing import Any

import grpc

from lro_grpc.emulator._clock import SimulatedClock, check_seconds, check_speed
from lro_grpc.emulator._faults import Faults
from lro_grpc.emulator._model import RequestError
from lro_grpc.emulator._rest import RestGateway
from lro_grpc.emulator._server import STARTING_METHODS, Backend, add_services, server_options
from lro_grpc.emulator._steering import as_python_error, failure_status, starting_request
from lro_grpc.emulator._store import OperationStore

__all__ = ["DEFAULT_CANCEL_GRACE", "DEFAULT_DURATION", "DEFAULT_RETENTION", "Emulator"]

DEFAULT_DURATION = 60.0
"""Simulated seconds an operation takes unless configured or overridden per call."""
DEFAULT_RETENTION = timedelta(days=30)
"""How long (simulated) a done operation's record is kept, as on Financial Services."""
DEFAULT_CANCEL_GRACE = 2.0
"""An operation due to finish within this many simulated seconds of a cancel request finishes anyway."""
_PURGE_INTERVAL = 60.0


class Emulator:
    """A local emulator of the Financial Services and Service Management operation surfaces.

    It serves ``google.longrunning.Operations`` plus the operation-starting RPCs
    of ``AML`` and ``ServiceManager`` on a loopback port, from a thread of its
    own, so it works the same from synchronous code and from inside a running
    asyncio event loop::

        with Emulator(speed=100) as emu:
            channel = grpc.insecure_channel(emu.target)
            ...
            emu.advance(60)                 # one simulated minute passes
            emu.faults.unavailable = 0.2    # a fifth of calls fail from now on

    Args:
        host: interface to listen on.
        port: port to listen on; ``0`` picks a free one (see :attr:`port`).
        rest_port: also serve the APIs' REST routes (HTTP/JSON) on this port,
            over the same state; ``0`` picks a free one (see :attr:`rest_url`);
            ``None`` (the default) serves gRPC only.
        db: SQLite file keeping the records (created if missing; a restarted
            emulator on the same file loses nothing and its clock carries on),
            or ``None`` to keep them in memory.
        speed: simulated seconds per real second; ``0`` freezes the clock so
            that only :meth:`advance` moves it.
        default_duration: simulated seconds an operation takes (seconds or ``timedelta``).
        durations: per-RPC durations, keyed by RPC name (``"CreateInstance"``,
            ``"CreateServiceRollout"``, ...), overriding ``default_duration``.
            The ``x-emulator-duration-seconds`` request header overrides both.
        retention: how long (simulated) a done operation stays visible.
        cancel_grace: simulated seconds before its end within which a cancel
            request no longer stops an operation.
        wait_timeout: real seconds ``WaitOperation`` waits when its request
            carries no ``timeout``.
        wait_rpc: serve ``WaitOperation``. Neither emulated API offers it, so
            by default it answers ``UNIMPLEMENTED`` and clients exercise their
            polling path; ``True`` serves it (``Faults.wait_unimplemented`` can
            still switch it off while running).
        faults: fault injection settings; default none.
        start_time: simulated time to start at (epoch seconds or an aware
            ``datetime``); default now. Ignored when ``db`` holds a saved clock.
        ui: with ``rest_port``, serve the operations page at ``rest_url + "/ui/"``
            (see :attr:`ui_url`); ``False`` turns it off.

    Raises:
        TypeError, ValueError: an argument is out of range; the message names it.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        rest_port: int | None = None,
        db: str | os.PathLike[str] | None = None,
        speed: float = 1.0,
        default_duration: float | timedelta = DEFAULT_DURATION,
        durations: Mapping[str, float | timedelta] | None = None,
        retention: float | timedelta = DEFAULT_RETENTION,
        cancel_grace: float | timedelta = DEFAULT_CANCEL_GRACE,
        wait_timeout: float | timedelta = 60.0,
        wait_rpc: bool = False,
        faults: Faults | None = None,
        start_time: float | datetime | None = None,
        ui: bool = True,
    ) -> None:
        if not isinstance(host, str) or not host:
            raise TypeError(f"host must be a non-empty string, got {host!r}")
        _check_port(port, what="port")
        if rest_port is not None:
            _check_port(rest_port, what="rest_port")
            if rest_port and rest_port == port:
                raise ValueError(f"rest_port must differ from port, got {rest_port!r} for both")
        if db is not None and not isinstance(db, str | os.PathLike):
            raise TypeError(f"db must be a path or None, got {db!r}")
        if not isinstance(wait_rpc, bool):
            raise TypeError(f"wait_rpc must be a bool, got {wait_rpc!r}")
        if not isinstance(ui, bool):
            raise TypeError(f"ui must be a bool, got {ui!r}")
        self._ui = ui
        if faults is not None and not isinstance(faults, Faults):
            raise TypeError(f"faults must be a Faults or None, got {faults!r}")
        self._host = host
        self._requested_port = port
        self._requested_rest_port = rest_port
        self._db = db
        self._speed = check_speed(speed)
        self._default_duration = check_seconds(default_duration, what="default_duration")
        self._durations = _check_durations(durations)
        self._retention = check_seconds(retention, what="retention")
        self._cancel_grace = check_seconds(cancel_grace, what="cancel_grace")
        self._wait_timeout = check_seconds(wait_timeout, what="wait_timeout")
        self._wait_rpc = wait_rpc
        self._faults = faults if faults is not None else Faults()
        self._start_time = _check_start_time(start_time)
        self._port: int | None = None
        self._backend: Backend | None = None
        self._store: OperationStore | None = None
        self._clock: SimulatedClock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Any = None
        self._gateway: RestGateway | None = None
        self._thread: threading.Thread | None = None
        self._lifecycle = threading.Lock()

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> Emulator:
        """Open the store, start serving and return ``self`` once the port is bound.

        Raises:
            RuntimeError: already started, or the server could not start (port
                taken, db in use by another emulator); the cause is chained.
            ValueError: ``db`` is not an emulator database.
        """
        with self._lifecycle:
            if self._thread is not None:
                raise RuntimeError("Emulator already started")
            if self._requested_port:
                _probe_port(self._host, self._requested_port)
            if self._requested_rest_port:
                _probe_port(self._host, self._requested_rest_port)
            store = OperationStore(self._db)
            try:
                anchor = store.load_anchor()
                if anchor is not None:
                    start = anchor.simulated_at(time.time())
                else:
                    start = self._start_time if self._start_time is not None else time.time()
                clock = SimulatedClock(speed=self._speed, start=start, on_change=self._clock_changed)
                store.save_anchor(clock.anchor())
                backend = Backend(
                    store=store,
                    clock=clock,
                    faults=self._faults,
                    default_duration=self._default_duration,
                    durations=self._durations,
                    retention=self._retention,
                    cancel_grace=self._cancel_grace,
                    wait_timeout=self._wait_timeout,
                    wait_rpc=self._wait_rpc,
                )
                self._store, self._clock, self._backend = store, clock, backend
                ready = threading.Event()
                failure: list[BaseException] = []
                thread = threading.Thread(
                    target=self._serve, args=(backend, ready, failure), name="lro-grpc-emulator", daemon=True
                )
                thread.start()
                ready.wait()
                if failure:
                    thread.join()
                    raise RuntimeError(f"emulator could not start on {self._host}:{self._requested_port}") from failure[
                        0
                    ]
            except BaseException:
                store.close()
                self._store = self._clock = self._backend = None
                raise
            self._thread = thread
        return self

    def _serve(self, backend: Backend, ready: threading.Event, failure: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            try:
                loop.run_until_complete(self._start_server(loop, backend))
            except BaseException as error:
                failure.append(error)
                return
            finally:
                ready.set()
            purge = loop.create_task(self._purge_periodically(backend))
            loop.run_forever()
            purge.cancel()
            loop.run_until_complete(asyncio.gather(purge, return_exceptions=True))
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _start_server(self, loop: asyncio.AbstractEventLoop, backend: Backend) -> None:
        backend.bind_loop(loop)
        server = grpc.aio.server(options=server_options())
        add_services(server, backend)
        port = server.add_insecure_port(_address(self._host, self._requested_port))
        await server.start()
        if self._requested_rest_port is not None:
            try:
                gateway = RestGateway(
                    backend,
                    loop,
                    host=self._host,
                    port=self._requested_rest_port,
                    page_grpc_target=_address(self._host, port) if self._ui else None,
                )
            except OSError:
                await server.stop(None)
                raise
            gateway.start()
            self._gateway = gateway
        self._loop, self._server, self._port = loop, server, port

    async def _purge_periodically(self, backend: Backend) -> None:
        while True:
            await asyncio.sleep(_PURGE_INTERVAL)
            backend.store.purge_expired(backend.clock.now(), backend.retention)

    def stop(self, grace: float = 0.5) -> None:
        """Stop serving and close the store (idempotent).

        Pending ``WaitOperation`` calls are answered with the operation's
        current state; other calls in flight get up to ``grace`` seconds.
        """
        with self._lifecycle:
            thread, loop, server, backend = self._thread, self._loop, self._server, self._backend
            if thread is None or loop is None or backend is None:
                return
            backend.stopping = True
            backend.notify()
            self._speed = backend.clock.speed  # the page may have changed it
            if self._gateway is not None:
                self._gateway.stop(grace)
                self._gateway = None
            asyncio.run_coroutine_threadsafe(server.stop(grace), loop).result()
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            backend.store.save_anchor(backend.clock.anchor())
            backend.store.close()
            self._thread = self._loop = self._server = self._backend = None
            self._store = self._clock = None
            self._port = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # --- what tests use --------------------------------------------------------------------------

    def _running(self) -> Backend:
        if self._backend is None:
            raise RuntimeError("Emulator is not running: call start() or use it as a context manager")
        return self._backend

    @property
    def host(self) -> str:
        """The interface the emulator listens on."""
        return self._host

    @property
    def port(self) -> int:
        """The port the emulator listens on (raises ``RuntimeError`` unless running)."""
        self._running()
        return self._port or 0  # set together with the backend, so never 0 here

    @property
    def target(self) -> str:
        """``"host:port"`` for ``grpc.insecure_channel`` (raises ``RuntimeError`` unless running)."""
        return _address(self._host, self.port)

    @property
    def rest_port(self) -> int:
        """The port of the REST gateway (raises ``RuntimeError`` unless running with ``rest_port``)."""
        self._running()
        if self._gateway is None:
            raise RuntimeError("the REST gateway is off: pass rest_port= (0 picks a free port)")
        return self._gateway.port

    @property
    def rest_url(self) -> str:
        """``"http://host:port"``, the REST gateway's base URL (raises ``RuntimeError`` unless serving REST)."""
        return f"http://{_address(self._host, self.rest_port)}"

    @property
    def ui_url(self) -> str:
        """``"http://host:port/ui/"``, the operations page (raises ``RuntimeError`` unless serving it)."""
        if not self._ui:
            raise RuntimeError("the operations page is off (ui=False, --no-ui)")
        return f"{self.rest_url}/ui/"

    @property
    def wait_rpc(self) -> bool:
        """Whether ``WaitOperation`` is served (``False``: it answers ``UNIMPLEMENTED``)."""
        return self._wait_rpc

    @property
    def clock(self) -> SimulatedClock:
        """The simulated clock (raises ``RuntimeError`` unless running)."""
        return self._running().clock

    @property
    def speed(self) -> float:
        """Simulated seconds per real second."""
        return self._speed if self._backend is None else self._backend.clock.speed

    def set_speed(self, speed: float) -> None:
        """Change how fast simulated time runs, from now on (persisted with ``db``)."""
        check_speed(speed)
        if self._backend is None:
            self._speed = float(speed)
        else:
            self._backend.clock.set_speed(speed)
            self._speed = self._backend.clock.speed

    def now(self) -> datetime:
        """The current simulated time, as an aware UTC ``datetime``."""
        return datetime.fromtimestamp(self._running().clock.now(), tz=timezone.utc)

    def advance(self, seconds: float | timedelta) -> datetime:
        """Move simulated time forward; returns the new simulated time.

        Operations that become due finish, records whose retention runs out
        disappear, and pending ``WaitOperation`` calls look again.

        Raises:
            TypeError, ValueError: ``seconds`` is not a non-negative duration.
            RuntimeError: the emulator is not running.
        """
        now = self._running().clock.advance(seconds)
        return datetime.fromtimestamp(now, tz=timezone.utc)

    @property
    def faults(self) -> Faults:
        """The fault injection settings in force; mutate them or assign a new :class:`Faults`."""
        return self._faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        if not isinstance(faults, Faults):
            raise TypeError(f"faults must be a Faults, got {faults!r}")
        self._faults = faults
        if self._backend is not None:
            self._backend.faults = faults

    def start_operation(self, parent: str, *, duration: float | None = None, fail: bool = False) -> str:
        """Start an operation the way a client would (over gRPC) and return its name.

        For examples and tests that need an operation to look at::

            name = emu.start_operation("projects/my-proj/locations/us-central1", duration=30)

        Args:
            parent: ``projects/P/locations/L`` starts an ``AML.CreateInstance``
                (a Financial Services operation under that parent);
                ``services/SERVICE_NAME`` starts a
                ``ServiceManager.CreateServiceRollout`` of that service (a Service
                Management operation, ``operations/rollouts.SERVICE_NAME:...``).
            duration: simulated seconds it takes; default the emulator's
                configured duration for that RPC.
            fail: end it with a ``FAILED_PRECONDITION`` error instead of a response.

        Returns:
            The operation's name.

        Raises:
            ValueError: ``parent`` is neither shape, or ``duration`` is negative.
            RuntimeError: the emulator is not running.
        """
        from lro_grpc._generated import financialservices_v1_pb2_grpc as fs_grpc
        from lro_grpc._generated import servicemanagement_v1_pb2_grpc as sm_grpc
        from lro_grpc.emulator._model import DURATION_HEADER, OUTCOME_HEADER

        metadata: list[tuple[str, str]] = []
        if duration is not None:
            metadata.append((DURATION_HEADER, str(check_seconds(duration, what="duration"))))
        if fail:
            metadata.append((OUTCOME_HEADER, "fail"))
        method, request = starting_request(parent, unique=f"{time.time_ns():x}")
        with grpc.insecure_channel(self.target) as channel:
            stub: Any = fs_grpc.AMLStub(channel) if method == "CreateInstance" else sm_grpc.ServiceManagerStub(channel)
            return str(getattr(stub, method)(request, metadata=metadata, timeout=10).name)

    def succeed(self, name: str) -> None:
        """End the running operation ``name`` now, with the response it was going to have.

        Raises:
            LookupError: there is no such operation (never was, deleted, expired).
            ValueError: ``name`` is malformed, or the operation is already done.
            RuntimeError: the emulator is not running.
        """
        self._steer(lambda backend: backend.finish_operation(name))

    def fail(self, name: str, code: grpc.StatusCode | str | int = "FAILED_PRECONDITION", message: str = "") -> None:
        """End the running operation ``name`` now with the error ``code`` and ``message``.

        A client then sees ``done`` with ``error`` = that status (no details).

        Args:
            name: the operation.
            code: a ``grpc.StatusCode``, its name or its number (not ``OK``).
            message: the status message; default ``"failed on demand (emulator)"``.

        Raises:
            LookupError, ValueError, RuntimeError: as :meth:`succeed`; ``ValueError``
                also for a bad ``code`` or ``message``.
        """
        status = failure_status(code, message)
        self._steer(lambda backend: backend.finish_operation(name, status))

    def cancel(self, name: str) -> None:
        """What ``CancelOperation`` does to ``name`` (best effort; Financial Services only).

        Raises:
            LookupError, ValueError, RuntimeError: as :meth:`succeed` (``ValueError``
                also for a Service Management operation, which has no cancel).
        """
        self._steer(lambda backend: backend.cancel_operation(name))

    def delete(self, name: str) -> None:
        """What ``DeleteOperation`` does to ``name``: forget it, without cancelling (Financial Services only).

        Raises:
            LookupError, ValueError, RuntimeError: as :meth:`cancel`.
        """
        self._steer(lambda backend: backend.delete_operation(name))

    def _steer(self, action: Callable[[Backend], object]) -> None:
        backend = self._running()
        try:
            action(backend)
        except RequestError as error:
            raise as_python_error(error) from None

    def operation_count(self) -> int:
        """How many operation records are stored (including expired ones not purged yet)."""
        return self._running().store.count()

    def purge_expired(self) -> int:
        """Remove records whose retention ran out now (also done every minute); how many."""
        backend = self._running()
        return backend.store.purge_expired(backend.clock.now(), backend.retention)

    def _clock_changed(self) -> None:
        backend = self._backend
        if backend is None:
            return
        backend.store.save_anchor(backend.clock.anchor())
        backend.notify()

    def __repr__(self) -> str:
        where = self.target if self._backend is not None else "stopped"
        return f"<Emulator {where} speed={self.speed!r} db={self._db!r}>"


def _probe_port(host: str, port: int) -> None:
    """Fail early, with a clear message, when the port is taken (gRPC would log its own error to stderr)."""
    try:
        family, kind, protocol, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        with socket.socket(family, kind, protocol) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gRPC's listener does
            probe.bind(address)
    except OSError as error:
        raise RuntimeError(f"emulator could not start on {_address(host, port)}: {error.strerror or error}") from error


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


def _check_port(port: object, *, what: str) -> None:
    if isinstance(port, bool) or not isinstance(port, int):
        raise TypeError(f"{what} must be an int, got {port!r}")
    if not 0 <= port <= 65535:
        raise ValueError(f"{what} must be in 0..65535, got {port!r}")


def _check_durations(durations: Mapping[str, float | timedelta] | None) -> dict[str, float]:
    if durations is None:
        return {}
    if not isinstance(durations, Mapping):
        raise TypeError(f"durations must be a mapping of RPC name to seconds, got {durations!r}")
    checked: dict[str, float] = {}
    for method, value in durations.items():
        if method not in STARTING_METHODS:
            raise ValueError(f"durations: unknown RPC {method!r}; expected one of {', '.join(STARTING_METHODS)}")
        checked[method] = check_seconds(value, what=f"durations[{method!r}]")
    return checked


def _check_start_time(start_time: float | datetime | None) -> float | None:
    if start_time is None:
        return None
    if isinstance(start_time, datetime):
        if start_time.tzinfo is None:
            raise ValueError(f"start_time must be timezone-aware, got {start_time!r}")
        return start_time.timestamp()
    if isinstance(start_time, bool) or not isinstance(start_time, int | float):
        raise TypeError(f"start_time must be epoch seconds or a datetime, got {start_time!r}")
    return float(start_time)
