"""Wire compatibility with Google's official packages, message by message and field by field.

``google-cloud-financialservices`` and ``google-cloud-service-management`` are
test-only dependencies. Their proto-plus types wrap raw protobuf classes
(``Type.pb()``) registered in protobuf's default pool; ours live in lro_grpc's
private pool. Every message of our two .proto files is compared with theirs:
the descriptors (field names, numbers, types, labels, oneofs, enum values), and
the bytes: each message is filled with every field set to a non-default value
(each member of each oneof in turn), encoded by one side, decoded by the other
and compared.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest
from google.cloud import financialservices_v1, servicemanagement_v1
from google.longrunning import operations_pb2
from google.protobuf import any_pb2, descriptor, descriptor_pool, json_format, message_factory
from google.protobuf.message import Message
from google.protobuf.unknown_fields import UnknownFieldSet

from lro_grpc import _descriptor_pool
from lro_grpc._generated import financialservices_v1_pb2 as fs
from lro_grpc._generated import operations_pb2_grpc
from lro_grpc._generated import servicemanagement_v1_pb2 as sm
from lro_grpc._json import operation_to_dict
from lro_grpc.registry import default_registry

FieldDescriptor = descriptor.FieldDescriptor

_OUR_PACKAGES = ("google.cloud.financialservices.v1", "google.api.servicemanagement.v1")


def _messages(containing: descriptor.FileDescriptor | descriptor.Descriptor) -> Iterator[descriptor.Descriptor]:
    types = (
        containing.message_types_by_name.values()
        if isinstance(containing, descriptor.FileDescriptor)
        else containing.nested_types
    )
    for message_descriptor in types:
        if not message_descriptor.GetOptions().map_entry:
            yield message_descriptor
            yield from _messages(message_descriptor)


def _enums(containing: descriptor.FileDescriptor | descriptor.Descriptor) -> Iterator[descriptor.EnumDescriptor]:
    if isinstance(containing, descriptor.FileDescriptor):
        yield from containing.enum_types_by_name.values()
        nested = containing.message_types_by_name.values()
    else:
        yield from containing.enum_types
        nested = containing.nested_types
    for message_descriptor in nested:
        yield from _enums(message_descriptor)


OUR_MESSAGES = [d for module in (fs, sm) for d in _messages(module.DESCRIPTOR)]
OUR_ENUMS = [e for module in (fs, sm) for e in _enums(module.DESCRIPTOR)]


def _their_descriptor(full_name: str) -> descriptor.Descriptor:
    # Importing the official packages registered their files in the default pool.
    return descriptor_pool.Default().FindMessageTypeByName(full_name)


def _their_class(full_name: str) -> type[Message]:
    return message_factory.GetMessageClass(_their_descriptor(full_name))


def _our_class(full_name: str) -> type[Message]:
    return message_factory.GetMessageClass(_descriptor_pool.POOL.FindMessageTypeByName(full_name))


def test_both_sides_are_distinct_classes_in_distinct_pools() -> None:
    theirs = financialservices_v1.Instance.pb()
    assert theirs.DESCRIPTOR.file.pool is descriptor_pool.Default()
    assert fs.Instance.DESCRIPTOR.file.pool is _descriptor_pool.POOL
    assert theirs is not fs.Instance
    assert _their_class("google.cloud.financialservices.v1.Instance") is theirs
    assert _their_class("google.api.servicemanagement.v1.Rollout") is servicemanagement_v1.Rollout.pb()
    assert len(OUR_MESSAGES) >= 37
    assert len(OUR_ENUMS) >= 10


def _field_signature(field: FieldDescriptor) -> tuple[object, ...]:
    referenced = field.message_type or field.enum_type
    return (
        field.name,
        field.number,
        field.type,
        field.is_repeated,
        field.json_name,
        referenced.full_name if referenced is not None else None,
        field.containing_oneof.name if field.containing_oneof is not None else None,
        field.has_presence,
    )


@pytest.mark.parametrize("ours", OUR_MESSAGES, ids=lambda d: d.full_name)
def test_descriptor_matches_official(ours: descriptor.Descriptor) -> None:
    theirs = _their_descriptor(ours.full_name)
    assert sorted(map(_field_signature, ours.fields)) == sorted(map(_field_signature, theirs.fields))
    assert [oneof.name for oneof in ours.oneofs] == [oneof.name for oneof in theirs.oneofs]
    assert ours.GetOptions().map_entry == theirs.GetOptions().map_entry
    for field in ours.fields:
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            their_entry = theirs.fields_by_name[field.name].message_type
            assert their_entry.GetOptions().map_entry
            assert list(map(_field_signature, field.message_type.fields)) == list(
                map(_field_signature, their_entry.fields)
            )


@pytest.mark.parametrize("ours", OUR_ENUMS, ids=lambda e: e.full_name)
def test_enum_matches_official(ours: descriptor.EnumDescriptor) -> None:
    theirs = descriptor_pool.Default().FindEnumTypeByName(ours.full_name)
    assert [(value.name, value.number) for value in ours.values] == [
        (value.name, value.number) for value in theirs.values
    ]


# --- filling every field ----------------------------------------------------------------------

_WELL_KNOWN_FILLERS = {
    "google.protobuf.Timestamp": lambda message: message.FromJsonString("2024-02-29T12:34:56.789Z"),
    "google.protobuf.Duration": lambda message: message.FromJsonString("5.5s"),
    "google.protobuf.FieldMask": lambda message: message.FromJsonString("labels,kmsKey"),
}


def _scalar(field: FieldDescriptor, salt: int) -> object:
    """A non-default value of the field's type; ``salt`` makes repeated elements and map keys differ."""
    kind = field.type
    seed = field.number + salt
    if kind in (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_SFIXED64):
        return -(2**62) - seed  # beyond 2**53: JSON prints it as a string
    if kind in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64):
        return 2**63 + seed
    if kind in (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SFIXED32):
        return -1000 - seed
    if kind in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32):
        return 4_000_000_000 + seed
    if kind == FieldDescriptor.TYPE_DOUBLE:
        return 1.5 + seed
    if kind == FieldDescriptor.TYPE_FLOAT:
        return 0.25 + seed
    if kind == FieldDescriptor.TYPE_BOOL:
        return True
    if kind == FieldDescriptor.TYPE_STRING:
        return f"{field.name}-{salt}-ü✓"
    if kind == FieldDescriptor.TYPE_BYTES:
        return bytes([0, 255, salt % 256]) + field.name.encode()
    if kind == FieldDescriptor.TYPE_ENUM:
        non_zero = [value.number for value in field.enum_type.values if value.number != 0]
        return non_zero[salt % len(non_zero)]
    raise AssertionError(f"unexpected scalar type {kind} of {field.full_name}")


