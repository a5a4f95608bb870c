"""The emulator's behaviour, without I/O.

An operation is stored once, when it starts, as an :class:`OperationRecord`:
when it started, when it ends, how it ends, and the static parts of its
metadata and response. Everything a client sees (``done``, the evolving
metadata, the result) is computed from the record and the simulated time at
read time by :func:`render`, so reads never write.

Request validation lives here too; list queries (page sizes, signed page
tokens) are in :mod:`lro_grpc.emulator._listing`, the filter grammars in
:mod:`lro_grpc.emulator._filters`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import re
import secrets
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import Any

import grpc
from google.longrunning import operations_pb2
from google.protobuf import any_pb2, empty_pb2
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
    "CallControls",
    "OperationRecord",
    "RequestError",
    "render",
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

_SEGMENT = r"[^/]+"
FS_PARENT = re.compile(rf"projects/({_SEGMENT})/locations/({_SEGMENT})")
_FS_OPERATION = re.compile(rf"(projects/{_SEGMENT}/locations/{_SEGMENT})/operations/{_SEGMENT}")
_FS_INSTANCE = re.compile(rf"(projects/{_SEGMENT}/locations/{_SEGMENT})/instances/({_SEGMENT})")
_SM_OPERATION = re.compile(rf"operations/{_SEGMENT}")
_RESOURCE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}")
_SERVICE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,252}")
# The Rollout reference: "no longer than 63 characters and only lower case letters, digits, '.', '_' and '-'".
_ROLLOUT_ID = re.compile(r"[a-z0-9._-]{1,63}")
# A UUID in its 36-character text form; the zero UUID is refused separately.
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_ZERO_UUID = "00000000-0000-0000-0000-000000000000"

_ROLLOUT_STEPS = ("validate rollout", "update Service Controller", "update Service Management")
_CONFIG_STEPS = ("validate configuration", "generate service configuration")
_SERVICE_STEPS = ("update Service Management",)


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
        response: the serialized ``Any`` response it carries on success.
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


def _set_time(field: Any, seconds: float) -> None:
    # Our messages live in a private pool with their own Timestamp class: set in place, never CopyFrom.
    # Microseconds: float epoch seconds carry no more precision than that.
    field.FromMicroseconds(round(seconds * 1e6))


def _pack(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def _operation_id(now: float) -> str:
    # Google's shape: operation-<epoch millis>-<hex>-<hex>-<hex>; 96 random bits keep it unique across restarts.
    return f"operation-{int(now * 1000)}-{secrets.token_hex(7)[:13]}-{secrets.token_hex(4)}-{secrets.token_hex(4)}"


def _record(
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


# --- Financial Services -------------------------------------------------------------------------


def _fs_metadata(now: float, target: str, verb: str) -> bytes:
    metadata: Message = fs.OperationMetadata(target=target, verb=verb, api_version="v1")
    _set_time(metadata.create_time, now)  # type: ignore[attr-defined]
    return metadata.SerializeToString()


def _request_identity(method: str, request: Message) -> tuple[str, str] | None:
    """The request's ``request_id`` and a digest of the rest, or ``None`` without a ``request_id``.

    Raises:
        RequestError: ``INVALID_ARGUMENT`` naming ``request_id`` unless it is a non-zero UUID.
    """
    request_id: str = request.request_id  # type: ignore[attr-defined]
    if not request_id:
        return None
    if not _UUID.fullmatch(request_id) or request_id == _ZERO_UUID:
        raise invalid(
            "request_id: expected a UUID such as '123e4567-e89b-12d3-a456-426614174000' "
            f"(the zero UUID is not supported), got {shown(request_id)}"
        )
    rest = type(request)()
    rest.CopyFrom(request)
    rest.ClearField("request_id")
    digest = hashlib.sha256(method.encode() + b"\0" + rest.SerializeToString(deterministic=True)).hexdigest()
    return request_id.lower(), digest


def create_instance(
    request: fs.CreateInstanceRequest, *, now: float, duration: float, controls: CallControls
) -> OperationRecord:
    """Plan the operation ``AML.CreateInstance`` starts.

    Raises:
        RequestError: ``INVALID_ARGUMENT`` for a bad ``parent`` or ``instance_id``.
    """
    if not FS_PARENT.fullmatch(request.parent):
        raise invalid(f"parent: expected 'projects/{{project}}/locations/{{location}}', got {shown(request.parent)}")
    if not _RESOURCE_ID.fullmatch(request.instance_id):
        raise invalid(
            f"instance_id: expected 1-63 letters, digits, '-' or '_' starting with a letter or digit, "
            f"got {shown(request.instance_id)}"
        )
    target = f"{request.parent}/instances/{request.instance_id}"
    instance = fs.Instance()
    instance.CopyFrom(request.instance)
    instance.name = target
    _set_time(instance.create_time, now)
    _set_time(instance.update_time, now + duration)
    instance.state = fs.Instance.State.ACTIVE
    return _record(
        name=f"{request.parent}/operations/{_operation_id(now)}",
        collection=request.parent,
        api=FINANCIAL_SERVICES,
        method="CreateInstance",
        now=now,
        duration=duration,
        controls=controls,
        metadata=_fs_metadata(now, target, "create"),
        response=_pack(instance).SerializeToString(),
        request_identity=_request_identity("CreateInstance", request),
    )


def update_instance(
    request: fs.UpdateInstanceRequest, *, now: float, duration: float, controls: CallControls
) -> OperationRecord:
    """Plan the operation ``AML.UpdateInstance`` starts.

    Raises:
        RequestError: ``INVALID_ARGUMENT`` for a bad ``instance.name``.
    """
    match = _FS_INSTANCE.fullmatch(request.instance.name)
    if match is None:
        raise invalid(
            "instance.name: expected 'projects/{project}/locations/{location}/instances/{instance}', "
            f"got {shown(request.instance.name)}"
        )
    instance = fs.Instance()
    instance.CopyFrom(request.instance)
    _set_time(instance.update_time, now + duration)
    instance.state = fs.Instance.State.ACTIVE
    return _record(
        name=f"{match.group(1)}/operations/{_operation_id(now)}",
        collection=match.group(1),
        api=FINANCIAL_SERVICES,
        method="UpdateInstance",
        now=now,
        duration=duration,
        controls=controls,
        metadata=_fs_metadata(now, request.instance.name, "update"),
        response=_pack(instance).SerializeToString(),
        request_identity=_request_identity("UpdateInstance", request),
    )


def delete_instance(
    request: fs.DeleteInstanceRequest, *, now: float, duration: float, controls: CallControls
) -> OperationRecord:
    """Plan the operation ``AML.DeleteInstance`` starts.

    Raises:
        RequestError: ``INVALID_ARGUMENT`` for a bad ``name``.
    """
    match = _FS_INSTANCE.fullmatch(request.name)
    if match is None:
        raise invalid(
            "name: expected 'projects/{project}/locations/{location}/instances/{instance}', "
            f"got {shown(request.name)}"
        )
    return _record(
        name=f"{match.group(1)}/operations/{_operation_id(now)}",
        collection=match.group(1),
        api=FINANCIAL_SERVICES,
        method="DeleteInstance",
        now=now,
        duration=duration,
        controls=controls,
        metadata=_fs_metadata(now, request.name, "delete"),
        response=_pack(empty_pb2.Empty()).SerializeToString(),
        request_identity=_request_identity("DeleteInstance", request),
    )


# --- Service Management -------------------------------------------------------------------------


def _check_service_name(value: str, *, field: str) -> str:
    if not _SERVICE_NAME.fullmatch(value):
        raise invalid(f"{field}: expected a service name such as 'example.googleapis.com', got {shown(value)}")
    return value


def _sm_metadata(now: float, resource_names: Sequence[str], steps: Sequence[str]) -> bytes:
    metadata = sm.OperationMetadata(resource_names=list(resource_names))
    _set_time(metadata.start_time, now)
    for description in steps:
        metadata.steps.add(description=description, status=sm.OperationMetadata.Status.NOT_STARTED)
    serialized: bytes = metadata.SerializeToString()
    return serialized


def _sm_record(
    *,
    operation_id: str,
    method: str,
    service_name: str,
    now: float,
    duration: float,
    controls: CallControls,
    resource_names: Sequence[str],
    steps: Sequence[str],
    response: Message,
) -> OperationRecord:
    return _record(
        name=f"operations/{operation_id}",
        collection=SERVICE_MANAGEMENT_COLLECTION,
        api=SERVICE_MANAGEMENT,
        method=method,
        now=now,
        duration=duration,
        controls=controls,
        metadata=_sm_metadata(now, resource_names, steps),
        response=_pack(response).SerializeToString(),
        service_name=service_name,
    )


def _config_id(now: float) -> str:
    day = datetime.fromtimestamp(now, tz=timezone.utc).strftime("%Y-%m-%d")
    # Real ids are <date>r<revision>; the revision here is random so ids stay unique across restarts.
    return f"{day}r{secrets.randbelow(10**9)}"


def create_service_rollout(
    request: sm.CreateServiceRolloutRequest, *, now: float, duration: float, controls: CallControls
) -> OperationRecord:
    """Plan the operation ``ServiceManager.CreateServiceRollout`` starts.

    The operation is named ``operations/rollouts.<service>:<rollout-id>``;
    the rollout id comes from the request or is generated.

    Raises:
        RequestError: ``INVALID_ARGUMENT`` for a bad ``service_name``,
            ``rollout.service_name`` or ``rollout.rollout_id``.
    """
    service = _check_service_name(request.service_name, field="service_name")
    if request.rollout.service_name and request.rollout.service_name != service:
        raise invalid(
            f"rollout.service_name: must be empty or equal service_name {shown(service)}, "
            f"got {shown(request.rollout.service_name)}"
        )
    rollout_id = request.rollout.rollout_id or _config_id(now)
    if not _ROLLOUT_ID.fullmatch(rollout_id):
        raise invalid(
            "rollout.rollout_id: expected at most 63 lower-case letters, digits, '.', '_' or '-', "
            f"got {shown(rollout_id)}"
        )
    rollout = sm.Rollout()
    rollout.CopyFrom(request.rollout)
    rollout.rollout_id = rollout_id
    rollout.service_name = service
    _set_time(rollout.create_time, now)
    rollout.created_by = rollout.created_by or "emulator@example.com"
    rollout.status = sm.Rollout.RolloutStatus.SUCCESS
    return _sm_record(
        operation_id=f"rollouts.{service}:{rollout_id}",
        method="CreateServiceRollout",
        service_name=service,
        now=now,
        duration=duration,
        controls=controls,
        resource_names=[f"services/{service}/rollouts/{rollout_id}"],
        steps=_ROLLOUT_STEPS,
        response=rollout,
    )


def submit_config_source(
    request: sm.SubmitConfigSourceRequest, *, now: float, duration: float, controls: CallControls
) -> OperationRecord:
    """Plan the operation ``ServiceManager.SubmitConfigSource`` starts.

    Raises:
        RequestError: ``INVALID_ARGUMENT`` for a bad ``service_name`` or a
            missing ``config_source``.
    """
    service = _check_service_name(request.service_name, field="service_name")
    if not request.HasField("config_source"):
        raise invalid("config_source: required, got nothing")
    config_id = request.config_source.id or _config_id(now)
    response = sm.SubmitConfigSourceResponse()
    response.service_config.name = service
    response.service_config.id = config_id
    return _sm_record(
        operation_id=f"serviceConfigs.{service}:{secrets.token_hex(16)}",
        method="SubmitConfigSource",
        service_name=service,
        now=now,
        duration=duration,
        controls=controls,
        resource_names=[f"services/{service}/configs/{config_id}"],
        steps=_CONFIG_STEPS,
        response=response,
    )


def create_service(
    request: sm.CreateServiceRequest, *, now: float, duration: float, controls: CallControls
) -> OperationRecord:
    """Plan the operation ``ServiceManager.CreateService`` starts.

    Raises:
        RequestError: ``INVALID_ARGUMENT`` for a bad ``service.service_name``.
    """
    service = _check_service_name(request.service.service_name, field="service.service_name")
    managed = sm.ManagedService()
    managed.CopyFrom(request.service)
    return _sm_record(
        operation_id=f"services.{service}:{secrets.token_hex(16)}",
        method="CreateService",
        service_name=service,
        now=now,
        duration=duration,
        controls=controls,
        resource_names=[f"services/{service}"],
        steps=_SERVICE_STEPS,
        response=managed,
    )


def delete_service(
    request: sm.DeleteServiceRequest, *, now: float, duration: float, controls: CallControls
) -> OperationRecord:
    """Plan the operation ``ServiceManager.DeleteService`` starts.

    Raises:
        RequestError: ``INVALID_ARGUMENT`` for a bad ``service_name``.
    """
    service = _check_service_name(request.service_name, field="service_name")
    return _sm_record(
        operation_id=f"services.{service}:{secrets.token_hex(16)}",
        method="DeleteService",
        service_name=service,
        now=now,
        duration=duration,
        controls=controls,
        resource_names=[f"services/{service}"],
        steps=_SERVICE_STEPS,
        response=empty_pb2.Empty(),
    )


def undelete_service(
    request: sm.UndeleteServiceRequest, *, now: float, duration: float, controls: CallControls
) -> OperationRecord:
    """Plan the operation ``ServiceManager.UndeleteService`` starts.

    Raises:
        RequestError: ``INVALID_ARGUMENT`` for a bad ``service_name``.
    """
    service = _check_service_name(request.service_name, field="service_name")
    response = sm.UndeleteServiceResponse()
    response.service.service_name = service
    return _sm_record(
        operation_id=f"services.{service}:{secrets.token_hex(16)}",
        method="UndeleteService",
        service_name=service,
        now=now,
        duration=duration,
        controls=controls,
        resource_names=[f"services/{service}"],
        steps=_SERVICE_STEPS,
        response=response,
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


def render(record: OperationRecord, now: float) -> operations_pb2.Operation:
    """The ``google.longrunning.Operation`` a client sees for ``record`` at simulated time ``now``."""
    done = record.is_done(now)
    operation = operations_pb2.Operation(name=record.name, done=done)
    if record.api == FINANCIAL_SERVICES:
        fs_metadata = fs.OperationMetadata.FromString(record.metadata)
        if done:
            _set_time(fs_metadata.end_time, record.end_at)
        fs_metadata.requested_cancellation = record.cancel_requested_at is not None
        operation.metadata.Pack(fs_metadata)
    else:
        operation.metadata.Pack(_sm_metadata_at(record, now))
    if done:
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
