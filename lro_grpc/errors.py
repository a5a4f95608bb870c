"""Exceptions raised by lro_grpc.

Every exception the library raises on purpose derives from :class:`LroError`::

    LroError
    ├── InvalidNameError (also ValueError)   a malformed operation name or parent, before any RPC
    ├── TypeRegistryError                    the typed value of an Any cannot be produced
    │   ├── UnknownTypeError (also LookupError)   no message class registered for the type URL
    │   ├── AnyDecodeError                        the Any's bytes do not parse as its type
    │   └── TypeMismatchError (also TypeError)    the Any holds another type than the one asked for
    ├── RpcError                             an RPC failed (after any retries); the grpc error is chained
    │   └── OperationNotFoundError           NOT_FOUND: no such operation, or its record expired
    ├── OperationError                       the operation finished with an error on the server
    │   └── OperationCancelledError          ... and that error is CANCELLED
    ├── WaitTimeoutError (also TimeoutError) gave up waiting at the deadline; carries the last seen operation
    │   └── BatchTimeoutError                a batch's deadline passed; carries every operation still running
    └── JournalError                         a batch journal cannot be used: in use, corrupt, or another endpoint's

Input checks that are not names raise plain ``ValueError``/``TypeError`` with the
offending value in the message.

The operations an error carries (:attr:`WaitTimeoutError.operation`,
:attr:`BatchTimeoutError.pending`, ...) are the clients' handles
(:class:`~lro_grpc.Operation`, :class:`~lro_grpc.AsyncOperation`), typed here by
:class:`OperationState`, what every handle offers without I/O: this module imports
nothing from the rest of lro_grpc.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import grpc

if TYPE_CHECKING:
    from google.longrunning import operations_pb2
    from google.protobuf.message import Message
    from google.rpc import status_pb2

__all__ = [
    "AnyDecodeError",
    "BatchTimeoutError",
    "InvalidNameError",
    "JournalError",
    "LroError",
    "OperationCancelledError",
    "OperationError",
    "OperationNotFoundError",
    "OperationState",
    "RpcError",
    "TypeMismatchError",
    "TypeRegistryError",
    "UnknownTypeError",
    "WaitTimeoutError",
]


_MessageT = TypeVar("_MessageT")


class OperationState(Protocol):
    """What an error carries about an operation: a handle's state, read without I/O.

    :class:`~lro_grpc.BaseOperation` (so :class:`~lro_grpc.Operation` and
    :class:`~lro_grpc.AsyncOperation`) has all of it; ``isinstance`` on those
    classes narrows to their waiting methods.
    """

    @property
    def name(self) -> str:
        """The operation's resource name."""

    @property
    def done(self) -> bool:
        """Whether the operation had finished when this state was read."""

    @property
    def raw(self) -> operations_pb2.Operation:
        """The ``google.longrunning.Operation`` message."""

    @property
    def metadata(self) -> Any:
        """The unpacked metadata, or ``None``."""

    @property
    def response(self) -> Any:
        """The unpacked response of a succeeded operation, or ``None``."""

    @property
    def failed(self) -> bool:
        """Whether the operation finished with an error."""

    @property
    def error(self) -> OperationError | None:
        """The operation's error as an exception, or ``None``."""

    def cancelled(self) -> bool:
        """Whether the operation ended ``CANCELLED``."""

    def response_as(self, cls: type[_MessageT]) -> _MessageT | None:
        """The response decoded into ``cls``, or ``None``."""

    def metadata_as(self, cls: type[_MessageT]) -> _MessageT | None:
        """The metadata decoded into ``cls``, or ``None``."""


class LroError(Exception):
    """Root of every exception lro_grpc raises on purpose."""


class InvalidNameError(LroError, ValueError):
    """An operation name or list parent does not have a form the APIs accept.

    Attributes:
        name: the offending value.
    """

    def __init__(self, message: str, name: object) -> None:
        super().__init__(message)
        self.name = name


class TypeRegistryError(LroError):
    """The typed value of a ``google.protobuf.Any`` cannot be produced.

    Attributes:
        type_url: the Any's type URL.
    """

    def __init__(self, message: str, type_url: str) -> None:
        super().__init__(message)
        self.type_url = type_url


class UnknownTypeError(TypeRegistryError, LookupError):
    """No message class is registered for an Any's type URL."""


class AnyDecodeError(TypeRegistryError):
    """An Any's bytes do not parse as the message its type URL names."""


class TypeMismatchError(TypeRegistryError, TypeError):
    """An Any holds another message type than the one asked for (``response_type=``, ``response_as()``, ...).

    Attributes:
        type_url: the Any's type URL.
        expected_type_url: the type URL of the class asked for.
    """

    def __init__(self, message: str, type_url: str, expected_type_url: str) -> None:
        super().__init__(message, type_url)
        self.expected_type_url = expected_type_url


def _code_name(code: grpc.StatusCode | None) -> str:
    return code.name if code is not None else "UNKNOWN"


class RpcError(LroError):
    """An RPC failed, after any retries the retry policy allowed.

    The underlying ``grpc.RpcError`` is chained as ``__cause__``.

    Attributes:
        code: the gRPC status code of the last attempt.
        details: the status message of the last attempt.
        method: the RPC's short name, e.g. ``"GetOperation"``.
        operation_name: the operation or parent the RPC was about, if any.
    """

    def __init__(
        self,
        code: grpc.StatusCode | None,
        details: str,
        *,
        method: str,
        operation_name: str | None = None,
    ) -> None:
        about = f" for {operation_name!r}" if operation_name else ""
        super().__init__(f"{method}{about} failed: {_code_name(code)}: {details}")
        self.code = code
        self.details = details
        self.method = method
        self.operation_name = operation_name


