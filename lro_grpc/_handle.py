"""What every handle on a long-running operation holds, without I/O: :class:`BaseOperation`.

The last seen ``google.longrunning.Operation``, its typed metadata and response
(unpacked through a :class:`~lro_grpc.registry.TypeRegistry`), the error as an
exception, and the REST JSON form. :mod:`lro_grpc.operation` adds the handles
that talk to the server and exports all of it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from google.longrunning import operations_pb2
from google.protobuf import any_pb2
from google.protobuf.message import Message

from lro_grpc import _core
from lro_grpc.errors import AnyDecodeError, BatchTimeoutError, OperationError, TypeMismatchError
from lro_grpc.registry import TypeRegistry, default_registry

__all__ = [
    "BaseOperation",
    "MetadataT",
    "ResponseT",
    "check_expected_types",
    "expect_types_each",
    "expect_types_on_error",
]

if TYPE_CHECKING:
    # PEP 696 defaults: a call without response_type=/metadata_type= gives Operation[Any, Any],
    # so one signature per entry point replaces a stack of overloads. Type checkers read these
    # from typing_extensions (bundled with them); at run time a plain TypeVar is all that is needed.
    from typing_extensions import Self
    from typing_extensions import TypeVar as _DefaultTypeVar

    ResponseT = _DefaultTypeVar("ResponseT", bound=Message, default=Any)
    MetadataT = _DefaultTypeVar("MetadataT", bound=Message, default=Any)
else:
    ResponseT = TypeVar("ResponseT", bound=Message)
    """The message type of an operation's response (e.g. ``Instance``)."""
    MetadataT = TypeVar("MetadataT", bound=Message)
    """The message type of an operation's metadata (e.g. ``OperationMetadata``)."""

_HandleT = TypeVar("_HandleT", bound="BaseOperation[Any, Any]")

_CANCELLED = 1  # google.rpc.Code.CANCELLED

_T = TypeVar("_T")

_TYPE_URL_PREFIX = "type.googleapis.com/"


def _check_message_class(value: object, *, what: str) -> type[Message] | None:
    if value is None or (isinstance(value, type) and issubclass(value, Message)):
        return value
    raise TypeError(f"{what} must be a protobuf message class (or None), got {value!r}")


def check_expected_types(response_type: object, metadata_type: object) -> None:
    """Validate ``response_type=``/``metadata_type=`` arguments before any RPC.

    Raises:
        TypeError: a value is neither ``None`` nor a protobuf message class.
    """
    if response_type is None and metadata_type is None:
        return
    _check_message_class(response_type, what="response_type")
    _check_message_class(metadata_type, what="metadata_type")


def expect_types_each(
    handles: Iterable[_HandleT], response_type: type[Message] | None, metadata_type: type[Message] | None
) -> Iterator[_HandleT]:
    """``handles`` as they come, each set to decode into the given classes (a batch's results).

    A :class:`~lro_grpc.errors.BatchTimeoutError` raised on the way gets the same for
    its ``pending`` and ``results`` handles.
    """
    try:
        for handle in handles:
            yield handle._expect_types(response_type, metadata_type)
    except BatchTimeoutError as error:
        expect_types_on_error(error, response_type, metadata_type)
        raise


def expect_types_on_error(
    error: BatchTimeoutError, response_type: type[Message] | None, metadata_type: type[Message] | None
) -> None:
    """Set the handles a :class:`~lro_grpc.errors.BatchTimeoutError` carries to decode into the given classes."""
    for handle in [*error.pending, *(error.results or ())]:
        if isinstance(handle, BaseOperation):
            handle._expect_types(response_type, metadata_type)


