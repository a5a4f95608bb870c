"""lro_grpc's private protobuf descriptor pool.

Google's official packages (``google-cloud-financialservices``,
``google-cloud-service-management``, ...) register messages such as
``google.cloud.financialservices.v1.OperationMetadata`` in protobuf's default
descriptor pool. Registering a second definition of the same full name there
fails at import (``duplicate symbol``), so our generated message modules
register into :data:`POOL` instead. ``Any.Unpack`` matches by full type name,
so messages packed by either side unpack into the other's classes.

Dependencies that our files import (well-known types, ``google.longrunning``,
``google.api``, ``google.type``) are copied into :data:`POOL` from the default
pool, where googleapis-common-protos and protobuf registered them.
"""

from __future__ import annotations

import threading

from google.protobuf import descriptor, descriptor_pb2, descriptor_pool

POOL = descriptor_pool.DescriptorPool()
"""The pool holding lro_grpc's compiled API descriptors and their dependencies."""

_lock = threading.Lock()


def _ensure_file(name: str) -> None:
    try:
        POOL.FindFileByName(name)
        return
    except KeyError:
        pass
    source = descriptor_pool.Default().FindFileByName(name)
    for dependency in source.dependencies:
        _ensure_file(dependency.name)
    POOL.AddSerializedFile(source.serialized_pb)


def add_serialized_file(serialized: bytes) -> descriptor.FileDescriptor:
    """Add a serialized ``FileDescriptorProto`` to :data:`POOL`.

    Its dependencies must already be registered in the default pool (the
    generated module imports them first); they are copied into :data:`POOL`.

    Args:
        serialized: the bytes protoc embedded in a generated ``_pb2`` module.

    Returns:
        The file's descriptor in :data:`POOL`.
    """
    proto = descriptor_pb2.FileDescriptorProto.FromString(serialized)
    with _lock:
        for dependency in proto.dependency:
            _ensure_file(dependency)
        POOL.AddSerializedFile(serialized)
        return POOL.FindFileByName(proto.name)
