"""The emulator's behaviour, without I/O.

An operation is stored once, when it starts, as an :class:`OperationRecord`:
when it started, when it ends, how it ends, and the static parts of its
metadata and response. Everything a client sees (``done``, the evolving
metadata, the result) is computed from the record and the simulated time at
read time by :func:`render`, so reads never write.

What each API's starting RPCs validate and record is in
:mod:`lro_grpc.emulator._financial_services` and
:mod:`lro_grpc.emulator._service_management`; list queries (page sizes, signed page
tokens) are in :mod:`lro_grpc.emulator._listing`, the filter grammars in
:mod:`lro_grpc.emulator._filters`.
"""

from __future__ import annotations

import dataclasses
import math
import re
import secrets
from collections.abc import Iterable
from typing import Any

import grpc
from google.longrunning import operations_pb2
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2

from lro_grpc._generated import financialservices_v1_pb2 as fs
from lro_grpc._generated import servicemanagement_v1_pb2 as sm
from lro_grpc.emulator._limits import bounded_message, shown

__all__ = [
    "DEFAULT_WAIT_TIMEOUT",
    "DURATION_HEADER",
    "OUTCOME_HEADER",
    "REQUEST_ID_WINDOW",
    "SEGMENT",
    "CallControls",
    "OperationRecord",
    "RequestError",
    "invalid",
    "new_record",
    "operation_id",
    "pack",
    "render",
    "set_time",
]

DURATION_HEADER = "x-emulator-duration-seconds"
"""Request metadata key: simulated seconds the started operation takes (overrides the default)."""
OUTCOME_HEADER = "x-emulator-outcome"
"""Request metadata key: ``success`` (default) or ``fail`` (the operation ends with an error)."""

REQUEST_ID_WINDOW = 3600.0
"""Simulated seconds a Financial Services ``request_id`` is remembered ("at least 60 minutes")."""
DEFAULT_WAIT_TIMEOUT = 60.0
"""Real seconds ``WaitOperation`` waits when the request has no ``timeout``."""

FINANCIAL_SERVICES = "financialservices"
SERVICE_MANAGEMENT = "servicemanagement"
SERVICE_MANAGEMENT_COLLECTION = "operations"

SUCCESS = "success"
FAIL = "fail"
CANCEL = "cancel"
OUTCOMES = (SUCCESS, FAIL)

_DOMAINS = {
    FINANCIAL_SERVICES: "financialservices.googleapis.com",
    SERVICE_MANAGEMENT: "servicemanagement.googleapis.com",
}

SEGMENT = r"[^/]+"
"""One segment of a resource name, in the name patterns."""
FS_PARENT = re.compile(rf"projects/({SEGMENT})/locations/({SEGMENT})")
_FS_OPERATION = re.compile(rf"(projects/{SEGMENT}/locations/{SEGMENT})/operations/{SEGMENT}")
_SM_OPERATION = re.compile(rf"operations/{SEGMENT}")
# The Rollout reference: "no longer than 63 characters and only lower case letters, digits, '.', '_' and '-'".
# A UUID in its 36-character text form; the zero UUID is refused separately.


class RequestError(Exception):
    """A request the emulator refuses, with the gRPC status to answer it with.

    Attributes:
        code: the gRPC status code.
        message: the status message (names the offending field and value).
    """

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        message = bounded_message(message)
        super().__init__(message)
        self.code = code
        self.message = message


def invalid(message: str) -> RequestError:
    """An ``INVALID_ARGUMENT`` error."""
    return RequestError(grpc.StatusCode.INVALID_ARGUMENT, message)


@dataclasses.dataclass(frozen=True)
class OperationRecord:
    """One stored operation: everything needed to compute its state at any time.

    Attributes:
        name: the operation's resource name.
        collection: what ``ListOperations`` lists it under
            (``projects/P/locations/L`` or ``operations``).
        api: ``"financialservices"`` or ``"servicemanagement"``.
        method: the RPC that started it, e.g. ``"CreateInstance"``.
        service_name: the Service Management service it concerns (``""`` if none).
        start_at: simulated epoch seconds it started.
        natural_end: when it ends if nobody cancels it.
        end_at: when it actually ends (earlier than ``natural_end`` once cancelled).
        outcome: ``"success"``, ``"fail"`` or ``"cancel"``.
        cancel_requested_at: when a cancel was requested, or ``None``.
        metadata: the serialized metadata message without its time-dependent fields.
        response: the serialized ``Any`` response it carries on success (a
            ``google.rpc.Status`` for one failed on demand: the error it ends with).
        request_key: the Financial Services ``request_id`` it was started with, or ``None``.
        seq: insertion sequence number, assigned by the store (0 until stored).
        request_digest: what the request asked for (method and fields but the
            ``request_id``), to tell a retry from a different request reusing the id.
    """

    name: str
    collection: str
    api: str
    method: str
    service_name: str
    start_at: float
    natural_end: float
    end_at: float
    outcome: str
    cancel_requested_at: float | None
    metadata: bytes
    response: bytes
    request_key: str | None = None
    seq: int = 0
    request_digest: str | None = None

    def is_done(self, now: float) -> bool:
        """Whether the operation is done at simulated time ``now``."""
        return now >= self.end_at

    def is_expired(self, now: float, retention: float) -> bool:
        """Whether the record's retention ran out at ``now`` (it then no longer exists)."""
        return self.end_at <= now - retention


