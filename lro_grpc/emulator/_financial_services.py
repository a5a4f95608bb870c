"""The emulator's Financial Services (AML) operations: what each starting RPC validates and records.

No I/O: :mod:`lro_grpc.emulator._server` calls these with the simulated time.
"""

from __future__ import annotations

import hashlib
import re

from google.protobuf import empty_pb2
from google.protobuf.message import Message

from lro_grpc._generated import financialservices_v1_pb2 as fs
from lro_grpc.emulator._limits import shown
from lro_grpc.emulator._model import (
    FINANCIAL_SERVICES,
    FS_PARENT,
    SEGMENT,
    CallControls,
    OperationRecord,
    invalid,
    new_record,
    operation_id,
    pack,
    set_time,
)

_FS_INSTANCE = re.compile(rf"(projects/{SEGMENT}/locations/{SEGMENT})/instances/({SEGMENT})")
_RESOURCE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_ZERO_UUID = "00000000-0000-0000-0000-000000000000"


def _fs_metadata(now: float, target: str, verb: str) -> bytes:
    metadata: Message = fs.OperationMetadata(target=target, verb=verb, api_version="v1")
    set_time(metadata.create_time, now)  # type: ignore[attr-defined]
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
    set_time(instance.create_time, now)
    set_time(instance.update_time, now + duration)
    instance.state = fs.Instance.State.ACTIVE
    return new_record(
        name=f"{request.parent}/operations/{operation_id(now)}",
        collection=request.parent,
        api=FINANCIAL_SERVICES,
        method="CreateInstance",
        now=now,
        duration=duration,
        controls=controls,
        metadata=_fs_metadata(now, target, "create"),
        response=pack(instance).SerializeToString(),
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
    set_time(instance.update_time, now + duration)
    instance.state = fs.Instance.State.ACTIVE
    return new_record(
        name=f"{match.group(1)}/operations/{operation_id(now)}",
        collection=match.group(1),
        api=FINANCIAL_SERVICES,
        method="UpdateInstance",
        now=now,
        duration=duration,
        controls=controls,
        metadata=_fs_metadata(now, request.instance.name, "update"),
        response=pack(instance).SerializeToString(),
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
    return new_record(
        name=f"{match.group(1)}/operations/{operation_id(now)}",
        collection=match.group(1),
        api=FINANCIAL_SERVICES,
        method="DeleteInstance",
        now=now,
        duration=duration,
        controls=controls,
        metadata=_fs_metadata(now, request.name, "delete"),
        response=pack(empty_pb2.Empty()).SerializeToString(),
        request_identity=_request_identity("DeleteInstance", request),
    )
