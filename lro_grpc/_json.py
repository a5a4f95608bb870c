"""Operations as the REST JSON the APIs return (and the seed documents show).

The shape is the proto3 JSON mapping with three deliberate differences that
make the output read like the REST responses:

* Keys come in the order ``name``, ``metadata``, ``done``, then ``response``
  or ``error``.
* ``done`` is always present, ``false`` included (proto3 JSON would drop a
  false bool; the documents rely on seeing ``"done": false``). ``name`` is
  always present too.
* An ``Any`` whose type the registry does not know, or whose bytes do not
  parse as that type, prints as ``{"@type": url, "value": "<base64>"}``
  instead of failing, and loads back into the same bytes.

Inside an ``Any`` the payload is printed by ``google.protobuf.json_format``
with the descriptor pool of the class the registry holds for its type URL, so
messages from lro_grpc's private pool, the default pool or a user's pool all
print (camelCase keys, ``"@type"`` first, enums as names, int64 as strings,
Timestamps in RFC 3339). A ``google.rpc.Status`` prints as
``{"code": n, "message": ..., "details": [...]}`` with each detail handled like
any other ``Any``.

Nothing here does I/O.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

from google.longrunning import operations_pb2
from google.protobuf import any_pb2, descriptor_pool, json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message
from google.rpc import status_pb2

from lro_grpc.errors import TypeRegistryError, UnknownTypeError
from lro_grpc.registry import TypeRegistry

__all__ = [
    "any_to_dict",
    "list_from_dict",
    "list_to_dict",
    "operation_from_dict",
    "operation_from_json",
    "operation_to_dict",
    "operation_to_json",
]

_OPERATION_KEYS = frozenset({"name", "metadata", "done", "error", "response"})
_STATUS_KEYS = frozenset({"code", "message", "details"})
_LIST_KEYS = frozenset({"operations", "nextPageToken", "next_page_token", "unreachable"})

# Well-known types whose JSON form is not an object: inside an Any they sit
# under a "value" key, so {"@type", "value"} is their normal form, not raw bytes.
_VALUE_WRAPPED_TYPES = frozenset(
    {
        "google.protobuf.Any",
        "google.protobuf.Duration",
        "google.protobuf.FieldMask",
        "google.protobuf.ListValue",
        "google.protobuf.Struct",
        "google.protobuf.Timestamp",
        "google.protobuf.Value",
        "google.protobuf.DoubleValue",
        "google.protobuf.FloatValue",
        "google.protobuf.Int64Value",
        "google.protobuf.UInt64Value",
        "google.protobuf.Int32Value",
        "google.protobuf.UInt32Value",
        "google.protobuf.BoolValue",
        "google.protobuf.StringValue",
        "google.protobuf.BytesValue",
    }
)


def _plain(value: Any) -> Any:
    """Deep copy of JSON data as plain dicts and lists (json_format returns OrderedDicts)."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def _pool_of(message_class: type[Message]) -> descriptor_pool.DescriptorPool:
    # The upb pool type is the runtime class behind descriptor_pool.DescriptorPool.
    return cast("descriptor_pool.DescriptorPool", message_class.DESCRIPTOR.file.pool)


def _raw_any_dict(value: any_pb2.Any) -> dict[str, Any]:
    return {"@type": value.type_url, "value": base64.b64encode(value.value).decode("ascii")}


_ZERO_SCALARS: dict[int, Any] = {
    FieldDescriptor.TYPE_BOOL: False,
    FieldDescriptor.TYPE_INT32: 0,
    FieldDescriptor.TYPE_SINT32: 0,
    FieldDescriptor.TYPE_SFIXED32: 0,
    FieldDescriptor.TYPE_UINT32: 0,
    FieldDescriptor.TYPE_FIXED32: 0,
    # The JSON mapping prints 64-bit integers as strings.
    FieldDescriptor.TYPE_INT64: "0",
    FieldDescriptor.TYPE_SINT64: "0",
    FieldDescriptor.TYPE_SFIXED64: "0",
    FieldDescriptor.TYPE_UINT64: "0",
    FieldDescriptor.TYPE_FIXED64: "0",
    FieldDescriptor.TYPE_FLOAT: 0.0,
    FieldDescriptor.TYPE_DOUBLE: 0.0,
}