@dataclasses.dataclass(frozen=True)
class CallControls:
    """Per-call overrides read from request metadata.

    Attributes:
        duration: simulated seconds the started operation takes, or ``None`` for the default.
        outcome: ``"success"`` or ``"fail"``.
    """

    duration: float | None = None
    outcome: str = SUCCESS

    @classmethod
    def from_metadata(cls, metadata: Iterable[tuple[str, str | bytes]] | None) -> CallControls:
        """Read :data:`DURATION_HEADER` and :data:`OUTCOME_HEADER` from request metadata.

        Raises:
            RequestError: ``INVALID_ARGUMENT`` naming the header and its bad value.
        """
        duration: float | None = None
        outcome = SUCCESS
        for key, raw in metadata or ():
            if key not in (DURATION_HEADER, OUTCOME_HEADER):
                continue
            value = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
            if key == DURATION_HEADER:
                try:
                    duration = float(value)
                except ValueError:
                    duration = math.nan
                if not math.isfinite(duration) or duration < 0:
                    raise invalid(f"metadata {DURATION_HEADER}: expected seconds >= 0, got {shown(value)}")
            else:
                outcome = value.strip().lower()
                if outcome not in OUTCOMES:
                    raise invalid(f"metadata {OUTCOME_HEADER}: expected 'success' or 'fail', got {shown(value)}")
        return cls(duration=duration, outcome=outcome)


def set_time(field: Any, seconds: float) -> None:
    """Set a ``Timestamp`` field of one of our messages to ``seconds`` (epoch, microsecond precision)."""
    # Our messages live in a private pool with their own Timestamp class: set in place, never CopyFrom.
    # Microseconds: float epoch seconds carry no more precision than that.
    field.FromMicroseconds(round(seconds * 1e6))


def pack(message: Message) -> any_pb2.Any:
    """``message`` in an ``Any``."""
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def operation_id(now: float) -> str:
    """A new operation id in Google's shape, unique across restarts."""
    # Google's shape: operation-<epoch millis>-<hex>-<hex>-<hex>; 96 random bits keep it unique across restarts.
    return f"operation-{int(now * 1000)}-{secrets.token_hex(7)[:13]}-{secrets.token_hex(4)}-{secrets.token_hex(4)}"


def new_record(
    *,
    name: str,
    collection: str,
    api: str,
    method: str,
    now: float,
    duration: float,
    controls: CallControls,
    metadata: bytes,
    response: bytes,
    service_name: str = "",
    request_identity: tuple[str, str] | None = None,
) -> OperationRecord:
    """A record for an operation started at ``now`` that takes ``duration`` simulated seconds."""
    end = now + duration
    return OperationRecord(
        name=name,
        collection=collection,
        api=api,
        method=method,
        service_name=service_name,
        start_at=now,
        natural_end=end,
        end_at=end,
        outcome=controls.outcome,
        cancel_requested_at=None,
        metadata=metadata,
        response=response,
        request_key=None if request_identity is None else request_identity[0],
        request_digest=None if request_identity is None else request_identity[1],
    )


# --- Reading --------------------------------------------------------------------------------------


def check_operation_name(name: str) -> str:
    """Validate an operation name of either API.

    Raises:
        RequestError: ``INVALID_ARGUMENT`` naming the field and value.
    """
    if not name:
        raise invalid("name: required, got ''")
    if not (_FS_OPERATION.fullmatch(name) or _SM_OPERATION.fullmatch(name)):
        raise invalid(
            "name: expected 'projects/{project}/locations/{location}/operations/{operation}' "
            f"or 'operations/{{operation}}', got {shown(name)}"
        )
    return name


def is_service_management_operation(name: str) -> bool:
    """Whether ``name`` is a Service Management operation name (``operations/...``)."""
    return _SM_OPERATION.fullmatch(name) is not None


def not_offered(method: str, name: str) -> RequestError:
    """The ``UNIMPLEMENTED`` error for an ``Operations`` method the named operation's API does not offer."""
    return RequestError(
        grpc.StatusCode.UNIMPLEMENTED,
        f"{method}: Service Management offers only GetOperation and ListOperations, got a call for {shown(name)}",
    )


