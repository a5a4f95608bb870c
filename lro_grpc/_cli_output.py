"""How the command line shapes its output for where it goes: a terminal, a pipe, or ``--wide``.

* On a terminal, tables fit the terminal's width (``COLUMNS`` when set, as
  ``shutil.get_terminal_size`` reads it); names are never cut (see
  ``lro_grpc._table``).
* Piped, ``list`` prints the bare names, one per line, so that
  ``lro-grpc list PARENT | xargs -n1 lro-grpc get`` works; tables printed to a
  pipe are not fitted to any width.
* ``--wide`` prints the full table wherever the output goes.
* ``wait`` prints each outcome as it comes: one line (name, state, detail),
  or one JSON object per line with ``--json``.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from typing import Any, TextIO

from lro_grpc._table import detail_text, operation_state

__all__ = ["is_terminal", "json_line", "names_only", "outcome_line", "table_width"]

_FALLBACK_WIDTH = 100
"""Columns assumed for a terminal whose size cannot be read."""


def is_terminal(stream: TextIO) -> bool:
    """Whether ``stream`` is a terminal (``False`` for anything that cannot say)."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def table_width(stream: TextIO, *, wide: bool) -> int | None:
    """The width a table written to ``stream`` fits into; ``None`` for no limit (``--wide``, a pipe)."""
    if wide or not is_terminal(stream):
        return None
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return max(int(columns), 20)
    try:
        size = os.get_terminal_size(stream.fileno())
    except (AttributeError, ValueError, OSError):
        size = shutil.get_terminal_size((_FALLBACK_WIDTH, 24))
    return max(size.columns or _FALLBACK_WIDTH, 20)


def names_only(stream: TextIO, *, wide: bool) -> bool:
    """Whether a listing written to ``stream`` is bare names, one per line (piped, without ``--wide``)."""
    return not wide and not is_terminal(stream)


def outcome_line(operation: Mapping[str, Any]) -> str:
    """One finished operation as ``NAME  STATE  DETAIL`` (the name first and whole, for ``cut``/``awk``)."""
    return f"{operation.get('name', '')}  {operation_state(operation)}  {detail_text(operation)}"


def json_line(operation: Mapping[str, Any]) -> str:
    """One operation in its REST JSON shape, on one line."""
    return json.dumps(operation, ensure_ascii=False, separators=(",", ":"))
