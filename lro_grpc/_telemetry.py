"""Optional OpenTelemetry: a span per wait and per batch, RPC/poll/retry counters, time to done, batch pending.

Active when the ``opentelemetry-api`` package can be imported (``pip install
'lro-grpc[otel]'``); it is looked for once, on the first wait or RPC, never at
``import lro_grpc``. Without it every hook here is a ``None`` check. With it and no
meter provider set, a plan makes no counter (the API's proxy counters would drop
every count); spans per wait go to the API's no-op tracer, nearly free.

Spans are per wait (``lro_grpc.wait``: ``result()``, ``wait()``, ``exception()``)
and per batch (``lro_grpc.batch``: ``as_completed``, ``wait_all``), of kind
INTERNAL: never per RPC, so they nest above, and do not double, the CLIENT spans
``opentelemetry-instrumentation-grpc`` makes for each call.

Instruments (meter ``lro_grpc``):

* ``lro_grpc.rpc.calls`` (counter): RPC attempts, by ``rpc.method`` and
  ``rpc.grpc.status_code`` (the code's name, ``OK`` for an answer);
* ``lro_grpc.polls`` (counter): answered looks at an operation (GetOperation,
  WaitOperation), by ``lro.api``;
* ``lro_grpc.retries`` (counter): attempts made again after a failed one, by
  ``rpc.method`` and the failed attempt's ``rpc.grpc.status_code``;
* ``lro_grpc.operation.time_to_done`` (histogram, seconds): from the start of a
  wait to the poll that saw the operation done, by ``lro.api`` and ``lro.outcome``;
* ``lro_grpc.batch.pending`` (up-down counter): operations batches are still waiting for.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Final, TypeVar

from google.longrunning import operations_pb2

from lro_grpc._core import RpcCall, RpcFailure

__all__ = [
    "BatchTrace",
    "Instruments",
    "PlanObserver",
    "WaitTally",
    "api_of",
    "batch",
    "instruments",
    "observer",
    "outcome_of",
    "traced_results",
    "traced_results_async",
    "tracing_batch",
    "waiting",
]

T = TypeVar("T")

_POLL_METHODS: Final = frozenset({"GetOperation", "WaitOperation"})


def api_of(name: str) -> str:
    """The API an operation name belongs to, for attributes (no validation)."""
    if name.startswith("projects/"):
        return "financialservices"
    if name.startswith("operations/"):
        return "servicemanagement"
    return "unknown"


def outcome_of(operation: operations_pb2.Operation) -> str:
    """``succeeded``, ``failed``, ``cancelled`` or ``running``."""
    if not operation.done:
        return "running"
    if not operation.HasField("error") or operation.error.code == 0:
        return "succeeded"
    return "cancelled" if operation.error.code == 1 else "failed"


@dataclasses.dataclass
class WaitTally:
    """What one wait amounted to, read into its span: its RPCs, and how it ended (set by the caller)."""

    polls: int = 0
    rpcs: int = 0
    outcome: str = "unknown"


_current_tally: contextvars.ContextVar[WaitTally | None] = contextvars.ContextVar("lro_grpc_wait_tally", default=None)


@dataclasses.dataclass(frozen=True)
class Instruments:
    """The tracer and the instruments, made once."""

    tracer: Any
    calls: Any
    polls: Any
    retries: Any
    time_to_done: Any
    batch_pending: Any
    metering: Callable[[], bool] = lambda: True
    """Whether the counters count: ``False`` while no meter provider is set (their adds are dropped)."""

    @contextlib.contextmanager
    def wait_span(self, name: str) -> Iterator[WaitTally]:
        """A span around one wait on operation ``name``; the caller sets the tally's ``outcome``."""
        from opentelemetry import trace

        tally = WaitTally()
        token = _current_tally.set(tally)
        started = time.monotonic()
        api = api_of(name)
        with self.tracer.start_as_current_span(
            "lro_grpc.wait",
            kind=trace.SpanKind.INTERNAL,
            attributes={"lro.operation.name": name, "lro.api": api},
        ) as span:
            try:
                yield tally
            finally:
                _current_tally.reset(token)
                span.set_attribute("lro.polls", tally.polls)
                span.set_attribute("lro.outcome", tally.outcome)
        if tally.outcome in ("succeeded", "failed", "cancelled"):
            self.time_to_done.record(time.monotonic() - started, {"lro.api": api, "lro.outcome": tally.outcome})

    def batch_span(self, size: int) -> Any:
        """A span for one batch of ``size`` operations, not made current (it lives across yields)."""
        from opentelemetry import trace

        return self.tracer.start_span(
            "lro_grpc.batch", kind=trace.SpanKind.INTERNAL, attributes={"lro.batch.size": size}
        )


