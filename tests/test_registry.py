"""The type registry: default contents, user classes, user FileDescriptorSets, failures."""

from __future__ import annotations

import importlib.resources
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.protobuf import (
    any_pb2,
    descriptor,
    descriptor_pb2,
    descriptor_pool,
    empty_pb2,
    message_factory,
    timestamp_pb2,
)
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2

from lro_grpc import _descriptor_pool
from lro_grpc._generated import financialservices_v1_pb2 as fs
from lro_grpc._generated import servicemanagement_v1_pb2 as sm
from lro_grpc.errors import AnyDecodeError, LroError, TypeRegistryError, UnknownTypeError
from lro_grpc.registry import TYPE_URL_PREFIX, TypeRegistry, default_registry, type_url_of


def _all_messages(containing: descriptor.FileDescriptor | descriptor.Descriptor) -> Iterator[descriptor.Descriptor]:
    types = (
        containing.message_types_by_name.values()
        if isinstance(containing, descriptor.FileDescriptor)
        else containing.nested_types
    )
    for message_descriptor in types:
        if not message_descriptor.GetOptions().map_entry:
            yield message_descriptor
            yield from _all_messages(message_descriptor)


def _packed(message: Message) -> any_pb2.Any:
    value = any_pb2.Any()
    value.Pack(message)
    return value


# --- default registry -------------------------------------------------------------------------


def test_every_message_of_both_apis_is_registered() -> None:
    registry = default_registry()
    expected = [d.full_name for module in (fs, sm) for d in _all_messages(module.DESCRIPTOR)]
    assert len(expected) >= 37
    for full_name in expected:
        url = TYPE_URL_PREFIX + full_name
        assert url in registry, full_name
        assert registry.message_class(url).DESCRIPTOR.file.pool is _descriptor_pool.POOL
    # Spot-check the classes are the generated ones, nested ones included.
    assert registry.message_class(type_url_of(fs.Instance)) is fs.Instance
    assert registry.message_class(type_url_of(sm.OperationMetadata.Step)) is sm.OperationMetadata.Step
    assert registry.message_class(type_url_of(fs.EngineConfig.Tuning)) is fs.EngineConfig.Tuning


@pytest.mark.parametrize(
    "message_class",
    [
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
    ],
)
def test_default_registry_has_empty_status_and_error_details(message_class: type[Message]) -> None:
    assert default_registry().message_class(type_url_of(message_class)) is message_class


def test_default_registry_is_new_each_call() -> None:
    first = default_registry()
    first.register(timestamp_pb2.Timestamp)
    assert type_url_of(timestamp_pb2.Timestamp) in first
    assert type_url_of(timestamp_pb2.Timestamp) not in default_registry()
    assert first is not default_registry()


def test_unpack_typed_values_of_both_apis() -> None:
    registry = default_registry()
    metadata = fs.OperationMetadata(verb="create", target="projects/p/locations/l/instances/i", api_version="v1")
    unpacked = registry.unpack(_packed(metadata))
    assert isinstance(unpacked, fs.OperationMetadata)
    assert unpacked == metadata
    rollout = sm.Rollout(rollout_id="2016-07-16r2", service_name="endpointsapis.appspot.com", status=2)
    assert registry.unpack(_packed(rollout)) == rollout
    info = error_details_pb2.RetryInfo()
    info.retry_delay.FromMilliseconds(1500)
    unpacked_info = registry.unpack(_packed(info))
    assert isinstance(unpacked_info, error_details_pb2.RetryInfo)
    assert unpacked_info.retry_delay.ToMilliseconds() == 1500


@pytest.mark.parametrize(
    "prefix", ["type.googleapis.com/", "example.com/types/", "/", "", "https://schemas.example.org/a/b/"]
)
def test_any_prefix_matches_on_the_full_name(prefix: str) -> None:
    registry = default_registry()
    url = prefix + "google.cloud.financialservices.v1.Instance"
    assert url in registry
    assert registry.message_class(url) is fs.Instance
    value = any_pb2.Any(type_url=url, value=fs.Instance(name="n").SerializeToString())
    assert registry.unpack(value) == fs.Instance(name="n")


# --- failures ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "type_url",
    [
        "type.googleapis.com/google.cloud.financialservices.v2.Instance",
        "type.googleapis.com/example.Unknown",
        "",
        "type.googleapis.com/",
    ],
)
def test_unknown_type_url_raises_naming_it(type_url: str) -> None:
    registry = default_registry()
    assert type_url not in registry
    with pytest.raises(UnknownTypeError) as caught:
        registry.message_class(type_url)
    assert repr(type_url) in str(caught.value)
    assert caught.value.type_url == type_url
    assert isinstance(caught.value, LookupError)
    assert isinstance(caught.value, TypeRegistryError)
    assert isinstance(caught.value, LroError)
    with pytest.raises(UnknownTypeError) as caught_unpack:
        registry.unpack(any_pb2.Any(type_url=type_url, value=b"\x08\x01"))
    assert repr(type_url) in str(caught_unpack.value)


