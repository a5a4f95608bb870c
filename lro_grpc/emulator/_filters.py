"""The ``ListOperations`` filter grammars of the two emulated APIs, without I/O.

Both APIs share one expression syntax, the one Google's list filters use
(`AIP-160 <https://google.aip.dev/160>`_)::

    filter     := conjunction
    conjunction:= disjunction { "AND" disjunction }
    disjunction:= term { "OR" term }
    term       := "(" conjunction ")" | comparison
    comparison := FIELD OPERATOR VALUE

As in AIP-160, ``OR`` binds tighter than ``AND``: ``a AND b OR c`` means
``a AND (b OR c)``. ``AND`` and ``OR`` are upper case. A value is a bare word
or a quoted string (``"..."`` or ``'...'``); spaces around operators are
allowed. What differs between the APIs is which fields and operators they take:

Financial Services (the reference calls it "the standard list filter")
    ``done`` with ``=``: ``true`` or ``false``.

Service Management (``operations.list``)
    ``serviceName`` with ``=``: required, and only at the top level, joined to
    the rest with ``AND``. ``startTime`` with ``>=``, ``>``, ``<=``, ``<``: an
    ISO 8601 date (``"2017-02-01"``, midnight UTC) or an RFC 3339 timestamp
    (``"2017-02-01T10:00:00Z"``). ``status`` with ``=`` and ``!=``:
    ``done`` (finished, whatever the outcome), ``failed`` (finished with an
    error, cancelled ones included) or ``in_progress`` (not finished).

A filter nests parentheses at most ``MAX_FILTER_DEPTH`` (32) deep and holds at
most ``MAX_FILTER_TERMS`` (200) comparisons (:mod:`._limits`): deeper or longer
ones are refused before they can exhaust the stack or SQLite's expression depth.

A parsed filter is a small tree that answers two ways, kept side by side so
they cannot drift apart unnoticed (a test runs both over the same records):
:meth:`ListFilter.matches` evaluates one record in Python, and
:meth:`ListFilter.where` compiles the tree to an SQL condition the store runs.
"""

from __future__ import annotations

import dataclasses
import operator
import re
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Protocol

import grpc

from lro_grpc.emulator._limits import MAX_FILTER_DEPTH, MAX_FILTER_TERMS, shown

__all__ = [
    "FINANCIAL_SERVICES_FIELDS",
    "SERVICE_MANAGEMENT_FIELDS",
    "Comparison",
    "FilterError",
    "ListFilter",
    "Matchable",
    "parse_filter",
]


class FilterError(Exception):
    """A filter the emulator refuses; ``message`` starts with ``filter:`` and quotes the offending part.

    Attributes:
        code: always ``INVALID_ARGUMENT``.
        message: the status message.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.code = grpc.StatusCode.INVALID_ARGUMENT
        self.message = message


class Matchable(Protocol):
    """What a filter looks at in an operation record."""

    @property
    def service_name(self) -> str:
        """The Service Management service the operation concerns."""
        ...

    @property
    def start_at(self) -> float:
        """Simulated epoch seconds the operation started."""
        ...

    @property
    def end_at(self) -> float:
        """Simulated epoch seconds the operation ends (or ended)."""
        ...

    @property
    def outcome(self) -> str:
        """``"success"``, ``"fail"`` or ``"cancel"``."""
        ...


# --- Tokens -----------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<paren>[()])
      | (?P<operator>>=|<=|!=|=|>|<)
      | (?P<quoted>"[^"]*"|'[^']*')
      | (?P<word>[^\s()<>=!"']+)
      | (?P<bad>\S)
    )""",
    re.VERBOSE,
)


