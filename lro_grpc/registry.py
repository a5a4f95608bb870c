"""Type registry: from an ``Any``'s type URL to the message class it holds.

An operation's ``metadata`` and ``response`` (and its error's ``details``) are
``google.protobuf.Any`` values. :class:`TypeRegistry` maps their type URLs to
message classes so they can be unpacked into typed messages. A registry
matches on the full message name after the last ``/`` of the URL, so any
prefix works (``type.googleapis.com/`` is the usual one).

:func:`default_registry` knows every message of both APIs, ``google.protobuf.Empty``,
``google.rpc.Status`` and the ``google.rpc`` error details. Users extend a
registry with their own classes (:meth:`TypeRegistry.register`) or with a
compiled ``FileDescriptorSet`` (:meth:`TypeRegistry.register_file_descriptor_set`),
for any other API.

Nothing here does I/O. Looking a type up never fails silently: an unknown URL
raises :class:`~lro_grpc.errors.UnknownTypeError` and bytes that do not parse
raise :class:`~lro_grpc.errors.AnyDecodeError`, both naming the type URL. Code
that polls keeps the raw ``Any`` and calls :meth:`TypeRegistry.unpack` only
when the typed value is asked for.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from types import ModuleType

from google.protobuf import any_pb2, descriptor, descriptor_pb2, descriptor_pool, empty_pb2, message_factory
from google.protobuf.message import DecodeError, Message
from google.rpc import status_pb2

from lro_grpc import _descriptor_pool
from lro_grpc.errors import AnyDecodeError, UnknownTypeError

__all__ = [
    "TYPE_URL_PREFIX",
    "TypeRegistry",
    "default_registry",
    "type_url_of",
]

TYPE_URL_PREFIX = "type.googleapis.com/"
"""The prefix Google's APIs put before a full message name in a type URL."""

_ANY_FULL_NAME = any_pb2.Any.DESCRIPTOR.full_name

# Adding files to a descriptor pool is not atomic across a file and its
# dependencies; one lock serialises every registry's pool writes.
_pool_lock = threading.Lock()


def _full_name_of_url(type_url: str) -> str:
    return type_url.rpartition("/")[2]


def type_url_of(message_class_or_full_name: type[Message] | Message | str) -> str:
    """The type URL an ``Any`` holding the given message type carries.

    Args:
        message_class_or_full_name: a message class (or instance), or a full
            message name such as ``"google.cloud.financialservices.v1.Instance"``.

    Returns:
        ``"type.googleapis.com/<full name>"``.

    Raises:
        TypeError: the argument is neither a message class, a message nor a ``str``.
        ValueError: the name is empty, or contains ``/`` or whitespace.
    """
    value = message_class_or_full_name
    if isinstance(value, str):
        if not value or "/" in value or any(char.isspace() for char in value):
            raise ValueError(f"invalid full message name {value!r}: expected a name such as 'google.rpc.Status'")
        return TYPE_URL_PREFIX + value
    if isinstance(value, Message) or (isinstance(value, type) and issubclass(value, Message)):
        return TYPE_URL_PREFIX + value.DESCRIPTOR.full_name
    raise TypeError(f"expected a protobuf message class or a full message name, got {value!r}")


def _message_descriptors(
    containing: descriptor.FileDescriptor | descriptor.Descriptor,
) -> Iterator[descriptor.Descriptor]:
    """Every message declared in a file or message, nested ones included, map entries excluded."""
    types = (
        containing.message_types_by_name.values()
        if isinstance(containing, descriptor.FileDescriptor)
        else containing.nested_types
    )
    for message_descriptor in types:
        if message_descriptor.GetOptions().map_entry:
            continue
        yield message_descriptor
        yield from _message_descriptors(message_descriptor)


def _stripped(file_proto: descriptor_pb2.FileDescriptorProto) -> descriptor_pb2.FileDescriptorProto:
    """A copy without the parts that vary between compilers and pools but not on the wire."""
    copy = descriptor_pb2.FileDescriptorProto()
    copy.CopyFrom(file_proto)
    copy.ClearField("source_code_info")
    pending = list(copy.message_type)
    while pending:
        message_proto = pending.pop()
        for field_proto in (*message_proto.field, *message_proto.extension):
            field_proto.ClearField("json_name")
        pending.extend(message_proto.nested_type)
    for extension_proto in copy.extension:
        extension_proto.ClearField("json_name")
    return copy


def _file_proto(file_descriptor: descriptor.FileDescriptor) -> descriptor_pb2.FileDescriptorProto:
    return _stripped(descriptor_pb2.FileDescriptorProto.FromString(file_descriptor.serialized_pb))


def _known_file(name: str) -> descriptor.FileDescriptor | None:
    """A file already registered in lro_grpc's pool or protobuf's default pool."""
    for pool in (_descriptor_pool.POOL, descriptor_pool.Default()):
        try:
            return pool.FindFileByName(name)
        except KeyError:
            continue
    return None