@pytest.mark.parametrize(
    "corrupt",
    [
        b"\xff\xff\xff\xff",  # not a valid tag
        b"\x0a\x05ab",  # length-delimited field 1 runs past the end
        b"\x0a\x02\xff\xfe",  # field 1 (name, a proto3 string) is not UTF-8
        b"\x12\x80",  # truncated varint length
    ],
)
def test_corrupt_bytes_raise_any_decode_error_naming_the_url(corrupt: bytes) -> None:
    registry = default_registry()
    type_url = type_url_of(fs.Instance)
    with pytest.raises(AnyDecodeError) as caught:
        registry.unpack(any_pb2.Any(type_url=type_url, value=corrupt))
    assert repr(type_url) in str(caught.value)
    assert caught.value.type_url == type_url
    assert caught.value.__cause__ is not None


def test_argument_checks() -> None:
    registry = TypeRegistry()
    with pytest.raises(TypeError, match="protobuf message class"):
        registry.register(fs.Instance())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="protobuf message class"):
        registry.register(dict)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"google\.protobuf\.Any"):
        registry.unpack(fs.Instance())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="type_url must be a str"):
        registry.message_class(b"type.googleapis.com/x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="FileDescriptorSet"):
        registry.register_file_descriptor_set("not a set")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a serialized FileDescriptorSet"):
        registry.register_file_descriptor_set(b"\xff\xff\xff")
    assert 42 not in registry
    assert None not in registry


def test_type_url_of() -> None:
    assert type_url_of(fs.Instance) == "type.googleapis.com/google.cloud.financialservices.v1.Instance"
    assert type_url_of(fs.Instance()) == "type.googleapis.com/google.cloud.financialservices.v1.Instance"
    assert type_url_of("google.rpc.Status") == "type.googleapis.com/google.rpc.Status"
    for bad in ("", "type.googleapis.com/google.rpc.Status", "google.rpc. Status"):
        with pytest.raises(ValueError) as caught:
            type_url_of(bad)
        assert repr(bad) in str(caught.value)
    with pytest.raises(TypeError):
        type_url_of(42)  # type: ignore[arg-type]


# --- user classes -----------------------------------------------------------------------------


def _hand_built_file(
    package: str = "example.shapes.v1", extra_field: bool = False
) -> descriptor_pb2.FileDescriptorProto:
    file_proto = descriptor_pb2.FileDescriptorProto(
        name=f"{package.replace('.', '/')}/shapes.proto", package=package, syntax="proto3"
    )
    file_proto.dependency.append("google/protobuf/timestamp.proto")
    file_proto.dependency.append("financialservices_v1.proto")
    shape = file_proto.message_type.add(name="ShapeMetadata")
    shape.field.add(name="label", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING, label=1)
    shape.field.add(
        name="start_time",
        number=2,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
        type_name=".google.protobuf.Timestamp",
        label=1,
    )
    # A field whose type lives in lro_grpc's private pool, not the default pool.
    shape.field.add(
        name="instance",
        number=3,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
        type_name=".google.cloud.financialservices.v1.Instance",
        label=1,
    )
    corner = shape.nested_type.add(name="Corner")
    corner.field.add(name="x", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_INT32, label=1)
    if extra_field:
        shape.field.add(name="extra", number=4, type=descriptor_pb2.FieldDescriptorProto.TYPE_BOOL, label=1)
    return file_proto


def test_register_user_class_from_another_pool() -> None:
    pool = descriptor_pool.DescriptorPool()
    point = descriptor_pb2.FileDescriptorProto(name="user/point.proto", package="user.v1", syntax="proto3")
    message_proto = point.message_type.add(name="Point")
    message_proto.field.add(name="x", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_INT64, label=1)
    pool.Add(point)
    point_class = message_factory.GetMessageClass(pool.FindMessageTypeByName("user.v1.Point"))
    registry = default_registry()
    url = "type.googleapis.com/user.v1.Point"
    assert url not in registry
    registry.register(point_class)
    assert url in registry
    unpacked = registry.unpack(any_pb2.Any(type_url=url, value=point_class(x=-7).SerializeToString()))
    assert isinstance(unpacked, point_class)
    assert unpacked.x == -7  # type: ignore[attr-defined]


def test_register_replaces_and_copy_is_independent() -> None:
    registry = TypeRegistry()
    assert len(registry) == 0
    registry.register(fs.Instance)
    duplicate = registry.copy()
    duplicate.register(sm.Rollout)
    assert type_url_of(sm.Rollout) in duplicate
    assert type_url_of(sm.Rollout) not in registry
    assert duplicate.full_names == (
        "google.api.servicemanagement.v1.Rollout",
        "google.cloud.financialservices.v1.Instance",
    )
    assert "TypeRegistry" in repr(registry)


def test_register_hand_built_file_descriptor_set() -> None:
    registry = default_registry()
    file_set = descriptor_pb2.FileDescriptorSet()
    file_set.file.append(_hand_built_file())
    names = registry.register_file_descriptor_set(file_set)
    assert sorted(names) == ["example.shapes.v1.ShapeMetadata", "example.shapes.v1.ShapeMetadata.Corner"]
    shape_class = registry.message_class("type.googleapis.com/example.shapes.v1.ShapeMetadata")
    # Built in the registry's own pool: neither protobuf's default pool nor lro_grpc's.
    with pytest.raises(KeyError):
        descriptor_pool.Default().FindMessageTypeByName("example.shapes.v1.ShapeMetadata")
    with pytest.raises(KeyError):
        _descriptor_pool.POOL.FindMessageTypeByName("example.shapes.v1.ShapeMetadata")
    # A message encoded by hand-written bytes: label "sq", start_time 100 s, instance.state ACTIVE.
    start = timestamp_pb2.Timestamp(seconds=100)
    instance = fs.Instance(state=fs.Instance.State.ACTIVE)
    encoded = (
        b"\x0a\x02sq"
        + b"\x12"
        + bytes([start.ByteSize()])
        + start.SerializeToString()
        + b"\x1a"
        + bytes([instance.ByteSize()])
        + instance.SerializeToString()
    )
    unpacked = registry.unpack(any_pb2.Any(type_url=type_url_of("example.shapes.v1.ShapeMetadata"), value=encoded))
    assert isinstance(unpacked, shape_class)
    assert unpacked.label == "sq"  # type: ignore[attr-defined]
    assert unpacked.start_time.seconds == 100  # type: ignore[attr-defined]
    assert unpacked.instance.state == fs.Instance.State.ACTIVE  # type: ignore[attr-defined]
    # Serialized bytes work as well, and registering the same set again is harmless.
    again = default_registry()
    assert sorted(again.register_file_descriptor_set(file_set.SerializeToString())) == sorted(names)
    assert sorted(registry.register_file_descriptor_set(file_set)) == sorted(names)


def test_conflicting_file_is_rejected() -> None:
    registry = TypeRegistry()
    first = descriptor_pb2.FileDescriptorSet()
    first.file.append(_hand_built_file("example.conflict.v1"))
    registry.register_file_descriptor_set(first)
    second = descriptor_pb2.FileDescriptorSet()
    second.file.append(_hand_built_file("example.conflict.v1", extra_field=True))
    with pytest.raises(ValueError, match=r"example/conflict/v1/shapes\.proto"):
        registry.register_file_descriptor_set(second)


def test_missing_dependency_is_named() -> None:
    file_proto = descriptor_pb2.FileDescriptorProto(name="lonely.proto", package="lonely", syntax="proto3")
    file_proto.dependency.append("not/there.proto")
    file_set = descriptor_pb2.FileDescriptorSet(file=[file_proto])
    with pytest.raises(ValueError, match=r"'not/there.proto'.*--include_imports"):
        TypeRegistry().register_file_descriptor_set(file_set)


def _compile(tmp_path: Path, proto_text: str, *, include_imports: bool) -> bytes:
    from grpc_tools import protoc

    (tmp_path / "widgets.proto").write_text(proto_text)
    out = tmp_path / "widgets.pb"
    well_known = importlib.resources.files("grpc_tools") / "_proto"
    args = [
        "protoc",
        f"-I{tmp_path}",
        f"-I{well_known}",
        f"--descriptor_set_out={out}",
        "widgets.proto",
    ]
    if include_imports:
        args.insert(1, "--include_imports")
    assert protoc.main(args) == 0
    return out.read_bytes()


_WIDGETS_PROTO = """
syntax = "proto3";
package example.widgets.v1;
import "google/protobuf/duration.proto";
import "google/protobuf/timestamp.proto";

message WidgetMetadata {
  enum Stage { STAGE_UNSPECIFIED = 0; BUILDING = 1; READY = 2; }
  string widget = 1;
  Stage stage = 2;
  google.protobuf.Timestamp start_time = 3;
  google.protobuf.Duration elapsed = 4;
  map<string, int64> counts = 5;
  message Part { string id = 1; }
  repeated Part parts = 6;
}
"""


@pytest.mark.parametrize("include_imports", [True, False])
def test_register_protoc_compiled_set(tmp_path: Path, include_imports: bool) -> None:
    registry = default_registry()
    names = registry.register_file_descriptor_set(_compile(tmp_path, _WIDGETS_PROTO, include_imports=include_imports))
    # The well-known types protoc copied into the set stay the process's classes.
    assert sorted(names) == ["example.widgets.v1.WidgetMetadata", "example.widgets.v1.WidgetMetadata.Part"]
    assert type_url_of(timestamp_pb2.Timestamp) not in registry
    widget_class = registry.message_class(type_url_of("example.widgets.v1.WidgetMetadata"))
    widget = widget_class()
    widget.widget = "w-1"  # type: ignore[attr-defined]
    widget.stage = 2  # type: ignore[attr-defined]
    widget.start_time.FromSeconds(1_700_000_000)  # type: ignore[attr-defined]
    widget.counts["bolts"] = 12  # type: ignore[attr-defined]
    widget.parts.add(id="p")  # type: ignore[attr-defined]
    unpacked = registry.unpack(_packed(widget))
    assert unpacked == widget
    assert unpacked.start_time.ToDatetime().year == 2023  # type: ignore[attr-defined]