@dataclasses.dataclass(frozen=True)
class _Token:
    kind: str  # "paren", "operator", "quoted", "word"
    text: str  # as written (quotes included for "quoted")
    position: int

    @property
    def value(self) -> str:
        return self.text[1:-1] if self.kind == "quoted" else self.text


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:  # only trailing whitespace is left
            break
        kind = match.lastgroup or "bad"
        if kind == "bad":
            token_text = match.group(kind)
            if token_text in "\"'":
                raise FilterError(f"filter: unterminated quote at offset {match.start(kind)} in {shown(text)}")
            raise FilterError(f"filter: unexpected {shown(token_text)} at offset {match.start(kind)} in {shown(text)}")
        tokens.append(_Token(kind, match.group(kind), match.start(kind)))
        position = match.end()
    return tokens


# --- Fields -------------------------------------------------------------------------------------------

_EQUALITY = frozenset({"="})
_ORDER = frozenset({">=", ">", "<=", "<"})
_STATUSES = ("done", "in_progress", "failed")


def _parse_bool(field: str, value: str) -> object:
    lowered = value.lower()
    if lowered not in ("true", "false"):
        raise FilterError(f"filter: {field} must be true or false, got {shown(value)}")
    return lowered == "true"


def _parse_status(field: str, value: str) -> object:
    lowered = value.lower()
    if lowered not in _STATUSES:
        raise FilterError(f"filter: {field} must be one of {', '.join(_STATUSES)}, got {shown(value)}")
    return lowered


def _parse_time(field: str, value: str) -> object:
    # fromisoformat (3.11) reads dates and RFC 3339 timestamps, 'Z' included.
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise FilterError(
            f"filter: {field} must be an ISO 8601 date or RFC 3339 timestamp such as "
            f'"2017-02-01" or "2017-02-01T10:00:00Z", got {shown(value)}'
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def _parse_service(field: str, value: str) -> object:
    if not value:
        raise FilterError(f"filter: {field} must name a service, got {shown(value)}")
    return value


@dataclasses.dataclass(frozen=True)
class _Field:
    operators: frozenset[str]
    parse: Callable[[str, str], object]


FINANCIAL_SERVICES_FIELDS: dict[str, _Field] = {"done": _Field(_EQUALITY, _parse_bool)}
"""Filter fields of Financial Services ``ListOperations``."""
SERVICE_MANAGEMENT_FIELDS: dict[str, _Field] = {
    "serviceName": _Field(_EQUALITY, _parse_service),
    "startTime": _Field(_ORDER, _parse_time),
    "status": _Field(frozenset({"=", "!="}), _parse_status),
}
"""Filter fields of Service Management ``operations.list``."""


# --- The tree -----------------------------------------------------------------------------------------

# Also the whitelist of what reaches SQL text: values always go in as parameters.
_ORDER_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
}


@dataclasses.dataclass(frozen=True)
class Comparison:
    """One ``field operator value`` term, its value already parsed.

    Attributes:
        field: ``done``, ``serviceName``, ``startTime`` or ``status``.
        operator: ``=``, ``!=``, ``>=``, ``>``, ``<=`` or ``<``.
        value: ``bool`` (done), ``str`` (serviceName, status) or epoch seconds (startTime).
    """

    field: str
    operator: str
    value: object

    def matches(self, record: Matchable, now: float) -> bool:
        """Whether ``record`` satisfies the term at simulated time ``now``."""
        done = now >= record.end_at
        if self.field == "done":
            return done is self.value
        if self.field == "serviceName":
            return record.service_name == self.value
        if self.field == "startTime":
            return _ORDER_OPERATORS[self.operator](record.start_at, float(self.value))  # type: ignore[arg-type]
        holds = {
            "done": done,
            "in_progress": not done,
            "failed": done and record.outcome != "success",
        }[str(self.value)]
        return holds if self.operator == "=" else not holds

    def where(self, now: float) -> tuple[str, list[object]]:
        """The term as an SQL condition over the store's columns, and its parameters."""
        if self.field == "done":
            return ("end_at <= ?" if self.value else "end_at > ?"), [now]
        if self.field == "serviceName":
            return "service_name = ?", [self.value]
        if self.field == "startTime":
            if self.operator not in _ORDER_OPERATORS:
                raise ValueError(f"not an order operator: {self.operator!r}")
            return f"start_at {self.operator} ?", [self.value]
        condition, parameters = {
            "done": ("end_at <= ?", [now]),
            "in_progress": ("end_at > ?", [now]),
            "failed": ("(end_at <= ? AND outcome != 'success')", [now]),
        }[str(self.value)]
        return (condition if self.operator == "=" else f"NOT {condition}"), list(parameters)

    def canonical(self) -> str:
        """The term written one way (for page-token fingerprints)."""
        return f"{self.field}{self.operator}{self.value!r}"