def _fill(message: Message, variant: int, depth: int = 0) -> None:
    """Set every field of ``message`` (for each oneof, member number ``variant`` modulo its size)."""
    message_descriptor = message.DESCRIPTOR
    special = _WELL_KNOWN_FILLERS.get(message_descriptor.full_name)
    if special is not None:
        special(message)
        return
    ours = message_descriptor.full_name.startswith(_OUR_PACKAGES)
    chosen = {
        oneof.name: oneof.fields[variant % len(oneof.fields)].name
        for oneof in message_descriptor.oneofs
        if oneof.fields
    }
    for field in message_descriptor.fields:
        oneof = field.containing_oneof
        if oneof is not None and chosen.get(oneof.name) != field.name:
            continue
        if (
            field.type == FieldDescriptor.TYPE_MESSAGE
            and not ours
            and depth > 0
            and field.message_type.full_name not in _WELL_KNOWN_FILLERS
        ):
            # Messages of other packages (google.api.Service, google.type.*) are
            # the same file on both sides: their scalars are enough to tell
            # whether the field carrying them round-trips.
            continue
        value = getattr(message, field.name)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            key_field = field.message_type.fields_by_name["key"]
            value_field = field.message_type.fields_by_name["value"]
            for salt in (1, 2):
                key = _scalar(key_field, salt)
                if value_field.type == FieldDescriptor.TYPE_MESSAGE:
                    _fill(value[key], variant, depth + 1)
                else:
                    value[key] = _scalar(value_field, salt)
        elif field.is_repeated:
            for salt in (1, 2):
                if field.type == FieldDescriptor.TYPE_MESSAGE:
                    _fill(value.add(), variant + salt, depth + 1)
                else:
                    value.append(_scalar(field, salt))
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            _fill(value, variant, depth + 1)
            if not value.ListFields():
                value.SetInParent()  # an empty message (e.g. DeleteServiceStrategy) is still set
        else:
            setattr(message, field.name, _scalar(field, 0))


