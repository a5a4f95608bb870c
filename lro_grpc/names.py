"""Operation names and list parents of the two APIs.

Two name forms exist:

* Financial Services: ``projects/{project}/locations/{location}/operations/{operation_id}``,
  listed under the parent ``projects/{project}/locations/{location}``.
* Service Management: ``operations/{operation_id}``, listed under the parent
  ``operations`` (or the empty string, which the API accepts too). Its ids may
  contain dots and colons, e.g.
  ``operations/rollouts.endpointsapis.appspot.com:2016-07-16r2``.

Length: a name or parent is at most :data:`MAX_NAME_LENGTH` characters, and
its routing header (``x-goog-request-params: name=<url-encoded>``, which every
RPC sends) at most :data:`MAX_ROUTING_HEADER_BYTES` bytes, so the request's
headers stay well inside gRPC's default 8 KiB metadata limit.

Everything here is pure: no I/O. A malformed value raises
:class:`~lro_grpc.errors.InvalidNameError` (a ``ValueError``) naming it, so a bad
name is caught before any RPC is made. Locations are never checked against
:data:`FINANCIAL_SERVICES_LOCATIONS`: regions get added, and the server is the
authority on which it serves.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import urllib.parse
from typing import Final, Literal, cast

from lro_grpc.errors import InvalidNameError

__all__ = [
    "FINANCIAL_SERVICES_LOCATIONS",
    "MAX_NAME_LENGTH",
    "MAX_ROUTING_HEADER_BYTES",
    "ApiName",
    "OperationName",
    "parse_operation_name",
    "routing_header_value",
    "validate_list_parent",
    "validate_operation_name",
]

FINANCIAL_SERVICES_LOCATIONS: tuple[str, ...] = (
    "us-central1",
    "us-east1",
    "asia-south1",
    "europe-west1",
    "europe-west2",
    "europe-west4",
    "northamerica-northeast1",
    "southamerica-east1",
)
"""The locations the Financial Services documentation lists as supported.

Informational only: names in other locations are accepted.
"""

MAX_NAME_LENGTH: Final = 1024
"""Most characters an operation name or list parent may have.

Far above any real name (both APIs' ids are at most a few hundred
characters); a longer value is a mistake, and its routing header could break
gRPC's default 8 KiB limit on a request's headers, which servers answer with
``RESOURCE_EXHAUSTED``.
"""

MAX_ROUTING_HEADER_BYTES: Final = 4096
"""Most bytes the routing header value (``name=<url-encoded>``) may have.