@dataclasses.dataclass(frozen=True)
class _Junction:
    keyword: str  # "AND" or "OR"
    parts: tuple[_Node, ...]

    def matches(self, record: Matchable, now: float) -> bool:
        results = (part.matches(record, now) for part in self.parts)
        return all(results) if self.keyword == "AND" else any(results)

    def where(self, now: float) -> tuple[str, list[object]]:
        conditions: list[str] = []
        parameters: list[object] = []
        for part in self.parts:
            condition, values = part.where(now)
            conditions.append(condition)
            parameters.extend(values)
        return "(" + f" {self.keyword} ".join(conditions) + ")", parameters

    def canonical(self) -> str:
        return "(" + f" {self.keyword} ".join(part.canonical() for part in self.parts) + ")"


_Node = Comparison | _Junction


@dataclasses.dataclass(frozen=True)
class ListFilter:
    """A parsed list filter: a predicate over operation records.

    Attributes:
        text: the filter as the client wrote it.
        root: the expression tree, or ``None`` for an empty filter (everything matches).
        service_name: the top-level ``serviceName`` (Service Management), else ``None``.
    """

    text: str
    root: Comparison | _Junction | None
    service_name: str | None = None

    def matches(self, record: Matchable, now: float) -> bool:
        """Whether ``record`` passes the filter at simulated time ``now``."""
        return self.root is None or self.root.matches(record, now)

    def where(self, now: float) -> tuple[str, list[object]]:
        """The filter as an SQL condition (``"1"`` when empty) and its parameters."""
        return ("1", []) if self.root is None else self.root.where(now)

    def canonical(self) -> str:
        """The filter written one way: equal for filters that differ only in spacing or quoting."""
        return "" if self.root is None else self.root.canonical()


# --- The parser ---------------------------------------------------------------------------------------