def _with_zero_scalars(printed: Mapping[str, Any], descriptor: Any) -> dict[str, Any]:
    """Add the message's unset top-level bool/number fields as zeros, in field-number order."""
    result: dict[str, Any] = {"@type": printed["@type"]} if "@type" in printed else {}
    for field in sorted(descriptor.fields, key=lambda field: field.number):
        if field.json_name in printed:
            result[field.json_name] = printed[field.json_name]
        elif field.type in _ZERO_SCALARS and not field.is_repeated and not field.has_presence:
            result[field.json_name] = _ZERO_SCALARS[field.type]
    # Keys the descriptor does not name (none expected) are kept, last.
    for key, item in printed.items():
        result.setdefault(key, item)
    return result


def _any_to_dict(
    value: any_pb2.Any,
    registry: TypeRegistry,
    *,
    print_zero_scalars: bool = False,
    enums_as_numbers: bool = False,
) -> dict[str, Any]:
    """Print an Any as ``{"@type": url, <fields>}``.

    With ``print_zero_scalars``, top-level bool and number fields are printed
    even at their zero value, and empty strings, lists and maps are left out.
    That is the shape the services give operation metadata
    (``"requestedCancellation": false``, ``"progressPercentage": 0``, but no
    empty ``statusMessage``); proto3's JSON mapping alone would drop the zeros.
    """
    if not value.type_url and not value.value:
        return {}
    try:
        message_class = registry.message_class(value.type_url)
        # unpack() checks the bytes first so a corrupt value becomes the raw form.
        registry.unpack(value)
        printed = json_format.MessageToDict(
            value, descriptor_pool=_pool_of(message_class), use_integers_for_enums=enums_as_numbers
        )
        # Well-known types have their own JSON forms ({"@type", "value"}): left as printed.
        if print_zero_scalars and not message_class.DESCRIPTOR.full_name.startswith("google.protobuf."):
            printed = _with_zero_scalars(printed, message_class.DESCRIPTOR)
    except (TypeRegistryError, DecodeError, TypeError, ValueError, KeyError, RecursionError):
        # Unknown type, corrupt bytes, or a nested Any of a type the payload's
        # pool lacks: printing must not fail, so keep the bytes.
        return _raw_any_dict(value)
    result: dict[str, Any] = _plain(printed)
    return result


def _status_to_dict(status: status_pb2.Status, registry: TypeRegistry, enums_as_numbers: bool) -> dict[str, Any]:
    return {
        "code": status.code,
        "message": status.message,
        "details": [any_to_dict(detail, registry, enums_as_numbers=enums_as_numbers) for detail in status.details],
    }


def any_to_dict(value: any_pb2.Any, registry: TypeRegistry, *, enums_as_numbers: bool = False) -> dict[str, Any]:
    """Convert one ``Any`` (an error detail, a response) to its REST JSON shape.

    Args:
        value: the ``google.protobuf.Any``.
        registry: resolves its type URL. An unknown type, or bytes that do not
            parse, print as ``{"@type": url, "value": "<base64>"}``; this never
            raises for them.
        enums_as_numbers: print enum values as numbers instead of names (what a
            REST client asking for ``$alt=json;enum-encoding=int`` expects).

    Returns:
        ``{"@type": url, <fields>}`` as plain dicts and lists; ``{}`` for an empty ``Any``.

    Raises:
        TypeError: ``registry`` is not a :class:`~lro_grpc.registry.TypeRegistry`.
    """
    _check_registry(registry)
    return _any_to_dict(value, registry, enums_as_numbers=enums_as_numbers)