class OperationNotFoundError(RpcError):
    """The server has no such operation.

    Either the name is wrong, or the record expired: the APIs keep an
    operation's record only for a while (Financial Services: about 30 days)
    after it completes.
    """

    def __init__(
        self,
        code: grpc.StatusCode | None,
        details: str,
        *,
        method: str,
        operation_name: str | None = None,
    ) -> None:
        super().__init__(code, details, method=method, operation_name=operation_name)
        self.args = (
            f"{self.args[0]} (the operation does not exist, or its record expired: "
            "records are kept only for a while after an operation completes)",
        )


class OperationError(LroError):
    """The operation finished with an error on the server.

    Attributes:
        code: the ``google.rpc.Code`` of the operation's error, as a
            ``grpc.StatusCode`` (``None`` if the server used a number outside
            the canonical codes; see ``code_value``).
        code_value: the same code as the integer on the wire.
        message: the error's message.
        details: the error's ``details`` Anys, unpacked into typed messages
            (``google.rpc.ErrorInfo``, ``RetryInfo``, ...) where the type is
            known; unknown ones are kept as the raw ``Any``.
        status: the raw ``google.rpc.Status``.
        operation: the operation handle that carried the error.
    """

    def __init__(
        self,
        status: status_pb2.Status,
        *,
        details: Sequence[Message] = (),
        operation: Any = None,
    ) -> None:
        self.status = status
        self.code_value = status.code
        self.code = _status_code_from_int(status.code)
        self.message = status.message
        self.details = list(details)
        self.operation = operation
        name = getattr(operation, "name", None)
        about = f"operation {name!r}" if name else "operation"
        code_text = self.code.name if self.code is not None else str(status.code)
        super().__init__(f"{about} failed: {code_text}: {status.message}")


class OperationCancelledError(OperationError):
    """The operation ended with a ``CANCELLED`` error (after a cancel request, usually)."""


class WaitTimeoutError(LroError, TimeoutError):
    """The caller's deadline passed before the operation was done.

    The operation may still finish on the server; waiting again with the same
    name continues where this left off.

    Attributes:
        operation: the last state seen before the deadline (``None`` if no
            poll completed in time).
        timeout: the overall timeout the caller gave, in seconds.
    """

    def __init__(self, message: str, *, operation: Any = None, timeout: float | None = None) -> None:
        super().__init__(message)
        self.operation: OperationState | None = operation
        self.timeout = timeout


class BatchTimeoutError(WaitTimeoutError):
    """The batch's deadline passed while some operations were still running.

    Raised by the waiter (and :func:`~lro_grpc.AsyncOperationsClient.as_completed`) after every operation that
    finished in time has been reported; by ``wait_all`` with every result.

    Attributes:
        pending: the operations still running, in the order they were added,
            each with its last seen state (``done`` is false). An operation
            that no poll reached in time carries only its name.
        pending_names: their names, in the same order.
        results: from ``wait_all`` only: one entry per input name, in
            input order: the finished operation, or the last seen state of a
            pending one. ``None`` elsewhere.
        last_errors: for each pending operation (same order), the error of
            its last GetOperation if that failed (``None`` if it was answered,
            or not tried).
        timeout: the overall timeout, in seconds.

    When every pending operation's last look failed with ``UNAVAILABLE`` or
    ``DEADLINE_EXCEEDED`` (:attr:`server_unreachable`), the message says
    "server unreachable" and quotes the first error: a dead endpoint does not
    look like slow operations.
    """

    def __init__(
        self,
        message: str,
        *,
        pending: list[Any],
        pending_names: list[str],
        results: list[Any] | None = None,
        timeout: float | None = None,
        last_errors: Sequence[RpcError | None] | None = None,
    ) -> None:
        errors: list[RpcError | None] = list(last_errors) if last_errors is not None else [None] * len(pending_names)
        if len(errors) != len(pending_names):
            raise ValueError(f"last_errors has {len(errors)} entries for {len(pending_names)} pending operations")
        unreachable = _unreachable(errors)
        if unreachable is not None and "server unreachable" not in message:
            message = f"{message}; server unreachable: {unreachable}"
        super().__init__(message, operation=None, timeout=timeout)
        self.pending: list[OperationState] = pending
        self.pending_names = pending_names
        self.results: list[OperationState] | None = results
        self.last_errors = errors

    @property
    def server_unreachable(self) -> bool:
        """Whether every pending operation's last look failed with ``UNAVAILABLE`` or ``DEADLINE_EXCEEDED``."""
        return _unreachable(self.last_errors) is not None


_UNREACHABLE_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


def _unreachable(errors: Sequence[RpcError | None]) -> str | None:
    """The first error, if every one says the server could not be reached; else ``None``."""
    if not errors or not all(error is not None and error.code in _UNREACHABLE_CODES for error in errors):
        return None
    return str(errors[0])


class JournalError(LroError):
    """A batch journal cannot be used; nothing in it was changed.

    Raised when the journal is held by another process (the message names its
    pid), when the file is not a journal, is corrupt or has several hard
    links, when it cannot be created (a read-only directory, a full disk), or
    when it was made for another endpoint or API (the message names both).

    Attributes:
        path: the journal file.
    """

    def __init__(self, message: str, path: str) -> None:
        super().__init__(message)
        self.path = path


_CODES_BY_VALUE: dict[int, grpc.StatusCode] = {code.value[0]: code for code in grpc.StatusCode}


def _status_code_from_int(value: int) -> grpc.StatusCode | None:
    return _CODES_BY_VALUE.get(value)