def _decode_as(packed: any_pb2.Any, cls: Any, *, what: str) -> Any:
    """``packed`` decoded into ``cls``: a protobuf message class or a proto-plus one.

    Raises:
        TypeError: ``cls`` is neither kind of message class.
        TypeMismatchError: the Any holds another type than ``cls``.
        AnyDecodeError: the bytes do not parse as ``cls``.
    """
    pb_class_of = getattr(cls, "pb", None)
    deserialize = getattr(cls, "deserialize", None)
    if isinstance(cls, type) and issubclass(cls, Message):
        full_name = cls.DESCRIPTOR.full_name
        parse: Callable[[bytes], Any] = cls.FromString
    elif isinstance(cls, type) and callable(pb_class_of) and callable(deserialize):
        # A proto-plus class (google-cloud-* packages): cls.pb() is its protobuf class.
        full_name = pb_class_of().DESCRIPTOR.full_name
        parse = deserialize
    else:
        raise TypeError(f"expected a protobuf or proto-plus message class, got {cls!r}")
    type_url = packed.type_url
    if type_url.rsplit("/", 1)[-1] != full_name:
        raise TypeMismatchError(
            f"the {what} is a {type_url}, not a {_TYPE_URL_PREFIX}{full_name} ({cls.__module__}.{cls.__qualname__})",
            type_url,
            _TYPE_URL_PREFIX + full_name,
        )
    try:
        return parse(packed.value)
    except Exception as error:  # DecodeError, or proto-plus's own wrapping of it
        raise AnyDecodeError(f"the {what} ({type_url}) does not parse: {error}", type_url) from error


_shared_registry: TypeRegistry | None = None
_shared_registry_lock = threading.Lock()


def _fallback_registry() -> TypeRegistry:
    global _shared_registry
    with _shared_registry_lock:
        if _shared_registry is None:
            _shared_registry = default_registry()
        return _shared_registry