def operation_to_dict(
    operation: operations_pb2.Operation, registry: TypeRegistry, *, enums_as_numbers: bool = False
) -> dict[str, Any]:
    """Convert an operation to the REST JSON shape, as plain dicts and lists.

    Args:
        operation: a ``google.longrunning.Operation``.
        registry: resolves the type URLs of ``metadata``, ``response`` and
            error ``details``. Unknown types print in the raw form
            ``{"@type": url, "value": "<base64>"}``; this never raises for them.
        enums_as_numbers: print enum values as numbers instead of names.

    Returns:
        ``{"name", "metadata"?, "done", "response"? | "error"?}`` in that order.

    Raises:
        TypeError: ``operation`` is not a ``google.longrunning.Operation`` or
            ``registry`` is not a :class:`~lro_grpc.registry.TypeRegistry`.
    """
    if not isinstance(operation, operations_pb2.Operation):
        raise TypeError(f"expected a google.longrunning.Operation, got {operation!r}")
    _check_registry(registry)
    result: dict[str, Any] = {"name": operation.name}
    if operation.HasField("metadata"):
        result["metadata"] = _any_to_dict(
            operation.metadata, registry, print_zero_scalars=True, enums_as_numbers=enums_as_numbers
        )
    result["done"] = operation.done
    outcome = operation.WhichOneof("result")
    if outcome == "response":
        result["response"] = _any_to_dict(operation.response, registry, enums_as_numbers=enums_as_numbers)
    elif outcome == "error":
        result["error"] = _status_to_dict(operation.error, registry, enums_as_numbers)
    return result


def operation_to_json(operation: operations_pb2.Operation, registry: TypeRegistry, *, indent: int | None = 2) -> str:
    """Convert an operation to REST JSON text (see :func:`operation_to_dict`).

    Args:
        operation: a ``google.longrunning.Operation``.
        registry: resolves the types inside the operation's ``Any`` values.
        indent: spaces per level (2, as in the API documentation), or ``None``
            for one line.

    Returns:
        The JSON text, non-ASCII characters kept as they are.
    """
    return json.dumps(operation_to_dict(operation, registry), indent=indent, ensure_ascii=False)


def list_to_dict(
    operations: Iterable[operations_pb2.Operation],
    registry: TypeRegistry,
    *,
    next_page_token: str = "",
    unreachable: Sequence[str] = (),
    enums_as_numbers: bool = False,
) -> dict[str, Any]:
    """Convert a page (or several) of operations to the REST shape of a list response.

    Args:
        operations: the operations, in order.
        registry: resolves the types inside the operations' ``Any`` values.
        next_page_token: included as ``"nextPageToken"`` when non-empty.
        unreachable: included as ``"unreachable"`` when non-empty.
        enums_as_numbers: print enum values as numbers instead of names.

    Returns:
        ``{"operations": [...]}`` plus ``"nextPageToken"`` / ``"unreachable"``
        when they are non-empty.
    """
    result: dict[str, Any] = {
        "operations": [
            operation_to_dict(operation, registry, enums_as_numbers=enums_as_numbers) for operation in operations
        ]
    }
    if next_page_token:
        result["nextPageToken"] = next_page_token
    if unreachable:
        result["unreachable"] = list(unreachable)
    return result


def _check_registry(registry: object) -> None:
    if not isinstance(registry, TypeRegistry):
        raise TypeError(f"registry must be a lro_grpc.registry.TypeRegistry, got {registry!r}")


def _check_keys(data: Mapping[str, Any], allowed: frozenset[str], what: str, ignore_unknown_fields: bool) -> None:
    if ignore_unknown_fields:
        return
    unknown = sorted(key for key in data if key not in allowed)
    if unknown:
        raise ValueError(f"unknown field(s) {unknown!r} in {what}; expected only {sorted(allowed)!r}")


def _decode_base64(text: str, type_url: str) -> bytes:
    # The JSON mapping accepts standard and URL-safe alphabets, padded or not.
    normalized = text.replace("-", "+").replace("_", "/")
    normalized += "=" * (-len(normalized) % 4)
    try:
        return base64.b64decode(normalized, validate=True)
    except (binascii.Error, ValueError) as error:
        raise ValueError(f"the raw value of Any {type_url!r} is not base64: {text!r}") from error


def _has_value_field(message_class: type[Message]) -> bool:
    descriptor = message_class.DESCRIPTOR
    if descriptor.full_name in _VALUE_WRAPPED_TYPES:
        return True
    return any(field.name == "value" or field.json_name == "value" for field in descriptor.fields)


