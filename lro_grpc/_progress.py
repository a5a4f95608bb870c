"""Rendering for the command line: operation tables, detail views and a progress bar.

The renderers work on the REST JSON shape of an operation (the ``dict`` that
``Operation.to_dict()`` returns: ``name``, ``metadata`` with ``@type``,
``done``, ``error`` or ``response``), so they serve every API alike and do no
I/O. :class:`ProgressBar` writes to the stream it is given;
:func:`wait_all_with_progress` runs the batch waiter with one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, TextIO

import grpc
from google.longrunning import operations_pb2

from lro_grpc._batch import BatchProgress, BatchSource, BatchTimeoutError, SyncBatchRunner, as_batch_source
from lro_grpc._core import RpcFailure
from lro_grpc.operation import AsyncOperation, Operation
from lro_grpc.policies import Deadline, PollPolicy
from lro_grpc.registry import TypeRegistry

if TYPE_CHECKING:
    from lro_grpc.aio import AsyncOperationsClient

__all__ = [
    "TABLE_WIDTH",
    "BatchDisplay",
    "ProgressBar",
    "format_progress",
    "observing_source",
    "operation_fraction",
    "operation_state",
    "render_operation_detail",
    "render_operation_table",
    "wait_all_with_progress",
]

_CODE_NAMES: dict[int, str] = {code.value[0]: code.name for code in grpc.StatusCode}

_TYPE_PREFIX = "type.googleapis.com/"


def _short_type(type_url: object) -> str:
    text = str(type_url)
    return text[len(_TYPE_PREFIX) :] if text.startswith(_TYPE_PREFIX) else text


def _code_name(code: object) -> str:
    if isinstance(code, int) and not isinstance(code, bool):
        return _CODE_NAMES.get(code, str(code))
    return str(code)


def operation_state(operation: Mapping[str, Any]) -> str:
    """A one-word summary of an operation in REST JSON shape.

    Args:
        operation: the operation as ``Operation.to_dict()`` returns it.

    Returns:
        ``"RUNNING"``, ``"CANCELLING"`` (running, cancellation requested),
        ``"SUCCEEDED"``, ``"CANCELLED"`` or ``"FAILED(<CODE>)"``.
    """
    error = operation.get("error")
    if operation.get("done"):
        if error is None:  # an error of code 0 is a failure too (see _core.operation_failed)
            return "SUCCEEDED"
        code = _code_name(error.get("code") or 2)  # no code, or 0: UNKNOWN, as for the handle
        return "CANCELLED" if code == "CANCELLED" else f"FAILED({code})"
    metadata = operation.get("metadata") or {}
    if metadata.get("requestedCancellation"):
        return "CANCELLING"
    return "RUNNING"


def operation_fraction(operation: Mapping[str, Any]) -> float | None:
    """How far along an operation is, in ``[0, 1]``, or ``None`` if it does not say.

    A done operation is complete (1.0). A running one is measured by its
    metadata's ``progressPercentage`` where the API reports it (Service
    Management); otherwise the fraction is unknown.

    Args:
        operation: the operation as ``Operation.to_dict()`` returns it.
    """
    if operation.get("done"):
        return 1.0
    metadata = operation.get("metadata") or {}
    percentage = metadata.get("progressPercentage")
    if isinstance(percentage, int | float) and not isinstance(percentage, bool):
        return min(1.0, max(0.0, float(percentage) / 100.0))
    return None


def _progress_text(operation: Mapping[str, Any]) -> str:
    metadata = operation.get("metadata") or {}
    percentage = metadata.get("progressPercentage")
    if isinstance(percentage, int) and not isinstance(percentage, bool):
        return f"{percentage}%"
    return "-"


def _detail_text(operation: Mapping[str, Any]) -> str:
    metadata = operation.get("metadata") or {}
    parts: list[str] = []
    verb = metadata.get("verb")
    target = metadata.get("target")
    if verb or target:
        parts.append(" ".join(str(part) for part in (verb, target) if part))
    resource_names = metadata.get("resourceNames")
    if resource_names:
        parts.append(", ".join(str(name) for name in resource_names))
    steps = metadata.get("steps")
    if steps and not parts:
        parts.append("; ".join(f"{step.get('description', '')} {step.get('status', '')}".strip() for step in steps))
    error = operation.get("error")
    if error and error.get("message"):
        parts.append(str(error["message"]))
    return " | ".join(parts) if parts else "-"


def _created_text(operation: Mapping[str, Any]) -> str:
    metadata = operation.get("metadata") or {}
    created = metadata.get("createTime") or metadata.get("startTime")
    if not created:
        return "-"
    text = str(created)
    # Whole seconds are enough in a table (the detail view and --json keep the fraction).
    if len(text) > 20 and text[19] == "." and text.endswith("Z"):
        return text[:19] + "Z"
    return text


_TABLE_HEADERS = ("NAME", "STATE", "PROGRESS", "CREATED", "DETAIL")

TABLE_WIDTH = 100
"""Columns a table is fitted into (:func:`render_operation_table`)."""

_ELLIPSIS = "..."
_MIN_NAME_WIDTH = 24
_MIN_DETAIL_WIDTH = 10


def _shorten_middle(text: str, width: int) -> str:
    """``text`` in at most ``width`` columns, keeping its start and (longer) end.

    An operation name's end is its identifier, the part that tells two names apart.
    """
    if len(text) <= width:
        return text
    keep = max(width - len(_ELLIPSIS), 2)
    head = keep // 3
    return text[:head] + _ELLIPSIS + text[len(text) - (keep - head) :]


def _shorten_end(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    return text[: max(width - len(_ELLIPSIS), 1)] + _ELLIPSIS


def render_operation_table(operations: Iterable[Mapping[str, Any]], *, width: int = TABLE_WIDTH) -> str:
    """Render operations as an aligned text table, one row per operation, within ``width`` columns.

    Columns: NAME, STATE (see :func:`operation_state`), PROGRESS (the
    metadata's ``progressPercentage`` where the API reports one), CREATED
    (``createTime`` or ``startTime``, to the second) and DETAIL (verb and
    target, resource names, or the error message).

    When the rows are wider than ``width``, DETAIL is cut at its end (down to
    10 columns) and then NAME in its middle, keeping its start and the
    operation's identifier at its end (down to 24 columns; DETAIL gives way
    again if the other columns are very wide); ``...`` marks each cut. The
    ``get`` view and ``--json`` print everything in full.

    Args:
        operations: operations as ``Operation.to_dict()`` returns them.
        width: the number of columns to fit into (at least 40).

    Returns:
        The table without a trailing newline; just the header row when there
        are no operations.

    Raises:
        ValueError: ``width`` is below 40.
    """
    if width < 40:
        raise ValueError(f"width must be at least 40 columns, got {width!r}")
    rows: list[Sequence[str]] = [_TABLE_HEADERS]
    for operation in operations:
        rows.append(
            (
                str(operation.get("name", "")),
                operation_state(operation),
                _progress_text(operation),
                _created_text(operation),
                _detail_text(operation),
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(_TABLE_HEADERS))]
    separators = 2 * (len(_TABLE_HEADERS) - 1)
    room = width - separators - sum(widths[1:-1])  # for NAME and DETAIL together
    if widths[0] + widths[-1] > room:
        detail_floor = min(widths[-1], _MIN_DETAIL_WIDTH)
        detail_least = len(_TABLE_HEADERS[-1])
        name_floor = min(widths[0], _MIN_NAME_WIDTH, room - detail_least)
        widths[0] = max(min(widths[0], room - detail_floor), name_floor)
        widths[-1] = max(room - widths[0], detail_least)
        rows = [rows[0]] + [
            (_shorten_middle(row[0], widths[0]), *row[1:-1], _shorten_end(row[-1], widths[-1])) for row in rows[1:]
        ]
    lines = []
    for row in rows:
        cells = [cell.ljust(column_width) for cell, column_width in zip(row[:-1], widths[:-1], strict=True)]
        cells.append(row[-1])
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _scalar(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)


def _render_value(lines: list[str], key: str, value: object, indent: int) -> None:
    pad = "  " * indent
    if isinstance(value, Mapping):
        type_url = value.get("@type")
        heading = f"{pad}{key}:" + (f" {_short_type(type_url)}" if type_url else "")
        lines.append(heading)
        for child_key, child_value in value.items():
            if child_key != "@type":
                _render_value(lines, child_key, child_value, indent + 1)
        if len(value) == (1 if type_url else 0):
            lines[-1] += " {}"
    elif isinstance(value, list):
        if not value:
            lines.append(f"{pad}{key}: []")
            return
        lines.append(f"{pad}{key}:")
        for item in value:
            if isinstance(item, Mapping) and item:
                # YAML-like: the first field shares the line with the item's dash.
                start = len(lines)
                for child_key, child_value in item.items():
                    _render_value(lines, child_key, child_value, indent + 2)
                first = lines[start]
                lines[start] = f"{pad}  - {first[len(pad) + 4 :]}"
            else:
                lines.append(f"{pad}  - {_scalar(item) if not isinstance(item, Mapping) else '{}'}")
    else:
        lines.append(f"{pad}{key}: {_scalar(value)}")


def render_operation_detail(operation: Mapping[str, Any]) -> str:
    """Render one operation as an indented ``key: value`` view.

    The first lines give the name and the state (see :func:`operation_state`);
    then every field of ``metadata``, ``error`` and ``response``, nested as in
    the JSON, with each ``Any``'s type shown next to its heading.

    Args:
        operation: the operation as ``Operation.to_dict()`` returns it.

    Returns:
        The view without a trailing newline.
    """
    lines = [f"name: {operation.get('name', '')}", f"state: {operation_state(operation)}"]
    lines.append(f"done: {_scalar(bool(operation.get('done', False)))}")
    for key in ("metadata", "error", "response"):
        if key in operation:
            value = operation[key]
            if key == "error" and isinstance(value, Mapping) and "code" in value:
                value = {**value, "code": f"{value['code']} ({_code_name(value['code'])})"}
            _render_value(lines, key, value, 0)
    return "\n".join(lines)


def format_progress(
    *,
    done: int,
    failed: int,
    pending: int,
    fraction: float | None = None,
    elapsed: float | None = None,
    width: int = 30,
) -> str:
    """One line describing a wait in progress, e.g. ``[#####-----]  50% 5/10 done, 1 failed``.

    Args:
        done: operations finished so far (successes and failures).
        failed: how many of ``done`` failed or were cancelled.
        pending: operations still running.
        fraction: overall completion in ``[0, 1]`` when something finer than
            ``done / total`` is known (e.g. a Service Management operation's
            ``progressPercentage``); ``None`` to use ``done / total``.
        elapsed: seconds since the wait started, shown when given.
        width: characters inside the bar's brackets.

    Returns:
        The line, without carriage return or newline.

    Raises:
        ValueError: a count is negative or ``width`` is less than 1.
    """
    for label, count in (("done", done), ("failed", failed), ("pending", pending)):
        if count < 0:
            raise ValueError(f"{label} must be >= 0, got {count!r}")
    if width < 1:
        raise ValueError(f"width must be >= 1, got {width!r}")
    total = done + pending
    if fraction is None:
        fraction = done / total if total else 1.0
    fraction = min(1.0, max(0.0, fraction))
    filled = int(fraction * width)
    bar = "#" * filled + "-" * (width - filled)
    text = f"[{bar}] {fraction * 100:3.0f}% {done}/{total} done"
    if failed:
        text += f", {failed} failed"
    if elapsed is not None:
        text += f" ({elapsed:.1f}s)"
    return text


class ProgressBar:
    """A single-line progress bar redrawn in place on a terminal stream.

    Redraws are throttled to one per ``min_interval`` seconds, except the
    final one. Use as a context manager, or call :meth:`close` to finish the
    line.

    Args:
        stream: where to draw (a terminal; the caller decides whether to draw at all).
        width: characters inside the bar's brackets.
        min_interval: least seconds between two redraws.
        clock: monotonic clock, for tests.
    """

    def __init__(
        self,
        stream: TextIO,
        *,
        width: int = 30,
        min_interval: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if width < 1:
            raise ValueError(f"width must be >= 1, got {width!r}")
        if min_interval < 0:
            raise ValueError(f"min_interval must be >= 0, got {min_interval!r}")
        self._stream = stream
        self._width = width
        self._min_interval = min_interval
        self._clock = clock
        self._started = clock()
        self._last_draw: float | None = None
        self._last_line = ""
        self._closed = False

    def update(
        self, *, done: int, failed: int, pending: int, fraction: float | None = None, force: bool = False
    ) -> None:
        """Redraw with new counts (see :func:`format_progress` for the arguments).

        Args:
            done: operations finished so far.
            failed: how many of ``done`` failed or were cancelled.
            pending: operations still running.
            fraction: overall completion, if finer than ``done / total``.
            force: redraw even if the last redraw was less than ``min_interval`` ago.
        """
        if self._closed:
            return
        now = self._clock()
        if not force and self._last_draw is not None and now - self._last_draw < self._min_interval:
            return
        line = format_progress(
            done=done, failed=failed, pending=pending, fraction=fraction, elapsed=now - self._started, width=self._width
        )
        self._last_draw = now
        self._last_line = line
        # \r returns to the start of the line; ESC[K clears what a longer previous line left behind.
        self._stream.write("\r" + line + "\x1b[K")
        self._stream.flush()

    def close(self) -> None:
        """End the bar's line (once); later updates are ignored."""
        if self._closed:
            return
        self._closed = True
        if self._last_draw is not None:
            self._stream.write("\n")
            self._stream.flush()

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class BatchDisplay:
    """Draws a batch wait on a :class:`ProgressBar`: counts from the waiter, finer fractions from each poll.

    The waiter's ``progress`` callback gives done/failed/pending counts
    (:meth:`on_progress`); each poll's operation (:meth:`on_poll`) adds what
    its metadata says of a running operation's progress (Service Management's
    ``progressPercentage``). The two arrive from different threads when the
    synchronous batch runner is used, hence the lock.

    Args:
        bar: where to draw.
        names: the operations waited for.
        registry: unpacks the polled operations' metadata.
    """

    def __init__(self, bar: ProgressBar, names: Iterable[str], registry: TypeRegistry) -> None:
        self._bar = bar
        self._names = set(names)
        self._registry = registry
        self._lock = threading.Lock()
        self._fractions: dict[str, float] = {}
        self._counts = BatchProgress(done=0, failed=0, pending=len(self._names))

    def on_progress(self, progress: BatchProgress) -> None:
        """The waiter's ``progress`` callback."""
        with self._lock:
            self._counts = progress
            self._draw(force=progress.pending == 0)

    def on_poll(self, operation: operations_pb2.Operation) -> None:
        """Called with each polled or listed state of an operation (others' are ignored)."""
        if operation.name not in self._names:
            return
        fraction = operation_fraction(Operation(operation, registry=self._registry).to_dict())
        with self._lock:
            if fraction is not None:
                self._fractions[operation.name] = fraction
            self._draw(force=False)

    def tick(self) -> None:
        """Redraw with the counts as they are, so the elapsed time keeps moving between polls."""
        with self._lock:
            self._draw(force=False)

    def _draw(self, *, force: bool) -> None:
        counts = self._counts
        total = counts.total
        # Finished operations count in full; running ones with what their metadata reports.
        running = sum(fraction for fraction in self._fractions.values() if fraction < 1.0)
        fraction = min(1.0, (counts.done + running) / total) if total else 1.0
        self._bar.update(done=counts.done, failed=counts.failed, pending=counts.pending, fraction=fraction, force=force)

    def close(self) -> None:
        """End the bar's line."""
        with self._lock:
            self._bar.close()


def observing_source(
    client: AsyncOperationsClient, observe: Callable[[operations_pb2.Operation], object] | None
) -> BatchSource[AsyncOperation[Any, Any]]:
    """``client``'s batch source, showing ``observe`` every polled or listed operation state.

    The source has no shared scheduler: a batch over it polls with a scheduler
    of its own, through the observing calls.

    Args:
        client: the asyncio client that does the polling.
        observe: called with every operation state a GetOperation or a
            ListOperations page brought, or ``None`` (the source as it is).
    """
    # A scheduler of its own: the client's shared one would call the client's fetch, unobserved.
    source = dataclasses.replace(as_batch_source(client), scheduler=None)
    if observe is None:
        return source
    fetch, list_page = source.fetch, source.list_page

    async def fetch_observed(
        name: str, *, deadline: Deadline, rpc_timeout: float | None
    ) -> operations_pb2.Operation | RpcFailure:
        reply = await fetch(name, deadline=deadline, rpc_timeout=rpc_timeout)
        if not isinstance(reply, RpcFailure):
            observe(reply)
        return reply

    async def list_observed(
        request: operations_pb2.ListOperationsRequest, *, deadline: Deadline, rpc_timeout: float | None
    ) -> operations_pb2.ListOperationsResponse | RpcFailure:
        assert list_page is not None  # only used when the source lists
        reply = await list_page(request, deadline=deadline, rpc_timeout=rpc_timeout)
        if not isinstance(reply, RpcFailure):
            for operation in reply.operations:
                observe(operation)
        return reply

    return dataclasses.replace(source, fetch=fetch_observed, list_page=None if list_page is None else list_observed)


def wait_all_with_progress(
    open_client: Callable[[], AbstractAsyncContextManager[AsyncOperationsClient]],
    names: Sequence[str],
    *,
    timeout: float | None,
    poll_policy: PollPolicy,
    rpc_timeout: float | None,
    registry: TypeRegistry,
    bar_stream: TextIO | None,
    journal: str | None = None,
) -> tuple[list[operations_pb2.Operation], bool]:
    """Wait for every operation with the batch waiter, drawing a progress bar on ``bar_stream``.

    Args:
        open_client: makes the asyncio client to poll with, as an async
            context manager (an ``AsyncOperationsClient`` is one); called on the
            waiter's background event loop, which its channel must be made on.
        names: the operations, in order.
        timeout: overall wait in seconds; ``None`` waits for ever.
        poll_policy: how often to poll each operation.
        rpc_timeout: timeout of each GetOperation.
        registry: unpacks metadata for the progress bar.
        bar_stream: a terminal to draw the bar on, or ``None`` for no bar.
        journal: a journal file to resume from and record in (see ``wait_all``).

    Returns:
        Each operation's final state (or last seen state if the deadline
        passed first), in input order, and whether the deadline passed.
    """
    display = BatchDisplay(ProgressBar(bar_stream), names, registry) if bar_stream is not None else None

    @contextlib.asynccontextmanager
    async def open_source() -> AsyncIterator[BatchSource[AsyncOperation[Any, Any]]]:
        async with open_client() as client:
            yield observing_source(client, display.on_poll if display is not None else None)

    runner: SyncBatchRunner[operations_pb2.Operation] = SyncBatchRunner(open_source, wrap=lambda pb: pb)
    stop_ticking = threading.Event()
    if display is not None:
        # Polls may be minutes apart: redraw in between so the elapsed time is seen to move.
        threading.Thread(
            target=_tick_until, args=(display, stop_ticking, TICK_INTERVAL), name="lro-grpc-progress", daemon=True
        ).start()
    try:
        with runner:
            results = runner.wait_all(
                names,
                timeout=timeout,
                poll_policy=poll_policy,
                progress=display.on_progress if display is not None else None,
                rpc_timeout=rpc_timeout,
                journal=journal,
            )
            return list(results), False
    except BatchTimeoutError as timed_out:
        return list(timed_out.results or []), True
    finally:
        stop_ticking.set()
        if display is not None:
            display.close()


TICK_INTERVAL = 0.25
"""Seconds between two redraws of the progress bar while nothing else changes."""


def _tick_until(display: BatchDisplay, stop: threading.Event, interval: float) -> None:
    while not stop.wait(interval):
        display.tick()