class TypeRegistry:
    """Type URL -> message class, for unpacking ``google.protobuf.Any``.

    Lookups match on the full message name after the last ``/`` of a type URL.
    Registering a second class for a full name replaces the first. A registry
    is safe to read from many threads; register everything before sharing it.

    Example::

        registry = default_registry()
        registry.register(my_api_pb2.MyMetadata)
        metadata = registry.unpack(operation.metadata)
    """

    def __init__(self) -> None:
        """Create an empty registry (see :func:`default_registry` for a populated one)."""
        self._classes: dict[str, type[Message]] = {}
        self._lock = threading.Lock()
        # Created on first use by register_file_descriptor_set; shared by copies
        # so files registered before a copy stay available as dependencies.
        self._pool_box: list[descriptor_pool.DescriptorPool] = []

    def register(self, message_class: type[Message]) -> None:
        """Register a message class, from any descriptor pool.

        Args:
            message_class: a generated (or ``message_factory``-built) message
                class. For proto-plus types pass ``ProtoPlusType.pb()``.

        Raises:
            TypeError: ``message_class`` is not a protobuf message class.
        """
        if not (isinstance(message_class, type) and issubclass(message_class, Message)):
            raise TypeError(f"expected a protobuf message class, got {message_class!r}")
        full_name = message_class.DESCRIPTOR.full_name
        with self._lock:
            self._classes[full_name] = message_class

    def _pool(self) -> descriptor_pool.DescriptorPool:
        with self._lock:
            if not self._pool_box:
                self._pool_box.append(descriptor_pool.DescriptorPool())
            return self._pool_box[0]

    def register_file_descriptor_set(self, file_descriptor_set: descriptor_pb2.FileDescriptorSet | bytes) -> list[str]:
        """Register every message of a compiled ``FileDescriptorSet``.

        Produce one with ``protoc --include_imports --descriptor_set_out=FILE``
        (or ``grpc_tools.protoc``). Message classes are built in a descriptor
        pool owned by the registry, so they never clash with the default pool
        or with Google's packages. Dependencies missing from the set are taken
        from lro_grpc's pool or protobuf's default pool (well-known types,
        ``google.rpc``, ``google.api``, ``google.type``, ``google.longrunning``).

        A file of the set that is already known there under the same name, with
        the same content (``--include_imports`` copies of the well-known types,
        for example), is used from there and its messages are not registered
        again: the registry keeps the classes the rest of the process uses.

        Args:
            file_descriptor_set: the set, or its serialized bytes.

        Returns:
            The full names of the messages registered, nested ones included.

        Raises:
            TypeError: the argument is neither a ``FileDescriptorSet`` nor bytes.
            ValueError: the bytes do not parse, a dependency is missing, or a
                file conflicts with one registered earlier under the same name.
        """
        if isinstance(file_descriptor_set, (bytes, bytearray, memoryview)):
            try:
                file_set = descriptor_pb2.FileDescriptorSet.FromString(bytes(file_descriptor_set))
            except DecodeError as error:
                raise ValueError(
                    f"the {len(file_descriptor_set)} bytes given are not a serialized FileDescriptorSet"
                ) from error
        elif isinstance(file_descriptor_set, descriptor_pb2.FileDescriptorSet):
            file_set = file_descriptor_set
        else:
            raise TypeError(f"expected a FileDescriptorSet or its serialized bytes, got {file_descriptor_set!r}")

        _default_classes()  # the two APIs' files are known files here, as if loaded at import
        in_set = {file_proto.name: _stripped(file_proto) for file_proto in file_set.file}
        own_files: list[str] = []
        for name, file_proto in in_set.items():
            known = _known_file(name)
            if known is None or _file_proto(known) != file_proto:
                own_files.append(name)
        pool = self._pool()

        def ensure(name: str, needed_by: str | None) -> None:
            file_proto = in_set.get(name) if name in own_files else None
            try:
                existing = pool.FindFileByName(name)
            except KeyError:
                pass
            else:
                if file_proto is not None and _file_proto(existing) != file_proto:
                    raise ValueError(f"cannot register {name!r}: a different file of that name was registered before")
                return
            if file_proto is not None:
                for dependency in file_proto.dependency:
                    ensure(dependency, name)
                try:
                    pool.Add(file_proto)
                except TypeError as error:
                    raise ValueError(f"cannot register {name!r}: {error}") from error
                return
            known = _known_file(name)
            if known is None:
                raise ValueError(
                    f"cannot register {needed_by!r}: its dependency {name!r} is neither in the "
                    "FileDescriptorSet nor already loaded (compile with --include_imports)"
                )
            for dependency_file in known.dependencies:
                ensure(dependency_file.name, name)
            pool.AddSerializedFile(known.serialized_pb)

        with _pool_lock:
            for file_name in in_set:
                ensure(file_name, None)
            classes: dict[str, type[Message]] = {}
            for file_name in own_files:
                for message_descriptor in _message_descriptors(pool.FindFileByName(file_name)):
                    classes[message_descriptor.full_name] = message_factory.GetMessageClass(message_descriptor)
        with self._lock:
            self._classes.update(classes)
        return list(classes)

    def message_class(self, type_url: str) -> type[Message]:
        """The message class registered for a type URL.

        Args:
            type_url: e.g. ``"type.googleapis.com/google.cloud.financialservices.v1.Instance"``;
                any prefix before the last ``/`` is accepted.

        Returns:
            The registered class.

        Raises:
            TypeError: ``type_url`` is not a ``str``.
            UnknownTypeError: no class is registered for it; the message names the URL.
        """
        if not isinstance(type_url, str):
            raise TypeError(f"type_url must be a str, got {type_url!r}")
        message_class = self._classes.get(_full_name_of_url(type_url))
        if message_class is None:
            raise UnknownTypeError(
                f"no message type registered for type URL {type_url!r}; "
                "register its class (TypeRegistry.register) or its FileDescriptorSet",
                type_url,
            )
        return message_class

    def unpack(self, value: any_pb2.Any) -> Message:
        """Decode an ``Any`` into a message of the registered class.

        Args:
            value: the ``google.protobuf.Any`` to decode.

        Returns:
            A new message of the class registered for ``value.type_url``.

        Raises:
            TypeError: ``value`` is not a ``google.protobuf.Any``.
            UnknownTypeError: no class is registered for the type URL.
            AnyDecodeError: the bytes do not parse as that type. Both errors
                name the type URL.
        """
        if not isinstance(value, Message) or value.DESCRIPTOR.full_name != _ANY_FULL_NAME:
            raise TypeError(f"expected a google.protobuf.Any, got {value!r}")
        type_url: str = value.type_url
        message_class = self.message_class(type_url)
        message = message_class()
        try:
            message.ParseFromString(value.value)
        except DecodeError as error:
            raise AnyDecodeError(
                f"the value of type URL {type_url!r} does not parse as {message_class.DESCRIPTOR.full_name}: {error}",
                type_url,
            ) from error
        return message

    def __contains__(self, type_url: object) -> bool:
        """Whether a class is registered for a type URL (``False`` for non-strings)."""
        return isinstance(type_url, str) and _full_name_of_url(type_url) in self._classes

    def __len__(self) -> int:
        """The number of registered message types."""
        return len(self._classes)

    @property
    def full_names(self) -> tuple[str, ...]:
        """The full names of every registered message type, sorted."""
        return tuple(sorted(self._classes))

    def copy(self) -> TypeRegistry:
        """A new registry with the same registrations; changes to either do not affect the other."""
        other = TypeRegistry()
        with self._lock:
            other._classes = dict(self._classes)
            other._pool_box = self._pool_box
        return other

    def __repr__(self) -> str:
        return f"<TypeRegistry with {len(self._classes)} types>"