def not_found(name: str) -> RequestError:
    """The ``NOT_FOUND`` error for an unknown (deleted, expired) operation."""
    return RequestError(grpc.StatusCode.NOT_FOUND, f"operation {shown(name)} not found")


def cancelled(record: OperationRecord, now: float, grace: float) -> OperationRecord:
    """The record after a cancel request at ``now``; best effort, as on the real services.

    A done operation is unchanged. A running one gets ``requested_cancellation``;
    it ends right away with ``CANCELLED`` unless it was due to finish within
    ``grace`` simulated seconds, in which case it finishes anyway.
    """
    if record.is_done(now) or record.cancel_requested_at is not None:
        return record
    if record.end_at - now <= grace:
        return dataclasses.replace(record, cancel_requested_at=now)
    return dataclasses.replace(record, cancel_requested_at=now, end_at=now, outcome=CANCEL)


def _error(record: OperationRecord) -> status_pb2.Status:
    if record.outcome == CANCEL:
        return status_pb2.Status(code=code_pb2.CANCELLED, message="Operation was cancelled.")
    chosen = any_pb2.Any.FromString(record.response)  # a failure chosen on demand keeps its status here
    if chosen.Is(status_pb2.Status.DESCRIPTOR):
        status = status_pb2.Status()
        chosen.Unpack(status)
        return status
    status = status_pb2.Status(
        code=code_pb2.FAILED_PRECONDITION,
        message=f"{record.method} failed: simulated failure requested with {OUTCOME_HEADER}: fail",
    )
    status.details.add().Pack(
        error_details_pb2.ErrorInfo(
            reason="EMULATED_FAILURE",
            domain=_DOMAINS[record.api],
            metadata={"operation": record.name, "method": record.method},
        )
    )
    return status


def _sm_progress(record: OperationRecord, now: float) -> tuple[float, bool]:
    """Fraction of the natural duration elapsed at ``now`` (capped at the end), and whether done."""
    done = record.is_done(now)
    moment = min(now, record.end_at)
    span = record.natural_end - record.start_at
    fraction = 1.0 if span <= 0 else min(1.0, max(0.0, (moment - record.start_at) / span))
    return fraction, done


_FS_METADATA_URL = "type.googleapis.com/" + fs.OperationMetadata.DESCRIPTOR.full_name
_SM_METADATA_URL = "type.googleapis.com/" + sm.OperationMetadata.DESCRIPTOR.full_name


def render(record: OperationRecord, now: float) -> operations_pb2.Operation:
    """The ``google.longrunning.Operation`` a client sees for ``record`` at simulated time ``now``.

    Every listed operation is rendered (see :mod:`lro_grpc.emulator._pages`):
    the metadata ``Any`` is filled in place rather than packed, and a running
    Financial Services operation nobody asked to cancel carries its stored
    metadata bytes as they are (its time-dependent fields are unset until it ends).
    """
    operation = operations_pb2.Operation()
    done = record.is_done(now)
    operation.name = record.name
    metadata = operation.metadata
    if record.api == FINANCIAL_SERVICES:
        metadata.type_url = _FS_METADATA_URL
        if not done and record.cancel_requested_at is None:
            metadata.value = record.metadata
            return operation
        fs_metadata = fs.OperationMetadata.FromString(record.metadata)
        if done:
            set_time(fs_metadata.end_time, record.end_at)
        fs_metadata.requested_cancellation = record.cancel_requested_at is not None
        metadata.value = fs_metadata.SerializeToString()
    else:
        metadata.type_url = _SM_METADATA_URL
        metadata.value = _sm_metadata_at(record, now).SerializeToString()
    if done:
        operation.done = True
        if record.outcome == SUCCESS:
            operation.response.ParseFromString(record.response)
        else:
            operation.error.CopyFrom(_error(record))
    return operation


def _sm_metadata_at(record: OperationRecord, now: float) -> sm.OperationMetadata:
    metadata = sm.OperationMetadata.FromString(record.metadata)
    fraction, done = _sm_progress(record, now)
    status = sm.OperationMetadata.Status
    if done and record.outcome == SUCCESS:
        metadata.progress_percentage = 100
        for step in metadata.steps:
            step.status = status.DONE
        return metadata
    # Running: never report 100 before done. Ended otherwise: the step under way stops there.
    metadata.progress_percentage = min(99, math.floor(fraction * 100))
    count = len(metadata.steps)
    ending = {FAIL: status.FAILED, CANCEL: status.CANCELLED}.get(record.outcome) if done else None
    for index, step in enumerate(metadata.steps):
        if fraction >= (index + 1) / count and not (done and index == count - 1):
            step.status = status.DONE
        elif fraction >= index / count:
            step.status = ending if ending is not None else status.IN_PROGRESS
            if ending is not None:
                break
        else:
            break
    return metadata