def _any_from_dict(data: object, registry: TypeRegistry, path: str, ignore_unknown_fields: bool) -> any_pb2.Any:
    if not isinstance(data, Mapping):
        raise ValueError(f"{path} must be a JSON object with an '@type' key, got {data!r}")
    if not data:
        return any_pb2.Any()
    type_url = data.get("@type")
    if not isinstance(type_url, str):
        raise ValueError(f"{path} has no '@type' string: {data!r}")
    raw_value = data.get("value")
    if set(data) != {"@type", "value"} or not isinstance(raw_value, str):
        raw_value = None
    if type_url not in registry:
        if raw_value is not None:
            return any_pb2.Any(type_url=type_url, value=_decode_base64(raw_value, type_url))
        raise UnknownTypeError(
            f"{path} has fields of type URL {type_url!r}, which is not registered, so they cannot be "
            "encoded; register the type, or give its bytes as {'@type': url, 'value': '<base64>'}",
            type_url,
        )
    message_class = registry.message_class(type_url)
    if raw_value is not None and not _has_value_field(message_class):
        return any_pb2.Any(type_url=type_url, value=_decode_base64(raw_value, type_url))
    result = any_pb2.Any()
    try:
        json_format.ParseDict(
            _plain(data),
            result,
            ignore_unknown_fields=ignore_unknown_fields,
            descriptor_pool=_pool_of(message_class),
        )
    except json_format.ParseError as error:
        raise ValueError(f"{path} does not parse as {type_url!r}: {error}") from error
    return result


def _status_from_dict(
    data: object, registry: TypeRegistry, path: str, ignore_unknown_fields: bool
) -> status_pb2.Status:
    if not isinstance(data, Mapping):
        raise ValueError(f"{path} must be a JSON object, got {data!r}")
    _check_keys(data, _STATUS_KEYS, path, ignore_unknown_fields)
    status = status_pb2.Status()
    code = data.get("code", 0)
    # Proto3 JSON allows int32 as a number or a numeric string.
    if isinstance(code, bool) or not isinstance(code, (int, str)):
        raise ValueError(f"{path}.code must be an integer, got {code!r}")
    try:
        status.code = int(code)
    except (ValueError, OverflowError) as error:
        raise ValueError(f"{path}.code must be a 32-bit integer, got {code!r}") from error
    message = data.get("message", "")
    if not isinstance(message, str):
        raise ValueError(f"{path}.message must be a string, got {message!r}")
    status.message = message
    details = data.get("details", [])
    if not isinstance(details, (list, tuple)):
        raise ValueError(f"{path}.details must be a list, got {details!r}")
    for index, detail in enumerate(details):
        status.details.append(_any_from_dict(detail, registry, f"{path}.details[{index}]", ignore_unknown_fields))
    return status


def _operation_from_dict(
    data: object, registry: TypeRegistry, path: str, ignore_unknown_fields: bool
) -> operations_pb2.Operation:
    if not isinstance(data, Mapping):
        raise ValueError(f"{path} must be a JSON object, got {data!r}")
    _check_keys(data, _OPERATION_KEYS, path, ignore_unknown_fields)
    operation = operations_pb2.Operation()
    name = data.get("name", "")
    if not isinstance(name, str):
        raise ValueError(f"{path}.name must be a string, got {name!r}")
    operation.name = name
    done = data.get("done", False)
    if not isinstance(done, bool):
        raise ValueError(f"{path}.done must be true or false, got {done!r}")
    operation.done = done
    if "metadata" in data and data["metadata"] is not None:
        operation.metadata.CopyFrom(
            _any_from_dict(data["metadata"], registry, f"{path}.metadata", ignore_unknown_fields)
        )
    has_response = data.get("response") is not None
    has_error = data.get("error") is not None
    if has_response and has_error:
        raise ValueError(f"{path} has both 'response' and 'error'; an operation has at most one")
    if has_response:
        operation.response.CopyFrom(
            _any_from_dict(data["response"], registry, f"{path}.response", ignore_unknown_fields)
        )
    elif has_error:
        operation.error.CopyFrom(_status_from_dict(data["error"], registry, f"{path}.error", ignore_unknown_fields))
    return operation


