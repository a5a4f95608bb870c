"""How a done operation ended: failed or not, its status, and the exception for its error."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from google.longrunning import operations_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, status_pb2

from lro_grpc.errors import OperationCancelledError, OperationError, TypeRegistryError

__all__ = ["failure_status", "operation_error", "operation_failed"]


def operation_failed(operation: operations_pb2.Operation) -> bool:
    """Whether ``operation`` failed: its ``error`` field is set, whatever the code.

    The one reading every part of lro-grpc uses (handles, batch counts, the
    CLI). ``done`` with an ``error`` of code 0 (``OK``) and no response is a
    server contradiction: the server chose the error branch of the result but
    gave no failure code. It is read as a failure of code ``UNKNOWN`` (see
    :func:`failure_status`), never as a success: there is no response to act on.
    """
    return bool(operation.HasField("error"))


def failure_status(operation: operations_pb2.Operation) -> status_pb2.Status | None:
    """The ``google.rpc.Status`` ``operation`` failed with, or ``None`` if it did not fail.

    An error of code 0 (``OK``) comes back as code ``UNKNOWN`` with a message
    saying what the server sent (see :func:`operation_failed`); any other
    error as it is.
    """
    if not operation.HasField("error"):
        return None
    status = operation.error
    if status.code != code_pb2.OK:
        return status
    read = status_pb2.Status()
    read.CopyFrom(status)
    read.code = code_pb2.UNKNOWN
    read.message = "the server reported an error of code 0 (OK) and no response" + (
        f": {status.message}" if status.message else ""
    )
    return read


def operation_error(
    status: status_pb2.Status, *, unpack: Callable[[Any], Message], operation: object
) -> OperationError:
    """The exception for an operation that finished with ``status``.

    Details whose type ``unpack`` knows are unpacked; the others stay raw ``Any``.
    ``CANCELLED`` gives :class:`OperationCancelledError`.
    """
    details: list[Message] = []
    for detail in status.details:
        try:
            details.append(unpack(detail))
        except TypeRegistryError:
            details.append(detail)
    cls = OperationCancelledError if status.code == code_pb2.CANCELLED else OperationError
    return cls(status, details=details, operation=operation)