class BaseOperation(Generic[ResponseT, MetadataT]):
    """The I/O-free part of an operation handle.

    Args:
        operation: the ``google.longrunning.Operation`` last seen.
        registry: the type registry for metadata, response and error details
            (default: the client's, else the library's default registry).
        client: the client the handle talks to, if any.
    """

    def __init__(
        self,
        operation: operations_pb2.Operation,
        *,
        registry: TypeRegistry | None = None,
        client: Any = None,
    ) -> None:
        if not isinstance(operation, operations_pb2.Operation):
            raise TypeError(f"operation must be a google.longrunning.Operation, got {operation!r}")
        if registry is not None and not isinstance(registry, TypeRegistry):
            raise TypeError(f"registry must be a TypeRegistry, got {registry!r}")
        if registry is None:
            registry = client.registry if client is not None else _fallback_registry()
        self._hold(operation, registry, client)

    def _hold(self, operation: operations_pb2.Operation, registry: TypeRegistry, client: Any) -> None:
        self._registry: TypeRegistry = registry
        self._client = client
        self._raw = operation
        self._metadata_cache: Message | None = None
        self._response_cache: Message | None = None
        self._response_type: type[Message] | None = None
        self._metadata_type: type[Message] | None = None

    @classmethod
    def _of_client(cls, operation: operations_pb2.Operation, registry: TypeRegistry, client: Any) -> Self:
        """A handle as a client makes one: ``operation`` and ``registry`` known to be what ``__init__`` checks.

        A client's handles are made per answer (``get``, every listed operation, every
        batch result): this skips the checks and the ``__init__`` chain, a third of the cost.
        """
        handle = object.__new__(cls)
        handle._hold(operation, registry, client)
        return handle

    def _expect_types(self: _HandleT, response_type: object, metadata_type: object) -> _HandleT:
        """Decode response and metadata into these classes from now on (``None``: by the registry).

        Raises:
            TypeError: a value is neither ``None`` nor a protobuf message class.
        """
        if response_type is metadata_type is self._response_type is self._metadata_type is None:
            return self  # decoded by the registry, as already: nothing to change (a fresh handle's case)
        self._response_type = _check_message_class(response_type, what="response_type")
        self._metadata_type = _check_message_class(metadata_type, what="metadata_type")
        self._metadata_cache = None
        self._response_cache = None
        return self

    def _update(self, operation: operations_pb2.Operation) -> None:
        # Readers that raced with this see the old operation or the new one, never a mix.
        self._metadata_cache = None
        self._response_cache = None
        self._raw = operation

    @property
    def raw(self) -> operations_pb2.Operation:
        """The last seen ``google.longrunning.Operation`` (do not modify it)."""
        return self._raw

    @property
    def registry(self) -> TypeRegistry:
        """The registry used to unpack metadata, response and error details."""
        return self._registry

    @property
    def name(self) -> str:
        """The operation's name, e.g. ``projects/p/locations/l/operations/op-123``."""
        return str(self._raw.name)

    @property
    def done(self) -> bool:
        """Whether the operation had finished when last seen."""
        return bool(self._raw.done)

    @property
    def metadata_any(self) -> any_pb2.Any | None:
        """The raw metadata ``Any``, or ``None`` if the operation carries none."""
        return self._raw.metadata if self._raw.HasField("metadata") else None

    @property
    def response_any(self) -> any_pb2.Any | None:
        """The raw response ``Any``, or ``None`` if there is none (yet)."""
        return self._raw.response if self._raw.HasField("response") else None

    @property
    def metadata(self) -> MetadataT | None:
        """The metadata as a typed message, or ``None`` if the operation carries none.

        Raises:
            UnknownTypeError: the registry has no class for the metadata's type URL.
            AnyDecodeError: the metadata's bytes do not parse as that type.
        """
        raw = self._raw
        if not raw.HasField("metadata"):
            return None
        cached = self._metadata_cache
        if cached is None:
            expected = self._metadata_type
            if expected is None:
                cached = self._registry.unpack(raw.metadata)
            else:
                cached = _decode_as(raw.metadata, expected, what=f"metadata of operation {raw.name!r}")
            if self._raw is raw:
                self._metadata_cache = cached
        return cast(MetadataT, cached)

    @property
    def response(self) -> ResponseT | None:
        """The response as a typed message.

        ``None`` while the operation runs, when it failed, and when it finished
        with neither response nor error (a success with no value).

        Raises:
            UnknownTypeError: the registry has no class for the response's type URL.
            AnyDecodeError: the response's bytes do not parse as that type.
        """
        raw = self._raw
        if not raw.HasField("response"):
            return None
        cached = self._response_cache
        if cached is None:
            expected = self._response_type
            if expected is None:
                cached = self._registry.unpack(raw.response)
            else:
                cached = _decode_as(raw.response, expected, what=f"response of operation {raw.name!r}")
            if self._raw is raw:
                self._response_cache = cached
        return cast(ResponseT, cached)

    def response_as(self, cls: type[_T]) -> _T | None:
        """The response decoded into ``cls``, or ``None`` if there is none (yet).

        ``cls`` may be any message class of the response's type: lro_grpc's
        (``lro_grpc.types``), a protobuf class generated elsewhere, or a
        proto-plus class of Google's packages (``google.cloud.financialservices_v1.Instance``).

        Raises:
            TypeError: ``cls`` is not a message class.
            TypeMismatchError: the response is of another type (both type URLs named).
            AnyDecodeError: the bytes do not parse as ``cls``.
        """
        return self._field_as("response", cls)

    def metadata_as(self, cls: type[_T]) -> _T | None:
        """The metadata decoded into ``cls``, or ``None`` if there is none (see :meth:`response_as`).

        Raises:
            TypeError: ``cls`` is not a message class.
            TypeMismatchError: the metadata is of another type (both type URLs named).
            AnyDecodeError: the bytes do not parse as ``cls``.
        """
        return self._field_as("metadata", cls)

    def _field_as(self, field: str, cls: type[_T]) -> _T | None:
        raw = self._raw
        if not raw.HasField(field):
            return None
        return cast(_T, _decode_as(getattr(raw, field), cls, what=f"{field} of operation {raw.name!r}"))

    @property
    def failed(self) -> bool:
        """Whether the operation failed (its ``error`` is set); the same as ``error is not None``."""
        return _core.operation_failed(self._raw)

    @property
    def error(self) -> OperationError | None:
        """The operation's failure as an exception (not raised), or ``None``.

        An :class:`~lro_grpc.errors.OperationCancelledError` for ``CANCELLED``,
        else an :class:`~lro_grpc.errors.OperationError`, carrying the
        ``google.rpc.Status`` code, message and details (unpacked where the
        registry knows their type, raw ``Any`` otherwise).

        An ``error`` of code 0 (``OK``), which the server should not send, is a
        failure of code ``UNKNOWN`` whose message says so: the server chose
        the error branch of the result and gave no response.
        """
        status = _core.failure_status(self._raw)
        if status is None:
            return None
        return _core.operation_error(status, unpack=self._registry.unpack, operation=self)

    def cancelled(self) -> bool:
        """Whether the operation, when last seen, had ended cancelled (``CANCELLED``, code 1).

        Unlike ``google.api_core.operation.Operation.cancelled()``, this makes no
        RPC: call ``refresh()`` first for the current state.
        """
        raw = self._raw
        return bool(raw.done) and raw.HasField("error") and raw.error.code == _CANCELLED

    def _outcome(self) -> ResponseT | None:
        error = self.error
        if error is not None:
            raise error
        return self.response

    def to_dict(self) -> dict[str, Any]:
        """The operation in the REST JSON shape (``"@type"`` in metadata and response), as a dict.

        Raises:
            UnknownTypeError: an Any inside has a type URL the registry does not know.
        """
        from lro_grpc import _json  # json_format is not needed to poll: loaded on first use

        return _json.operation_to_dict(self._raw, self._registry)

    def to_json(self, *, indent: int | None = 2) -> str:
        """The operation as REST JSON text, the shape the APIs' documentation shows.

        Raises:
            UnknownTypeError: an Any inside has a type URL the registry does not know.
        """
        from lro_grpc import _json  # json_format is not needed to poll: loaded on first use

        return _json.operation_to_json(self._raw, self._registry, indent=indent)

    @classmethod
    def from_dict(
        cls: type[_HandleT],
        data: dict[str, Any],
        *,
        client: Any = None,
        registry: TypeRegistry | None = None,
        ignore_unknown_fields: bool = False,
    ) -> _HandleT:
        """A handle from the REST JSON shape, given as a dict.

        Args:
            data: the operation as :meth:`to_dict` returns it.
            client: the client to bind the handle to (needed for its I/O methods).
            registry: the registry for the ``"@type"`` URLs (default: the client's).
            ignore_unknown_fields: skip JSON fields the message does not have.
        """
        if registry is None:
            registry = client.registry if client is not None else _fallback_registry()
        from lro_grpc import _json  # json_format is not needed to poll: loaded on first use

        operation = _json.operation_from_dict(data, registry, ignore_unknown_fields=ignore_unknown_fields)
        return cls(operation, registry=registry, client=client)

    @classmethod
    def from_json(
        cls: type[_HandleT],
        text: str,
        *,
        client: Any = None,
        registry: TypeRegistry | None = None,
        ignore_unknown_fields: bool = False,
    ) -> _HandleT:
        """A handle from REST JSON text (see :meth:`from_dict`)."""
        if registry is None:
            registry = client.registry if client is not None else _fallback_registry()
        from lro_grpc import _json  # json_format is not needed to poll: loaded on first use

        operation = _json.operation_from_json(text, registry, ignore_unknown_fields=ignore_unknown_fields)
        return cls(operation, registry=registry, client=client)

    @classmethod
    def from_api_core(
        cls: type[_HandleT],
        operation: Any,
        *,
        client: Any = None,
        registry: TypeRegistry | None = None,
    ) -> _HandleT:
        """A handle on the operation that a ``google-api-core`` operation future tracks.

        Takes the ``google.longrunning.Operation`` that
        ``google.api_core.operation.Operation`` (or ``operation_async.AsyncOperation``)
        last saw, e.g. what an official client's ``create_instance()`` returned.
        Carried over: the operation's name and its whole last seen state (done,
        metadata, response or error). Not carried over: api-core's channel and
        refresh function (it keeps no public reference to them: pass ``client=``,
        which may share the official client's channel, e.g.
        ``OperationsClient(aml_client.transport.grpc_channel)``), its polling
        settings, ``result_type``/``metadata_type`` (the registry decodes by type
        URL) and done callbacks. Nothing is fetched.

        Args:
            operation: the api-core operation future.
            client: the client to bind the handle to (needed for its I/O methods).
            registry: the registry for metadata and response (default: the client's).

        Raises:
            TypeError: ``operation`` is not an api-core operation future.
        """
        pb = getattr(operation, "operation", None)
        if not isinstance(pb, operations_pb2.Operation):
            raise TypeError(
                "operation must be a google.api_core.operation.Operation (or AsyncOperation) "
                f"whose .operation is a google.longrunning.Operation, got {operation!r}"
            )
        copy = operations_pb2.Operation()
        copy.CopyFrom(pb)
        return cls(copy, registry=registry, client=client)

    def _require_client(self) -> object:
        if self._client is None:
            raise RuntimeError(
                f"operation {self.name!r} is not bound to a client: "
                "get it from a client, or pass client= to from_json/from_dict"
            )
        return self._client

    def __repr__(self) -> str:
        state = "done" if self.done else "running"
        status = _core.failure_status(self._raw)
        if self.done and status is not None:
            state = f"failed code={status.code}"
        return f"<{type(self).__name__} {self.name!r} {state}>"
