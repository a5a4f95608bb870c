"""The emulator's Service Management operations: what each starting RPC validates and records.

No I/O: :mod:`lro_grpc.emulator._server` calls these with the simulated time.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from datetime import datetime, timezone

from google.protobuf import empty_pb2
from google.protobuf.message import Message

from lro_grpc._generated import servicemanagement_v1_pb2 as sm
from lro_grpc.emulator._limits import shown
from lro_grpc.emulator._model import (
    SERVICE_MANAGEMENT,
    SERVICE_MANAGEMENT_COLLECTION,
    CallControls,
    OperationRecord,
    invalid,
    new_record,
    pack,
    set_time,
)

_ROLLOUT_ID = re.compile(r"[a-z0-9._-]{1,63}")
_SERVICE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,252}")
_ROLLOUT_STEPS = ("validate rollout", "update Service Controller", "update Service Management")
_CONFIG_STEPS = ("validate configuration", "generate service configuration")
_SERVICE_STEPS = ("update Service Management",)


def _check_service_name(value: str, *, field: str) -> str:
    if not _SERVICE_NAME.fullmatch(value):
        raise invalid(f"{field}: expected a service name such as 'example.googleapis.com', got {shown(value)}")
    return value


def _sm_metadata(now: float, resource_names: Sequence[str], steps: Sequence[str]) -> bytes:
    metadata = sm.OperationMetadata(resource_names=list(resource_names))
    set_time(metadata.start_time, now)
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
    return new_record(
        name=f"operations/{operation_id}",
        collection=SERVICE_MANAGEMENT_COLLECTION,
        api=SERVICE_MANAGEMENT,
        method=method,
        now=now,
        duration=duration,
        controls=controls,
        metadata=_sm_metadata(now, resource_names, steps),
        response=pack(response).SerializeToString(),
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
    set_time(rollout.create_time, now)
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
