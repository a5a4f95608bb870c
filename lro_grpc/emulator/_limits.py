"""The emulator's input limits, and how it quotes a client's values back in errors; no I/O.

Every request, on gRPC and REST alike, is checked against these bounds before
it is handled, so hostile input is refused with ``INVALID_ARGUMENT`` (REST
``400``) naming the field, rather than exhausting the stack, SQLite's
expression limits, or the 16 KiB that gRPC allows for trailing metadata:

* every string field (at any depth of the request): at most
  :data:`MAX_STRING_LENGTH` characters (``filter``: :data:`MAX_FILTER_LENGTH`),
  and no NUL character;
* a list ``filter``: parentheses nested at most :data:`MAX_FILTER_DEPTH` deep,
  at most :data:`MAX_FILTER_TERMS` comparisons;
* a REST JSON body: nested at most :data:`MAX_JSON_DEPTH` deep.

An error message quotes a value the client sent with :func:`shown`: its first
:data:`ECHO_LIMIT` characters, then how long it was. A whole status message is
never longer than :data:`MAX_MESSAGE_LENGTH` characters.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

__all__ = [
    "ECHO_LIMIT",
    "MAX_FILTER_DEPTH",
    "MAX_FILTER_LENGTH",
    "MAX_FILTER_TERMS",
    "MAX_JSON_DEPTH",
    "MAX_MESSAGE_LENGTH",
    "MAX_STRING_LENGTH",
    "bounded_message",
    "json_depth_exceeds",
    "oversized_string_field",
    "shown",
]

ECHO_LIMIT = 200
"""Characters of a client's value quoted in an error message; the rest is summarized by its length."""
MAX_MESSAGE_LENGTH = 2048
"""Longest status message the emulator sends (well inside gRPC's 16 KiB of trailing metadata)."""
MAX_STRING_LENGTH = 1024
"""Longest string field of a request, in characters (names, ids, labels), except ``filter``."""
MAX_FILTER_LENGTH = 8192
"""Longest list ``filter``, in characters."""
MAX_FILTER_DEPTH = 32
"""Deepest nesting of parentheses in a list ``filter``."""
MAX_FILTER_TERMS = 200
"""Most comparisons (``field op value``) in one list ``filter``."""
MAX_JSON_DEPTH = 64
"""Deepest nesting of objects and arrays in a REST request body."""

_STRING_LIMITS = {"filter": MAX_FILTER_LENGTH}


def shown(value: str) -> str:
    """``value`` quoted for an error message, cut to :data:`ECHO_LIMIT` characters.

    >>> shown("abc")
    "'abc'"
    >>> shown("x" * 300)[-30:]
    "xxxx'... (300 characters)"
    """
    if len(value) <= ECHO_LIMIT:
        return repr(value)
    return f"{value[:ECHO_LIMIT]!r}... ({len(value)} characters)"


def bounded_message(message: str) -> str:
    """``message`` cut to :data:`MAX_MESSAGE_LENGTH` characters (a last guard; values are cut by :func:`shown`)."""
    if len(message) <= MAX_MESSAGE_LENGTH:
        return message
    return message[: MAX_MESSAGE_LENGTH - 20] + f"... ({len(message)} characters)"


def _string_fields(message: Message, prefix: str) -> Iterator[tuple[str, str]]:
    """Every set string field of ``message`` and its sub-messages, as ``(field path, value)``."""
    for field, value in message.ListFields():
        path = prefix + field.name
        if field.type == FieldDescriptor.TYPE_STRING:
            if field.is_repeated:
                for index, item in enumerate(value):
                    yield f"{path}[{index}]", item
            else:
                yield path, value
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                for key, item in value.items():
                    entry = f"{path}[{shown(str(key))}]"
                    yield entry, str(key)
                    if isinstance(item, Message):
                        yield from _string_fields(item, entry + ".")
                    elif isinstance(item, str):
                        yield entry, item
            elif field.is_repeated:
                for index, item in enumerate(value):
                    yield from _string_fields(item, f"{path}[{index}].")
            else:
                yield from _string_fields(value, path + ".")


def oversized_string_field(request: Message) -> str | None:
    """Why ``request`` breaks the string limits (a message naming the field), or ``None`` when it does not."""
    for path, value in _string_fields(request, ""):
        limit = _STRING_LIMITS.get(path, MAX_STRING_LENGTH)
        if len(value) > limit:
            return f"{path}: longer than {limit} characters, got {shown(value)}"
        if "\0" in value:
            return f"{path}: must not contain a NUL character (at offset {value.index(chr(0))}), got {shown(value)}"
    return None


def json_depth_exceeds(content: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether parsed JSON ``content`` nests objects and arrays deeper than ``limit`` (iterative: no recursion)."""
    pending: list[tuple[Any, int]] = [(content, 1)]
    while pending:
        node, depth = pending.pop()
        if not isinstance(node, dict | list):
            continue
        children: Iterable[Any] = node.values() if isinstance(node, dict) else node
        if depth > limit:
            return True
        pending.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False