def operation_from_dict(
    data: Mapping[str, Any], registry: TypeRegistry, *, ignore_unknown_fields: bool = False
) -> operations_pb2.Operation:
    """Build an operation from its REST JSON shape (parsed into dicts and lists).

    Accepts what :func:`operation_to_dict` produces and what the APIs return:
    camelCase (or original snake_case) field names inside ``Any`` payloads,
    ``"@type"`` in every ``Any``, enum names or numbers, RFC 3339 timestamps,
    and the raw form ``{"@type": url, "value": "<base64>"}`` for any type
    (the only form possible for types the registry does not know).

    Strict by default, because a silently dropped field would change what the
    operation says: a key the message does not define is an error. Pass
    ``ignore_unknown_fields=True`` to read documents written for another
    version of an API (e.g. the Service Management documentation's
    ``serviceSelectionStrategy``, which the v1 ``Rollout`` no longer has).
    Like ``json_format``, that flag also skips enum names the schema does not
    define, leaving the field at its default rather than guessing (a misspelt
    ``"In_PROGRESS"`` is not read as ``IN_PROGRESS``).

    Args:
        data: the JSON object.
        registry: resolves the ``"@type"`` of every ``Any``.
        ignore_unknown_fields: skip unknown keys and enum names instead of failing.

    Returns:
        A ``google.longrunning.Operation``.

    Raises:
        TypeError: ``registry`` is not a :class:`~lro_grpc.registry.TypeRegistry`.
        ValueError: the data does not have the operation's shape, or a payload
            does not parse as its ``"@type"``; the message gives the path.
        UnknownTypeError: an ``Any`` has JSON fields of a type the registry
            does not know (they cannot be encoded without its schema).
    """
    _check_registry(registry)
    return _operation_from_dict(data, registry, "operation", ignore_unknown_fields)


def operation_from_json(
    text: str, registry: TypeRegistry, *, ignore_unknown_fields: bool = False
) -> operations_pb2.Operation:
    """Build an operation from REST JSON text (see :func:`operation_from_dict`).

    Args:
        text: the JSON text.
        registry: resolves the ``"@type"`` of every ``Any``.
        ignore_unknown_fields: skip unknown keys and enum names instead of failing.

    Returns:
        A ``google.longrunning.Operation``.

    Raises:
        TypeError: ``text`` is not a ``str``.
        ValueError: the text is not JSON (``json.JSONDecodeError``) or not an
            operation; see :func:`operation_from_dict`.
        UnknownTypeError: see :func:`operation_from_dict`.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}: {text!r}")
    return operation_from_dict(json.loads(text), registry, ignore_unknown_fields=ignore_unknown_fields)


def list_from_dict(
    data: Mapping[str, Any], registry: TypeRegistry, *, ignore_unknown_fields: bool = False
) -> operations_pb2.ListOperationsResponse:
    """Build a list response from its REST JSON shape (the inverse of :func:`list_to_dict`).

    Args:
        data: ``{"operations": [...], "nextPageToken"?: str, "unreachable"?: [str]}``.
        registry: resolves the ``"@type"`` of every ``Any``.
        ignore_unknown_fields: skip unknown keys and enum names instead of failing.

    Returns:
        A ``google.longrunning.ListOperationsResponse``.

    Raises:
        TypeError: ``registry`` is not a :class:`~lro_grpc.registry.TypeRegistry`.
        ValueError: the data does not have the list response's shape.
        UnknownTypeError: see :func:`operation_from_dict`.
    """
    _check_registry(registry)
    if not isinstance(data, Mapping):
        raise ValueError(f"a list response must be a JSON object, got {data!r}")
    _check_keys(data, _LIST_KEYS, "list response", ignore_unknown_fields)
    response = operations_pb2.ListOperationsResponse()
    operations = data.get("operations", [])
    if not isinstance(operations, (list, tuple)):
        raise ValueError(f"operations must be a list, got {operations!r}")
    for index, item in enumerate(operations):
        response.operations.append(_operation_from_dict(item, registry, f"operations[{index}]", ignore_unknown_fields))
    token = data.get("nextPageToken", data.get("next_page_token", ""))
    if not isinstance(token, str):
        raise ValueError(f"nextPageToken must be a string, got {token!r}")
    response.next_page_token = token
    unreachable = data.get("unreachable", [])
    if not isinstance(unreachable, (list, tuple)) or not all(isinstance(item, str) for item in unreachable):
        raise ValueError(f"unreachable must be a list of strings, got {unreachable!r}")
    response.unreachable.extend(unreachable)
    return response