def _module_classes(module: ModuleType) -> Iterator[type[Message]]:
    file_descriptor: descriptor.FileDescriptor = module.DESCRIPTOR
    for message_descriptor in _message_descriptors(file_descriptor):
        yield message_factory.GetMessageClass(message_descriptor)


@functools.cache
def _default_classes() -> dict[str, type[Message]]:
    """The default registry's table, built on first use: the two APIs' modules are not loaded by ``import lro_grpc``."""
    from google.rpc import error_details_pb2

    from lro_grpc._generated import financialservices_v1_pb2, servicemanagement_v1_pb2

    classes: dict[str, type[Message]] = {}
    for module in (financialservices_v1_pb2, servicemanagement_v1_pb2):
        for message_class in _module_classes(module):
            classes[message_class.DESCRIPTOR.full_name] = message_class
    extra: list[type[Message]] = [
        empty_pb2.Empty,
        status_pb2.Status,
        error_details_pb2.ErrorInfo,
        error_details_pb2.RetryInfo,
        error_details_pb2.DebugInfo,
        error_details_pb2.QuotaFailure,
        error_details_pb2.PreconditionFailure,
        error_details_pb2.BadRequest,
        error_details_pb2.RequestInfo,
        error_details_pb2.ResourceInfo,
        error_details_pb2.Help,
        error_details_pb2.LocalizedMessage,
    ]
    for message_class in extra:
        classes[message_class.DESCRIPTOR.full_name] = message_class
    return classes


def default_registry() -> TypeRegistry:
    """A new registry with the types the two APIs put in operations.

    It holds every message of Financial Services v1 and Service Management v1
    as lro_grpc compiles them (nested messages included), ``google.protobuf.Empty``
    (the response of delete RPCs), ``google.rpc.Status`` and the ``google.rpc``
    error details (``ErrorInfo``, ``RetryInfo``, ``DebugInfo``, ``QuotaFailure``,
    ``PreconditionFailure``, ``BadRequest``, ``RequestInfo``, ``ResourceInfo``,
    ``Help``, ``LocalizedMessage``).

    Returns:
        A fresh registry each call, which the caller may extend.
    """
    registry = TypeRegistry()
    registry._classes.update(_default_classes())
    return registry