class _Parser:
    """Recursive descent over the token list; one method per grammar rule."""

    def __init__(self, text: str, fields: dict[str, _Field], api_label: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.index = 0
        self.fields = fields
        self.api_label = api_label
        self.depth = 0
        self.comparisons = 0

    def peek(self) -> _Token | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self) -> _Token | None:
        token = self.peek()
        self.index += token is not None
        return token

    def at_keyword(self, keyword: str) -> bool:
        token = self.peek()
        return token is not None and token.kind == "word" and token.text == keyword

    def describe(self, token: _Token | None) -> str:
        return "the end of the filter" if token is None else f"{shown(token.text)} at offset {token.position}"

    def fail(self, expected: str, token: _Token | None) -> FilterError:
        return FilterError(f"filter: expected {expected}, got {self.describe(token)} in {shown(self.text)}")

    def parse(self) -> _Node:
        node = self.conjunction()
        if self.peek() is not None:
            raise self.fail("AND, OR or the end of the filter", self.peek())
        return node

    def conjunction(self) -> _Node:
        return self.joined("AND", self.disjunction)

    def disjunction(self) -> _Node:
        return self.joined("OR", self.term)

    def joined(self, keyword: str, operand: Callable[[], _Node]) -> _Node:
        """``operand { keyword operand }``: one node, or a junction of several."""
        parts = [operand()]
        while self.at_keyword(keyword):
            self.take()
            parts.append(operand())
        return parts[0] if len(parts) == 1 else _Junction(keyword, tuple(parts))

    def term(self) -> _Node:
        token = self.peek()
        if token is not None and token.kind == "paren" and token.text == "(":
            self.take()
            self.depth += 1
            if self.depth > MAX_FILTER_DEPTH:
                raise FilterError(
                    f"filter: parentheses nested deeper than {MAX_FILTER_DEPTH} (at offset {token.position}) "
                    f"in {shown(self.text)}"
                )
            node = self.conjunction()
            self.depth -= 1
            closing = self.take()
            if closing is None or closing.text != ")":
                raise self.fail("')'", closing)
            return node  # kept as one node, never merged into the enclosing AND
        return self.comparison()

    def comparison(self) -> Comparison:
        self.comparisons += 1
        if self.comparisons > MAX_FILTER_TERMS:
            raise FilterError(f"filter: more than {MAX_FILTER_TERMS} comparisons in {shown(self.text)}")
        name = self.take()
        if name is None or name.kind != "word" or name.text in ("AND", "OR"):
            raise self.fail("a field name", name)
        field = self.fields.get(name.text)
        if field is None:
            raise FilterError(
                f"filter: unsupported field {shown(name.text)} in {shown(self.text)}; "
                f"{self.api_label} supports {', '.join(self.fields)}"
            )
        symbol = self.take()
        if symbol is None or symbol.kind != "operator":
            raise self.fail(f"an operator after {shown(name.text)}", symbol)
        if symbol.text not in field.operators:
            raise FilterError(
                f"filter: {name.text} does not take {symbol.text!r} in {shown(self.text)}; "
                f"allowed: {', '.join(sorted(field.operators))}"
            )
        value = self.take()
        if value is None or value.kind not in ("word", "quoted") or value.text in ("AND", "OR"):
            raise self.fail(f"a value after {name.text}{symbol.text}", value)
        return Comparison(name.text, symbol.text, field.parse(name.text, value.value))


def _top_level_terms(root: _Node) -> list[_Node]:
    return list(root.parts) if isinstance(root, _Junction) and root.keyword == "AND" else [root]


def _nested_service_terms(node: _Node) -> bool:
    if isinstance(node, Comparison):
        return node.field == "serviceName"
    return any(_nested_service_terms(part) for part in node.parts)


def parse_filter(text: str, *, api: str) -> ListFilter:
    """Parse ``text`` as a list filter of ``api``.

    Args:
        text: the request's ``filter`` field.
        api: ``"financialservices"`` or ``"servicemanagement"``.

    Returns:
        The parsed :class:`ListFilter`.

    Raises:
        FilterError: ``INVALID_ARGUMENT``; the message starts with ``filter:`` and
            quotes the offending term.
        ValueError: ``api`` is neither API.
    """
    if api == "financialservices":
        fields, label = FINANCIAL_SERVICES_FIELDS, "Financial Services"
    elif api == "servicemanagement":
        fields, label = SERVICE_MANAGEMENT_FIELDS, "Service Management"
    else:
        raise ValueError(f"api must be 'financialservices' or 'servicemanagement', got {api!r}")
    if not text.strip():
        if api == "servicemanagement":
            raise FilterError("filter: serviceName is required (e.g. serviceName=example.googleapis.com), got ''")
        return ListFilter(text, None)
    root = _Parser(text, fields, label).parse()
    if api == "financialservices":
        return ListFilter(text, root)
    top = _top_level_terms(root)
    services = [term for term in top if isinstance(term, Comparison) and term.field == "serviceName"]
    for term in top:
        if not isinstance(term, Comparison) and _nested_service_terms(term):
            raise FilterError(
                f"filter: serviceName must be at the top level, joined to the rest with AND, in {shown(text)}"
            )
    if not services:
        raise FilterError(
            f"filter: serviceName is required (e.g. serviceName=example.googleapis.com), in {shown(text)}"
        )
    names = {str(term.value) for term in services}
    # Two different top-level services can never both match: the filter stands, the listing is empty.
    service_name = next(iter(names)) if len(names) == 1 else None
    return ListFilter(text, root, service_name)
