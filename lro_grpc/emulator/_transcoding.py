"""HTTP/JSON to RPC transcoding for the emulator's REST gateway, without I/O.

The routes are the ``google.api.http`` rules Google publishes for the two APIs
(``google/cloud/financialservices/v1/service.proto`` and
``financialservices_v1.yaml``; ``google/api/servicemanagement/v1/servicemanager.proto``,
``servicemanagement_v1.yaml`` and ``google/longrunning/operations.proto``).
A request is turned into the same request message a gRPC client would send,
following the rules' semantics: path variables set the fields they name, the
body fills the field named by the rule's ``body`` (or the whole message for
``*``), and query parameters set the remaining fields by their JSON or proto
names (dotted for nested fields, repeated for repeated fields).

Errors come out in Google's JSON error shape with the HTTP status the
``google.rpc.Code`` maps to.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast
from urllib.parse import unquote

import grpc
from google.longrunning import operations_pb2
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from lro_grpc._generated import financialservices_v1_pb2 as fs
from lro_grpc._generated import servicemanagement_v1_pb2 as sm
from lro_grpc.emulator._limits import MAX_JSON_DEPTH, json_depth_exceeds, shown
from lro_grpc.emulator._model import RequestError, invalid

__all__ = [
    "ROUTES",
    "OutputOptions",
    "PathTemplate",
    "Route",
    "build_request",
    "error_body",
    "find_route",
    "http_status",
    "output_options",
]

_HTTP_STATUS = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}

# Google's standard query parameters, accepted with or without a leading "$".
_ALT = "alt"
_PRETTY_PRINT = "prettyPrint"
_IGNORED_SYSTEM_PARAMETERS = frozenset({"key", "access_token", "oauth_token", "quotaUser", ".xgafv"})
_REJECTED_SYSTEM_PARAMETERS = frozenset({"fields", "callback", "uploadType", "upload_protocol"})

_VARIABLE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.]*)(?:=([^}]*))?\}")


def http_status(code: grpc.StatusCode) -> int:
    """The HTTP status Google's REST front end answers a gRPC status code with."""
    return _HTTP_STATUS.get(code, 500)