_UNRESOLVED: Final = object()
_instruments: Any = _UNRESOLVED


def instruments() -> Instruments | None:
    """The instruments, or ``None`` when OpenTelemetry is not installed (looked for once)."""
    global _instruments
    if _instruments is _UNRESOLVED:
        _instruments = _load()
    return _instruments  # type: ignore[no-any-return]


def _load() -> Instruments | None:
    try:
        from opentelemetry import metrics, trace
    except ImportError:
        return None
    from lro_grpc._version import __version__

    meter = metrics.get_meter("lro_grpc", __version__)  # sets the provider OTEL_PYTHON_METER_PROVIDER names
    return Instruments(
        metering=_metering_probe(),
        tracer=trace.get_tracer("lro_grpc", __version__),
        calls=meter.create_counter("lro_grpc.rpc.calls", unit="{call}", description="RPC attempts"),
        polls=meter.create_counter("lro_grpc.polls", unit="{poll}", description="answered looks at an operation"),
        retries=meter.create_counter("lro_grpc.retries", unit="{retry}", description="RPC attempts made again"),
        time_to_done=meter.create_histogram(
            "lro_grpc.operation.time_to_done", unit="s", description="from the start of a wait to done"
        ),
        batch_pending=meter.create_up_down_counter(
            "lro_grpc.batch.pending", unit="{operation}", description="operations batches still wait for"
        ),
    )


def _metering_probe() -> Callable[[], bool]:
    # Until an application sets a meter provider, the API's proxy counters drop every
    # add: a plan then needs no counter (its cost would be the whole of telemetry's on a
    # call). The API keeps the provider in a module global, read directly: calling
    # get_meter_provider() per plan costs about what it would save. Should that global
    # move in a later API, every plan counts, as before.
    from opentelemetry.metrics import _internal

    if not hasattr(_internal, "_METER_PROVIDER"):
        return lambda: True
    return lambda: _internal._METER_PROVIDER is not None


class PlanObserver:
    """Counts one plan's RPCs, polls and retries as a driver reports its attempts (``observe=`` of the drivers)."""

    __slots__ = ("_failed_before", "_failed_before_attributes", "_tools")

    def __init__(self, tools: Instruments) -> None:
        self._tools = tools
        self._failed_before = False
        self._failed_before_attributes: dict[str, str] = {}

    def __call__(self, step: RpcCall, reply: Any) -> None:
        """Count one attempt: ``step`` and what it gave back."""
        tools = self._tools
        if self._failed_before:
            tools.retries.add(1, self._failed_before_attributes)
        tally = _current_tally.get()
        if isinstance(reply, RpcFailure):
            code = reply.code.name
            self._failed_before = True
            self._failed_before_attributes = {"rpc.method": step.method, "rpc.grpc.status_code": code}
        else:
            code = "OK"
            self._failed_before = False
            if step.method in _POLL_METHODS and isinstance(reply, operations_pb2.Operation):
                tools.polls.add(1, {"lro.api": api_of(reply.name)})
                if tally is not None:
                    tally.polls += 1
        if tally is not None:
            tally.rpcs += 1
        tools.calls.add(1, {"rpc.method": step.method, "rpc.grpc.status_code": code})