def _variants(message_descriptor: descriptor.Descriptor) -> range:
    sizes = [len(oneof.fields) for oneof in message_descriptor.oneofs]
    return range(max(sizes, default=1))


CASES = [(d.full_name, variant) for d in OUR_MESSAGES for variant in _variants(d)]


def _assert_every_field_set(message: Message) -> None:
    message_descriptor = message.DESCRIPTOR
    set_names = {field.name for field, _ in message.ListFields()}
    for field in message_descriptor.fields:
        if field.containing_oneof is None:
            assert field.name in set_names, f"{message_descriptor.full_name}.{field.name} is not set"
    for oneof in message_descriptor.oneofs:
        assert message.WhichOneof(oneof.name) is not None


@pytest.mark.parametrize(("full_name", "variant"), CASES, ids=[f"{name}#{variant}" for name, variant in CASES])
def test_every_field_round_trips_both_ways(full_name: str, variant: int) -> None:
    their_class = _their_class(full_name)
    our_class = _our_class(full_name)

    # Theirs -> ours -> theirs.
    theirs = their_class()
    _fill(theirs, variant)
    _assert_every_field_set(theirs)
    their_bytes = theirs.SerializeToString(deterministic=True)
    ours = our_class.FromString(their_bytes)
    assert len(UnknownFieldSet(ours)) == 0, "a field of theirs is unknown to ours"
    assert ours.SerializeToString(deterministic=True) == their_bytes
    assert json_format.MessageToDict(ours, descriptor_pool=_descriptor_pool.POOL) == json_format.MessageToDict(theirs)
    assert their_class.FromString(ours.SerializeToString()) == theirs

    # Ours -> theirs -> ours.
    mine = our_class()
    _fill(mine, variant)
    _assert_every_field_set(mine)
    decoded = their_class.FromString(mine.SerializeToString())
    assert len(UnknownFieldSet(decoded)) == 0, "a field of ours is unknown to theirs"
    assert decoded == theirs
    assert our_class.FromString(decoded.SerializeToString()) == mine


def test_oneof_members_each_get_a_case() -> None:
    rollout_cases = {variant for name, variant in CASES if name == "google.api.servicemanagement.v1.Rollout"}
    assert rollout_cases == {0, 1}
    for variant, member in ((0, "traffic_percent_strategy"), (1, "delete_service_strategy")):
        rollout = sm.Rollout()
        _fill(rollout, variant)
        assert rollout.WhichOneof("strategy") == member


# --- operations packed by the official side ---------------------------------------------------


def _official_operations() -> list[operations_pb2.Operation]:
    fs_metadata = financialservices_v1.OperationMetadata(
        target="projects/p/locations/us-central1/instances/i",
        verb="create",
        requested_cancellation=True,
        api_version="v1",
    )
    instance = financialservices_v1.Instance(
        name="projects/p/locations/us-central1/instances/i",
        state=financialservices_v1.Instance.State.ACTIVE,
        labels={"team": "aml"},
        kms_key="projects/k/locations/us-central1/keyRings/r/cryptoKeys/c",
    )
    fs_operation = operations_pb2.Operation(name="projects/p/locations/us-central1/operations/op-1", done=True)
    fs_operation.metadata.Pack(financialservices_v1.OperationMetadata.pb(fs_metadata))
    fs_operation.response.Pack(financialservices_v1.Instance.pb(instance))

    sm_metadata = servicemanagement_v1.OperationMetadata(
        resource_names=["services/endpointsapis.appspot.com/rollouts/2016-07-16r2"],
        steps=[
            servicemanagement_v1.OperationMetadata.Step(
                description="update Service Controller",
                status=servicemanagement_v1.OperationMetadata.Status.IN_PROGRESS,
            )
        ],
        progress_percentage=40,
    )
    rollout = servicemanagement_v1.Rollout(
        rollout_id="2016-07-16r2",
        service_name="endpointsapis.appspot.com",
        status=servicemanagement_v1.Rollout.RolloutStatus.SUCCESS,
        traffic_percent_strategy=servicemanagement_v1.Rollout.TrafficPercentStrategy(
            percentages={"2016-07-16r1": 100.0}
        ),
    )
    sm_operation = operations_pb2.Operation(name="operations/rollouts.endpointsapis.appspot.com:2016-07-16r2")
    sm_operation.metadata.Pack(servicemanagement_v1.OperationMetadata.pb(sm_metadata))
    sm_operation.response.Pack(servicemanagement_v1.Rollout.pb(rollout))
    return [fs_operation, sm_operation]