def error_body(code: grpc.StatusCode, message: str, details: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """Google's JSON error body: ``{"error": {"code", "message", "status", "details"}}``.

    Args:
        code: the gRPC status code; ``code`` in the body is its HTTP status and
            ``status`` its name (``"NOT_FOUND"``).
        message: the status message.
        details: the ``google.rpc.Status`` details, already in their JSON
            shape (``{"@type": ..., ...}``).
    """
    return {
        "error": {
            "code": http_status(code),
            "message": message,
            "status": code.name,
            "details": [dict(detail) for detail in details],
        }
    }


class PathTemplate:
    """A ``google.api.http`` path template such as ``/v1/{name=projects/*/locations/*}/operations``.

    ``*`` matches one path segment, ``**`` one or more; ``{field}`` is
    ``{field=*}``; a trailing ``:verb`` is a literal custom method. Matching is
    done on the raw (percent-encoded) path; captured values are then decoded,
    except that a ``**`` variable keeps ``%2F`` encoded, as the rules specify.

    Args:
        template: the template text.

    Raises:
        ValueError: the template is malformed.
    """

    def __init__(self, template: str) -> None:
        if not template.startswith("/"):
            raise ValueError(f"a path template starts with '/', got {template!r}")
        self.template = template
        self._fields: list[tuple[str, bool]] = []
        pattern = ""
        position = 0
        for match in _VARIABLE.finditer(template):
            pattern += _literal_pattern(template[position : match.start()], template)
            field, segments = match.group(1), match.group(2) or "*"
            self._fields.append((field, "**" in segments))
            pattern += f"({_literal_pattern(segments, template)})"
            position = match.end()
        pattern += _literal_pattern(template[position:], template)
        self._regex = re.compile(pattern)

    @property
    def fields(self) -> tuple[str, ...]:
        """The field paths the template's variables bind (``"name"``, ``"instance.name"``)."""
        return tuple(field for field, _ in self._fields)

    def match(self, path: str) -> dict[str, str] | None:
        """The decoded variable values if ``path`` (without query) matches, else ``None``."""
        found = self._regex.fullmatch(path)
        if found is None:
            return None
        values: dict[str, str] = {}
        for (field, multi_segment), raw in zip(self._fields, found.groups(), strict=True):
            if multi_segment:
                values[field] = "%2F".join(unquote(part) for part in re.split("%2[Ff]", raw))
            else:
                values[field] = unquote(raw)
        return values

    def __repr__(self) -> str:
        return f"PathTemplate({self.template!r})"


def _literal_pattern(text: str, template: str) -> str:
    """Regex for template text outside variables, and for a variable's segments."""
    if "{" in text or "}" in text:
        raise ValueError(f"unbalanced braces in path template {template!r}")
    pattern = ""
    for piece in re.split(r"(\*\*|\*)", text):
        if piece == "**":
            pattern += r".+"
        elif piece == "*":
            pattern += r"[^/]+"
        else:
            pattern += re.escape(piece)
    return pattern


@dataclasses.dataclass(frozen=True)
class Route:
    """One HTTP rule: which RPC an HTTP method and path call, and where the body goes.

    Attributes:
        http_method: ``"GET"``, ``"POST"``, ``"PATCH"`` or ``"DELETE"``.
        template: the path template.
        service: the servicer: ``"Operations"``, ``"AML"`` or ``"ServiceManager"``.
        rpc: the RPC's name, e.g. ``"GetOperation"``.
        request_class: the request message class the RPC takes.
        body: ``""`` (no body), ``"*"`` (the whole request) or the name of the
            request field the body fills.
    """

    http_method: str
    template: PathTemplate
    service: str
    rpc: str
    request_class: type[Message]
    body: str = ""


def _route(http_method: str, template: str, service: str, rpc: str, request_class: Any, body: str = "") -> Route:
    return Route(http_method, PathTemplate(template), service, rpc, request_class, body)


_FS_OPERATION = "/v1/{name=projects/*/locations/*/operations/*}"
_FS_INSTANCE = "projects/*/locations/*/instances/*"

ROUTES: tuple[Route, ...] = (
    # Financial Services v1: google.longrunning.Operations (financialservices_v1.yaml).
    _route("GET", _FS_OPERATION, "Operations", "GetOperation", operations_pb2.GetOperationRequest),
    _route(
        "GET",
        "/v1/{name=projects/*/locations/*}/operations",
        "Operations",
        "ListOperations",
        operations_pb2.ListOperationsRequest,
    ),
    _route(
        "POST", _FS_OPERATION + ":cancel", "Operations", "CancelOperation", operations_pb2.CancelOperationRequest, "*"
    ),
    _route("DELETE", _FS_OPERATION, "Operations", "DeleteOperation", operations_pb2.DeleteOperationRequest),
    # Financial Services v1: AML (service.proto).
    _route(
        "POST",
        "/v1/{parent=projects/*/locations/*}/instances",
        "AML",
        "CreateInstance",
        fs.CreateInstanceRequest,
        "instance",
    ),
    _route(
        "PATCH", f"/v1/{{instance.name={_FS_INSTANCE}}}", "AML", "UpdateInstance", fs.UpdateInstanceRequest, "instance"
    ),
    _route("DELETE", f"/v1/{{name={_FS_INSTANCE}}}", "AML", "DeleteInstance", fs.DeleteInstanceRequest),
    # Service Management v1: google.longrunning.Operations (operations.proto; list from servicemanagement_v1.yaml).
    _route("GET", "/v1/{name=operations/**}", "Operations", "GetOperation", operations_pb2.GetOperationRequest),
    _route("GET", "/v1/operations", "Operations", "ListOperations", operations_pb2.ListOperationsRequest),
    # Service Management v1: ServiceManager (servicemanager.proto).
    _route("POST", "/v1/services", "ServiceManager", "CreateService", sm.CreateServiceRequest, "service"),
    _route("DELETE", "/v1/services/{service_name}", "ServiceManager", "DeleteService", sm.DeleteServiceRequest),
    _route(
        "POST", "/v1/services/{service_name}:undelete", "ServiceManager", "UndeleteService", sm.UndeleteServiceRequest
    ),
    _route(
        "POST",
        "/v1/services/{service_name}/configs:submit",
        "ServiceManager",
        "SubmitConfigSource",
        sm.SubmitConfigSourceRequest,
        "*",
    ),
    _route(
        "POST",
        "/v1/services/{service_name}/rollouts",
        "ServiceManager",
        "CreateServiceRollout",
        sm.CreateServiceRolloutRequest,
        "rollout",
    ),
)
"""Every route the gateway serves."""


def find_route(http_method: str, path: str, routes: Iterable[Route] = ROUTES) -> tuple[Route, dict[str, str]]:
    """The route for ``http_method`` and ``path`` (no query string), with its variable values.

    Raises:
        RequestError: ``NOT_FOUND`` when no route matches, as Google's front end
            answers an unknown URL or a method a URL does not offer.
    """
    for route in routes:
        if route.http_method == http_method:
            values = route.template.match(path)
            if values is not None:
                return route, values
    raise RequestError(grpc.StatusCode.NOT_FOUND, f"no such method: {http_method} {shown(path)}")


@dataclasses.dataclass(frozen=True)
class OutputOptions:
    """How to print a response, from the request's standard query parameters.

    Attributes:
        enums_as_numbers: ``$alt=json;enum-encoding=int``: enum values as numbers.
        pretty: ``prettyPrint`` (default true): indented JSON.
    """

    enums_as_numbers: bool = False
    pretty: bool = True


def _system_name(key: str) -> str:
    return key[1:] if key.startswith("$") else key


def output_options(query: Sequence[tuple[str, str]]) -> OutputOptions:
    """Read ``alt`` / ``$alt`` and ``prettyPrint`` from the query parameters.

    Raises:
        RequestError: ``INVALID_ARGUMENT`` for an unsupported ``alt`` or a bad ``prettyPrint``.
    """
    enums_as_numbers, pretty = False, True
    for key, value in query:
        name = _system_name(key)
        if name == _ALT:
            formats = [part.strip() for part in value.split(";")]
            if formats[0] != "json" or any(part not in ("enum-encoding=int", "") for part in formats[1:]):
                raise invalid(f"{key}: only 'json' and 'json;enum-encoding=int' are supported, got {shown(value)}")
            enums_as_numbers = "enum-encoding=int" in formats
        elif name == _PRETTY_PRINT:
            if value.lower() not in ("true", "false", "1", "0"):
                raise invalid(f"{key}: expected true or false, got {shown(value)}")
            pretty = value.lower() in ("true", "1")
    return OutputOptions(enums_as_numbers=enums_as_numbers, pretty=pretty)


def build_request(route: Route, variables: Mapping[str, str], query: Sequence[tuple[str, str]], body: bytes) -> Message:
    """The request message an HTTP request stands for, under ``route``'s rule.

    Args:
        route: the matched route.
        variables: the path variables, by field path.
        query: the query parameters in order (standard ones such as ``$alt`` are skipped).
        body: the request body (may be empty; ignored when the rule takes none).

    Raises:
        RequestError: ``INVALID_ARGUMENT`` for a body that is not JSON or does
            not fit the message, or a query parameter naming no settable field.
    """
    fields: dict[str, Any] = {}
    if route.body:
        content = _parse_body(body)
        if route.body == "*":
            fields.update(content)
        else:
            fields[route.body] = content
    bound = {path.split(".")[0] for path in variables}
    descriptor = _descriptor(route.request_class)
    for key, values in _group(query).items():
        name = _system_name(key)
        if name in (_ALT, _PRETTY_PRINT) or name in _IGNORED_SYSTEM_PARAMETERS:
            continue
        if name in _REJECTED_SYSTEM_PARAMETERS:
            raise invalid(f"query parameter {shown(key)} is not supported by the emulator")
        path = _field_path(descriptor, key)
        if path[0] in bound or route.body == "*" or path[0] == route.body:
            raise invalid(f"query parameter {shown(key)}: the field is set by the URL path or the body")
        value = _query_value(descriptor, path, key, values)
        alone: dict[str, Any] = {}
        _put(alone, descriptor, path, value)
        _parse(alone, route.request_class, f"query parameter {shown(key)}: ")
        _put(fields, descriptor, path, value)
    for field_path, value in variables.items():
        _put(fields, descriptor, field_path.split("."), value)
    return _parse(fields, route.request_class)


def _descriptor(message_class: type[Message]) -> Descriptor:
    # The upb classes are the runtime types behind the pure-Python descriptor stubs.
    return cast(Descriptor, message_class.DESCRIPTOR)


def _parse(fields: dict[str, Any], request_class: type[Message], context: str = "") -> Message:
    request = request_class()
    pool = _descriptor(request_class).file.pool
    try:
        json_format.ParseDict(fields, request, descriptor_pool=pool)
    except json_format.ParseError as error:
        raise invalid(f"{context}Invalid JSON payload received. {error}") from None
    return request


def _parse_body(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        content = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise invalid(f"Invalid JSON payload received. {error}") from None
    except RecursionError:  # the parser recurses per level: far past MAX_JSON_DEPTH
        content = None
        deep = True
    else:
        deep = json_depth_exceeds(content)
    if deep:
        raise invalid(f"body: Invalid JSON payload received. Objects and arrays nested deeper than {MAX_JSON_DEPTH}")
    if not isinstance(content, dict):
        raise invalid(f"Invalid JSON payload received. Expected an object, got {type(content).__name__}")
    return content


def _group(query: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for key, value in query:
        grouped.setdefault(key, []).append(value)
    return grouped


def _field_path(descriptor: Descriptor, key: str) -> list[str]:
    """Resolve a dotted query parameter name (JSON or proto names) to proto field names."""
    path: list[str] = []
    current: Descriptor | None = descriptor
    for part in key.split("."):
        field = None
        if current is not None:
            field = current.fields_by_camelcase_name.get(part) or current.fields_by_name.get(part)
        if field is None:
            raise invalid(f"Invalid JSON payload received. Unknown name {shown(key)}: cannot bind query parameter")
        path.append(field.name)
        current = field.message_type if field.type == FieldDescriptor.TYPE_MESSAGE else None
    return path


def _query_value(descriptor: Descriptor, path: Sequence[str], key: str, values: Sequence[str]) -> Any:
    field = descriptor.fields_by_name[path[0]]
    for name in path[1:]:
        field = cast(Descriptor, field.message_type).fields_by_name[name]
    message_type = field.message_type
    if message_type is not None and not message_type.full_name.startswith("google.protobuf."):
        raise invalid(f"query parameter {shown(key)}: {message_type.full_name} is a message, not a value")
    converted = [_scalar(field, key, value) for value in values]
    if field.is_repeated:
        return converted
    if len(converted) > 1:
        raise invalid(
            f"query parameter {shown(key)}: repeated, but the field takes one value, got {shown(repr(list(values)))}"
        )
    return converted[0]


def _scalar(field: FieldDescriptor, key: str, value: str) -> Any:
    # json_format parses numbers, enums and well-known types from strings; booleans it wants as JSON booleans.
    if field.type == FieldDescriptor.TYPE_BOOL:
        if value.lower() not in ("true", "false"):
            raise invalid(f"query parameter {shown(key)}: expected true or false, got {shown(value)}")
        return value.lower() == "true"
    return value


def _put(fields: dict[str, Any], descriptor: Descriptor, path: Sequence[str], value: Any) -> None:
    """Set ``value`` at ``path`` (proto names) in a nested dict, replacing what the body put there.

    The body may have used a field's JSON name (``serviceName``) where the path
    sets its proto name (``service_name``): the JSON-named entry goes, so the
    path's value wins instead of the parser seeing the field twice.
    """
    node = fields
    for depth, name in enumerate(path):
        field = descriptor.fields_by_name[name]
        if field.json_name != name:
            alias = node.pop(field.json_name, None)
            if name not in node and alias is not None:
                node[name] = alias
        if depth == len(path) - 1:
            node[name] = value
            return
        child = node.get(name)
        if not isinstance(child, dict):
            child = node[name] = {}
        node = child
        descriptor = cast(Descriptor, field.message_type)