Half of gRPC's default 8 KiB metadata limit: the other headers (path,
authority, user agent, ``x-goog-api-client``, an OAuth bearer token) fit in
the rest. An ASCII name within :data:`MAX_NAME_LENGTH` always fits (each
character encodes to at most 3 bytes); a name with many non-ASCII characters
(up to 9 bytes each once encoded) may not.
"""

ApiName = Literal["financialservices", "servicemanagement"]
"""The APIs whose operation names this module understands."""

_OPERATION_FORMS = "'projects/{project}/locations/{location}/operations/{operation_id}' or 'operations/{operation_id}'"
_PARENT_FORMS = "'projects/{project}/locations/{location}', 'operations' or ''"


@dataclasses.dataclass(frozen=True)
class OperationName:
    """A parsed operation name.

    Attributes:
        name: the full name, exactly as given.
        api: ``"financialservices"`` for ``projects/P/locations/L/operations/ID``,
            ``"servicemanagement"`` for ``operations/ID``.
        operation_id: the last segment.
        project: the project segment (Financial Services only).
        location: the location segment (Financial Services only).
    """

    name: str
    api: ApiName
    operation_id: str
    project: str | None = None
    location: str | None = None

    @property
    def parent(self) -> str:
        """The list parent this operation belongs to.

        ``"projects/P/locations/L"`` for Financial Services, ``"operations"``
        for Service Management.
        """
        if self.api == "financialservices":
            return f"projects/{self.project}/locations/{self.location}"
        return "operations"

    def __str__(self) -> str:
        return self.name


def _bad_segment(segment: str) -> bool:
    # Empty segments come from "//" or a leading/trailing "/"; whitespace and
    # control characters never occur in resource names and usually mean a
    # copy-paste accident (a trailing newline, a tab).
    # Of all whitespace, only the ASCII space counts as printable: this equals
    # "any character is whitespace or unprintable", without a loop in Python.
    return not segment or not segment.isprintable() or " " in segment


def _require_str(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, got {type(value).__name__}: {value!r}")
    return value


# Characters urlencode(..., safe="/") leaves as they are, plus ":" (always "%3A"): most
# names of both APIs consist of nothing else.
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.~/:-]*")


def routing_header_value(name: str) -> str:
    """The ``x-goog-request-params`` value for an RPC about ``name``: ``name=<url-encoded>``.

    Encoded the way Google's client libraries do it: slashes kept, every other
    reserved or non-ASCII character percent-encoded.
    """
    if _PLAIN_NAME.fullmatch(name):  # the common case, without urlencode's cost
        return "name=" + name.replace(":", "%3A")
    return urllib.parse.urlencode({"name": name}, safe="/")


def _check_length(text: str, what: str) -> None:
    if len(text) > MAX_NAME_LENGTH:
        raise InvalidNameError(
            f"invalid {what} {_shorten(text)}: {len(text)} characters, more than the {MAX_NAME_LENGTH} allowed",
            text,
        )
    # An ASCII name within MAX_NAME_LENGTH always fits; encode only the others.
    if not text.isascii():
        size = len(routing_header_value(text).encode())
        if size > MAX_ROUTING_HEADER_BYTES:
            raise InvalidNameError(
                f"invalid {what} {_shorten(text)}: its routing header would be {size} bytes, "
                f"more than the {MAX_ROUTING_HEADER_BYTES} allowed (gRPC limits a request's headers to 8 KiB)",
                text,
            )


def _shorten(text: str) -> str:
    # The whole value is kept on the exception's ``name``; a message of kilobytes helps nobody.
    return repr(text) if len(text) <= 100 else f"{text[:60]!r}...{text[-20:]!r}"


# Compiled (and cached by ``re``) when a bad name is first reported, not at import.
_URL = r"^(?:[a-zA-Z][a-zA-Z0-9+.-]*:)?//[^/]+/(?:v[0-9][a-z0-9]*/)?(?P<path>(?:projects|operations)[^?#]*)"


def _url_suggestion(text: str) -> str:
    """A hint for a name pasted as a URL (``https://host/v1/projects/...``): the name without the prefix."""
    match = re.match(_URL, text)
    if match is None:
        return ""
    path = match.group("path")
    prefix = text[: match.start("path")]
    return f"; it looks like a URL: did you mean {path!r} (the name without {prefix!r})?"


def parse_operation_name(name: object) -> OperationName:
    """Parse an operation name of either API.

    Args:
        name: ``projects/{project}/locations/{location}/operations/{operation_id}``
            or ``operations/{operation_id}``.

    Returns:
        The parsed name.

    Raises:
        TypeError: ``name`` is not a ``str``.
        InvalidNameError: ``name`` has neither form, a segment is empty or
            contains whitespace or control characters, or it is too long (see
            :data:`MAX_NAME_LENGTH`, :data:`MAX_ROUTING_HEADER_BYTES`). The
            message names the value and the expected forms.
    """
    if type(name) is str:  # exactly str: an equal str subclass must not get another's parse
        return _parse_cached(name)
    return _parse(_require_str(name, "operation name"))


# Parsed names kept, least recently used dropped: a client calling about the same
# operations again does not parse their names again (they are immutable values).
_NAME_CACHE_SIZE: Final = 1024


@functools.lru_cache(maxsize=_NAME_CACHE_SIZE)
def _parse_cached(text: str) -> OperationName:
    # Only parses that succeed are kept: a malformed name raises each time.
    return _parse(text)


def _parse(text: str) -> OperationName:
    _check_length(text, "operation name")
    segments = text.split("/")
    if not any(_bad_segment(segment) for segment in segments):
        if len(segments) == 2 and segments[0] == "operations":
            return OperationName(name=text, api="servicemanagement", operation_id=segments[1])
        if (
            len(segments) == 6
            and segments[0] == "projects"
            and segments[2] == "locations"
            and segments[4] == "operations"
        ):
            return OperationName(
                name=text,
                api="financialservices",
                operation_id=segments[5],
                project=segments[1],
                location=segments[3],
            )
    raise InvalidNameError(
        f"invalid operation name {text!r}: expected {_OPERATION_FORMS}, "
        "with non-empty segments free of '/', whitespace and control characters" + _url_suggestion(text),
        text,
    )


def validate_operation_name(name: object) -> str:
    """Check an operation name of either API.

    Args:
        name: the name to check.

    Returns:
        ``name``, unchanged.

    Raises:
        TypeError: ``name`` is not a ``str``.
        InvalidNameError: ``name`` is malformed (see :func:`parse_operation_name`).
    """
    if type(name) is str:  # the common case, without the calls below (every get and handle checks a name)
        _parse_cached(name)
        return name
    parse_operation_name(name)
    # ``name`` itself, not the parse's: a kept parse of an equal string holds another object.
    return cast(str, name)  # a str: parse_operation_name raised otherwise


def validate_list_parent(parent: object) -> str:
    """Check the parent (the ``name`` field of ``ListOperationsRequest``) of a list call.

    Args:
        parent: ``projects/{project}/locations/{location}`` (Financial
            Services), ``operations`` or ``""`` (Service Management, which
            lists with either).

    Returns:
        ``parent``, unchanged.

    Raises:
        TypeError: ``parent`` is not a ``str``.
        InvalidNameError: ``parent`` has none of the accepted forms, or is too long.
    """
    text = _require_str(parent, "list parent")
    if text in ("", "operations"):
        return text
    _check_length(text, "list parent")
    segments = text.split("/")
    if (
        len(segments) == 4
        and segments[0] == "projects"
        and segments[2] == "locations"
        and not any(_bad_segment(segment) for segment in segments)
    ):
        return text
    raise InvalidNameError(
        f"invalid list parent {text!r}: expected {_PARENT_FORMS}, "
        "with non-empty segments free of '/', whitespace and control characters" + _url_suggestion(text),
        text,
    )
