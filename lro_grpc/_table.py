"""The operation table of the command line: one row per operation, fitted to a width without cutting names.

Works on the REST JSON shape of an operation (``Operation.to_dict()``), does
no I/O. Columns: NAME, STATE, PROGRESS, CREATED, DETAIL. A name is what a
reader copies into the next command, so NAME is never cut: when the rows do
not fit, DETAIL is cut at its end first (down to :data:`MIN_DETAIL_WIDTH`),
then columns are left out: first CREATED or PROGRESS where no row has a
value, then CREATED, PROGRESS and DETAIL, in that order. A name longer than
the width overflows it rather than being cut.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import grpc

__all__ = ["HEADERS", "MIN_DETAIL_WIDTH", "code_name", "detail_text", "operation_state", "render_table"]

HEADERS = ("NAME", "STATE", "PROGRESS", "CREATED", "DETAIL")

MIN_DETAIL_WIDTH = 16
"""The narrowest DETAIL shown before the column is left out."""

_ELLIPSIS = "..."
_SEPARATOR = "  "
_DROP_ORDER = ("CREATED", "PROGRESS", "DETAIL")
_CODE_NAMES: dict[int, str] = {code.value[0]: code.name for code in grpc.StatusCode}
_STEP_DONE = "DONE"


def code_name(code: object) -> str:
    """The name of a ``google.rpc.Code`` value (``9`` -> ``FAILED_PRECONDITION``), or the value as text."""
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
        code = code_name(error.get("code") or 2)  # no code, or 0: UNKNOWN, as for the handle
        return "CANCELLED" if code == "CANCELLED" else f"FAILED({code})"
    metadata = operation.get("metadata") or {}
    if metadata.get("requestedCancellation"):
        return "CANCELLING"
    return "RUNNING"


def _relative(target: str, operation_name: str) -> str:
    """``target`` without the ``projects/P/locations/L/`` its operation's name starts with too."""
    parts = operation_name.split("/")
    if len(parts) >= 4 and parts[0] == "projects" and parts[2] == "locations":
        prefix = "/".join(parts[:4]) + "/"
        if target.startswith(prefix):
            return target[len(prefix) :]
    return target


def _steps_text(steps: Sequence[Mapping[str, Any]]) -> str:
    done = sum(1 for step in steps if step.get("status") == _STEP_DONE)
    current = next((step for step in steps if step.get("status") not in (_STEP_DONE, "NOT_STARTED")), None)
    text = f"{done}/{len(steps)} steps done"
    if current is not None:
        text += f", {current.get('description', '')}: {current.get('status', '')}".rstrip(": ")
    return text


def detail_text(operation: Mapping[str, Any]) -> str:
    """What an operation does and how far it is, in one line; ``"-"`` when nothing is known.

    The error message first for a failed operation; then the verb and target
    (Financial Services, the target relative to the operation's location),
    the resource names and steps (Service Management: ``1/3 steps done,
    validate rollout: IN_PROGRESS``).

    Args:
        operation: the operation as ``Operation.to_dict()`` returns it.
    """
    metadata = operation.get("metadata") or {}
    parts: list[str] = []
    error = operation.get("error")
    if error and error.get("message"):
        parts.append(str(error["message"]))
    verb = metadata.get("verb")
    target = metadata.get("target")
    if verb or target:
        target_text = _relative(str(target), str(operation.get("name", ""))) if target else ""
        parts.append(" ".join(str(part) for part in (verb, target_text) if part))
    steps = metadata.get("steps")
    if steps:
        parts.append(_steps_text(steps))
    resource_names = metadata.get("resourceNames")
    if resource_names:
        parts.append(", ".join(str(name) for name in resource_names))
    return " | ".join(parts) if parts else "-"


def _progress_text(operation: Mapping[str, Any]) -> str:
    percentage = (operation.get("metadata") or {}).get("progressPercentage")
    if isinstance(percentage, int) and not isinstance(percentage, bool):
        return f"{percentage}%"
    return "-"


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


def _row(operation: Mapping[str, Any]) -> dict[str, str]:
    return {
        "NAME": str(operation.get("name", "")),
        "STATE": operation_state(operation),
        "PROGRESS": _progress_text(operation),
        "CREATED": _created_text(operation),
        "DETAIL": detail_text(operation),
    }


def _cut_end(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    return text[: max(width - len(_ELLIPSIS), 1)] + _ELLIPSIS


def render_table(operations: Iterable[Mapping[str, Any]], *, width: int | None = None) -> str:
    """Render operations as an aligned text table, one row per operation.

    Args:
        operations: operations as ``Operation.to_dict()`` returns them.
        width: the columns to fit into (a terminal's width); ``None`` for no
            limit (every cell in full, as ``--wide`` and pipes get).

    Returns:
        The table without a trailing newline; just the header row when there
        are no operations. Names are always whole (see the module docstring).

    Raises:
        ValueError: ``width`` is below 20.
    """
    if width is not None and width < 20:
        raise ValueError(f"width must be at least 20 columns, got {width!r}")
    rows = [_row(operation) for operation in operations]
    columns = list(HEADERS)

    def widths() -> dict[str, int]:
        return {column: max([len(column)] + [len(row[column]) for row in rows]) for column in columns}

    if width is not None:
        # A column that says nothing for any row goes first (PROGRESS of Financial Services).
        empty = [column for column in _DROP_ORDER[:-1] if rows and all(row[column] == "-" for row in rows)]
        for dropped in dict.fromkeys(empty + list(_DROP_ORDER)):
            sizes = widths()
            total = sum(sizes.values()) + len(_SEPARATOR) * (len(columns) - 1)
            if total <= width:
                break
            if "DETAIL" in columns:
                room = width - (total - sizes["DETAIL"])
                if room >= MIN_DETAIL_WIDTH:
                    for row in rows:
                        row["DETAIL"] = _cut_end(row["DETAIL"], room)
                    break
            columns.remove(dropped)
    sizes = widths()
    lines = []
    for row in [dict(zip(HEADERS, HEADERS, strict=True)), *rows]:
        cells = [row[column].ljust(sizes[column]) for column in columns[:-1]]
        cells.append(row[columns[-1]])
        lines.append(_SEPARATOR.join(cells).rstrip())
    return "\n".join(lines)