def _check_unpacked(operations: list[operations_pb2.Operation]) -> None:
    registry = default_registry()
    fs_operation, sm_operation = operations
    metadata = registry.unpack(fs_operation.metadata)
    assert isinstance(metadata, fs.OperationMetadata)
    assert (metadata.verb, metadata.requested_cancellation, metadata.api_version) == ("create", True, "v1")
    instance = registry.unpack(fs_operation.response)
    assert isinstance(instance, fs.Instance)
    assert instance.state == fs.Instance.State.ACTIVE
    assert dict(instance.labels) == {"team": "aml"}
    assert instance.kms_key.endswith("/cryptoKeys/c")

    sm_metadata = registry.unpack(sm_operation.metadata)
    assert isinstance(sm_metadata, sm.OperationMetadata)
    assert sm_metadata.progress_percentage == 40
    assert sm_metadata.steps[0].status == sm.OperationMetadata.Status.IN_PROGRESS
    rollout = registry.unpack(sm_operation.response)
    assert isinstance(rollout, sm.Rollout)
    assert rollout.WhichOneof("strategy") == "traffic_percent_strategy"
    assert dict(rollout.traffic_percent_strategy.percentages) == {"2016-07-16r1": 100.0}
    assert rollout.status == sm.Rollout.RolloutStatus.SUCCESS

    assert operation_to_dict(sm_operation, registry)["metadata"]["steps"] == [
        {"description": "update Service Controller", "status": "IN_PROGRESS"}
    ]


def test_official_any_unpacks_through_our_registry() -> None:
    _check_unpacked(_official_operations())


class _FixedOperations(operations_pb2_grpc.OperationsServicer):  # type: ignore[misc]
    def __init__(self, operations: list[operations_pb2.Operation]) -> None:
        self._by_name = {operation.name: operation for operation in operations}

    def GetOperation(
        self, request: operations_pb2.GetOperationRequest, context: grpc.ServicerContext
    ) -> operations_pb2.Operation:
        operation = self._by_name.get(request.name)
        if operation is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no operation {request.name!r}")
        return operation


@contextlib.contextmanager
def _serving(servicer: _FixedOperations) -> Iterator[str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    operations_pb2_grpc.add_OperationsServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(grace=None)


def test_official_any_over_grpc_unpacks_through_our_registry() -> None:
    operations = _official_operations()
    with _serving(_FixedOperations(operations)) as target, grpc.insecure_channel(target) as channel:
        stub = operations_pb2_grpc.OperationsStub(channel)
        fetched = [
            stub.GetOperation(operations_pb2.GetOperationRequest(name=operation.name), timeout=5)
            for operation in operations
        ]
    assert fetched == operations
    _check_unpacked(fetched)


def test_official_any_inside_error_details_unpacks() -> None:
    # An Any built from the official raw class with a non-default type URL prefix.
    value = any_pb2.Any()
    value.Pack(financialservices_v1.Instance.pb(financialservices_v1.Instance(name="i")), "example.com/types")
    assert value.type_url == "example.com/types/google.cloud.financialservices.v1.Instance"
    unpacked = default_registry().unpack(value)
    assert isinstance(unpacked, fs.Instance)
    assert unpacked.name == "i"