def observer() -> PlanObserver | None:
    """A fresh counter for one plan's attempts (the drivers' ``observe=``).

    ``None`` without OpenTelemetry, and while it would record nothing: no meter
    provider set and no wait span to tally for.
    """
    tools = _instruments if _instruments is not _UNRESOLVED else instruments()  # a call less once resolved
    if tools is None or (not tools.metering() and _current_tally.get() is None):
        return None  # nothing would be recorded: no meter provider, no wait span to tally for
    return PlanObserver(tools)


@contextlib.contextmanager
def waiting(name: str, last_seen: Any) -> Iterator[None]:
    """Trace one wait on operation ``name``; ``last_seen()`` gives its state when the wait ends."""
    tools = instruments()
    if tools is None:
        yield
        return
    with tools.wait_span(name) as tally:
        try:
            yield
        except TimeoutError:
            tally.outcome = "timeout"
            raise
        except Exception:
            tally.outcome = "error"
            raise
        tally.outcome = outcome_of(last_seen())


class BatchTrace:
    """One batch's span and its share of ``lro_grpc.batch.pending``; call :meth:`seen` per result, then :meth:`end`."""

    def __init__(self, tools: Instruments, size: int) -> None:
        self._tools = tools
        self._span = tools.batch_span(size)
        self._pending = size
        self._completed = 0
        self._failed = 0
        self._ended = False
        tools.batch_pending.add(size)

    def seen(self, operation: operations_pb2.Operation) -> None:
        """One operation came out of the batch."""
        self._completed += 1
        if outcome_of(operation) in ("failed", "cancelled"):
            self._failed += 1
        if self._pending:
            self._pending -= 1
            self._tools.batch_pending.add(-1)

    def end(self, error: BaseException | None = None) -> None:
        """The batch is over (``error``: how it ended, if not normally); later calls do nothing."""
        if self._ended:
            return
        self._ended = True
        if self._pending:
            self._tools.batch_pending.add(-self._pending)
            self._pending = 0
        span = self._span
        span.set_attribute("lro.batch.completed", self._completed)
        span.set_attribute("lro.batch.failed", self._failed)
        if error is None:
            span.set_attribute("lro.outcome", "completed")
        else:
            span.set_attribute("lro.outcome", "timeout" if isinstance(error, TimeoutError) else "error")
            span.record_exception(error)
            from opentelemetry.trace import Status, StatusCode

            span.set_status(Status(StatusCode.ERROR, str(error)))
        span.end()


def batch(names: list[str]) -> BatchTrace | None:
    """A :class:`BatchTrace` for a batch of ``names``, or ``None`` without OpenTelemetry."""
    tools = instruments()
    return None if tools is None else BatchTrace(tools, len(dict.fromkeys(names)))


class _NoTrace:
    def seen(self, operation: operations_pb2.Operation) -> None:
        pass


@contextlib.contextmanager
def tracing_batch(names: list[str]) -> Iterator[BatchTrace | _NoTrace]:
    """Trace a batch that gives all its results at once (``wait_all``): call ``seen`` for each."""
    trace = batch(names)
    if trace is None:
        yield _NoTrace()
        return
    try:
        yield trace
    except Exception as error:
        trace.end(error)
        raise
    trace.end()


def traced_results(results: Iterator[T], names: list[str], raw: Callable[[T], Any]) -> Iterator[T]:
    """``results`` as they come, the batch traced from the first ``next()`` (``raw(result)``: its operation)."""
    trace = batch(names)
    if trace is None:
        yield from results
        return
    try:
        for result in results:
            trace.seen(raw(result))
            yield result
    except Exception as error:
        trace.end(error)
        raise
    finally:
        trace.end()  # no-op after end(error); also when the consumer stops early


async def traced_results_async(
    results: AsyncIterator[T], names: list[str], raw: Callable[[T], Any]
) -> AsyncIterator[T]:
    """The asyncio form of :func:`traced_results`."""
    trace = batch(names)
    try:
        async for result in results:
            if trace is not None:
                trace.seen(raw(result))
            yield result
    except Exception as error:
        if trace is not None:
            trace.end(error)
        raise
    finally:
        if trace is not None:
            trace.end()
        close = getattr(results, "aclose", None)
        if close is not None:
            await close()
