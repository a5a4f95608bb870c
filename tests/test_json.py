"""REST JSON conversion: the seed documents' responses, unknown and corrupt Anys, errors."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import pytest
from google.longrunning import operations_pb2
from google.protobuf import any_pb2, descriptor_pb2, duration_pb2, empty_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2

from lro_grpc._generated import financialservices_v1_pb2 as fs
from lro_grpc._generated import servicemanagement_v1_pb2 as sm
from lro_grpc._json import (
    list_from_dict,
    list_to_dict,
    operation_from_dict,
    operation_from_json,
    operation_to_dict,
    operation_to_json,
)
from lro_grpc.errors import UnknownTypeError
from lro_grpc.names import parse_operation_name
from lro_grpc.registry import TypeRegistry, default_registry, type_url_of

DATA = Path(__file__).parent / "data"

# Keys of the seed documents that the v1 schema does not have (see tests/data/README.md).
_DROPPED_KEYS = {"serviceSelectionStrategy"}


def _load(name: str) -> Any:
    return json.loads((DATA / name).read_text())


def _packed(message: Message) -> any_pb2.Any:
    value = any_pb2.Any()
    value.Pack(message)
    return value


def _assert_same_shape(printed: Any, seed: Any, path: str = "$") -> None:
    """Field by field: equal values and key order.

    Seed keys missing from the output must be defaults of a response payload:
    metadata prints its zero-valued bools and numbers as the seeds do.
    """
    if isinstance(seed, dict):
        assert isinstance(printed, dict), path
        for key, value in printed.items():
            assert key in seed, f"{path}.{key} printed but not in the seed"
            _assert_same_shape(value, seed[key], f"{path}.{key}")
        for key, value in seed.items():
            if key not in printed:
                in_metadata = ".metadata" in path
                assert key in _DROPPED_KEYS or (not in_metadata and value in (False, 0, "", [], {})), (
                    f"{path}.{key} missing"
                )
        # Printed keys come in the seed's order.
        seed_order = [key for key in seed if key in printed]
        assert list(printed) == seed_order, path
    elif isinstance(seed, list):
        assert isinstance(printed, list), path
        assert len(printed) == len(seed), path
        for index, (printed_item, seed_item) in enumerate(zip(printed, seed, strict=True)):
            _assert_same_shape(printed_item, seed_item, f"{path}[{index}]")
    else:
        assert printed == seed, path
        assert type(printed) is type(seed), path


# --- the seed documents -----------------------------------------------------------------------


def test_financial_services_get_response() -> None:
    registry = default_registry()
    seed = _load("fs_get_operation.json")
    operation = operation_from_dict(seed, registry)
    assert operation.name == "projects/PROJECT_ID/locations/LOCATION/operations/OPERATION_ID"
    assert parse_operation_name(operation.name).api == "financialservices"
    assert operation.done is True
    metadata = registry.unpack(operation.metadata)
    assert isinstance(metadata, fs.OperationMetadata)
    assert metadata.verb == "create"
    assert metadata.api_version == "v1"
    assert metadata.target == "projects/PROJECT_ID/locations/LOCATION/instances/INSTANCE_ID"
    assert metadata.requested_cancellation is False
    assert metadata.create_time.ToJsonString() == "2025-03-04T05:06:07.123456Z"
    assert metadata.end_time.ToJsonString() == "2025-03-04T05:16:42.500Z"
    instance = registry.unpack(operation.response)
    assert isinstance(instance, fs.Instance)
    assert instance.state == fs.Instance.State.ACTIVE
    assert instance.kms_key.endswith("/cryptoKeys/KEY_ID")
    assert instance.update_time.seconds > instance.create_time.seconds

    printed = operation_to_dict(operation, registry)
    _assert_same_shape(printed, seed)
    assert list(printed) == ["name", "metadata", "done", "response"]
    assert next(iter(printed["metadata"])) == "@type"
    assert next(iter(printed["response"])) == "@type"
    # The printed text has the documentation's layout (2-space indent) and loads back identically.
    text = operation_to_json(operation, registry)
    assert text.startswith('{\n  "name": "projects/PROJECT_ID/')
    assert operation_from_json(text, registry) == operation


def test_financial_services_list_response() -> None:
    registry = default_registry()
    seed = _load("fs_list_operations.json")
    response = list_from_dict(seed, registry)
    assert [operation.done for operation in response.operations] == [False, True]
    assert response.operations[1].name.endswith("/operations/my-other-operation")
    assert not response.operations[0].HasField("response")
    first_metadata = registry.unpack(response.operations[0].metadata)
    assert isinstance(first_metadata, fs.OperationMetadata)
    assert first_metadata.target.endswith("/engineConfigs/ENGINE_CONFIG_ID")

    printed = list_to_dict(response.operations, registry)
    _assert_same_shape(printed, seed)
    # "done": false must be printed: the documentation tells users to poll until it turns true.
    assert printed["operations"][0]["done"] is False
    assert list(printed) == ["operations"]
    assert list_from_dict(printed, registry) == response


@pytest.mark.parametrize(
    ("fixture", "done", "step_status", "progress"),
    [
        ("sm_operation_pending.json", False, sm.OperationMetadata.Status.IN_PROGRESS, 0),
        ("sm_operation_done.json", True, sm.OperationMetadata.Status.DONE, 100),
    ],
)
def test_service_management_responses(fixture: str, done: bool, step_status: int, progress: int) -> None:
    registry = default_registry()
    seed = _load(fixture)
    # The seed's Rollout carries serviceSelectionStrategy, which v1 no longer has: strict loading names it.
    with pytest.raises(ValueError, match="serviceSelectionStrategy"):
        operation_from_dict(seed, registry)
    operation = operation_from_dict(seed, registry, ignore_unknown_fields=True)
    assert operation.name == "operations/rollouts.endpointsapis.appspot.com:2016-07-16r2"
    assert parse_operation_name(operation.name).operation_id == "rollouts.endpointsapis.appspot.com:2016-07-16r2"
    assert operation.done is done
    metadata = registry.unpack(operation.metadata)
    assert isinstance(metadata, sm.OperationMetadata)
    assert list(metadata.resource_names) == ["services/endpointsapis.appspot.com/rollouts/2016-07-16r2"]
    assert [(step.description, step.status) for step in metadata.steps] == [("update Service Controller", step_status)]
    assert metadata.progress_percentage == progress
    assert metadata.start_time.ToJsonString() == "2016-07-16T00:56:55.737Z"
    rollout = registry.unpack(operation.response)
    assert isinstance(rollout, sm.Rollout)
    assert rollout.rollout_id == "2016-07-16r2"
    assert rollout.service_name == "endpointsapis.appspot.com"
    assert rollout.create_time.ToJsonString() == "2016-07-16T00:56:55.724Z"

    printed = operation_to_dict(operation, registry)
    expected = copy.deepcopy(seed)
    expected.setdefault("done", False)
    expected = {key: expected[key] for key in ("name", "metadata", "done", "response")}
    _assert_same_shape(printed, expected)
    assert printed["done"] is done
    assert "serviceSelectionStrategy" not in printed["response"]
    assert list(printed) == ["name", "metadata", "done", "response"]
    # What was printed loads strictly (nothing unknown is left) and is the same operation.
    assert operation_from_dict(printed, registry) == operation


@pytest.mark.parametrize("misspelt", ["In_PROGRESS", "Done"])
def test_seed_enum_spelling_is_not_guessed(misspelt: str) -> None:
    registry = default_registry()
    seed = _load("sm_operation_done.json")
    seed["metadata"]["steps"][0]["status"] = misspelt
    del seed["response"]["serviceSelectionStrategy"]
    with pytest.raises(ValueError, match=misspelt):
        operation_from_dict(seed, registry)
    lenient = operation_from_dict(seed, registry, ignore_unknown_fields=True)
    metadata = registry.unpack(lenient.metadata)
    assert isinstance(metadata, sm.OperationMetadata)
    assert metadata.steps[0].status == sm.OperationMetadata.Status.STATUS_UNSPECIFIED
    assert metadata.steps[0].description == "update Service Controller"


# --- shape rules ------------------------------------------------------------------------------


def test_minimal_operation_prints_name_and_done() -> None:
    registry = default_registry()
    operation = operations_pb2.Operation(name="operations/x")
    assert operation_to_dict(operation, registry) == {"name": "operations/x", "done": False}
    assert operation_to_json(operation, registry, indent=None) == '{"name": "operations/x", "done": false}'
    assert operation_from_json('{"name": "operations/x"}', registry) == operation


def test_error_prints_code_message_details() -> None:
    registry = default_registry()
    error_info = error_details_pb2.ErrorInfo(reason="QUOTA", domain="example.com", metadata={"k": "v"})
    retry = error_details_pb2.RetryInfo()
    retry.retry_delay.FromMilliseconds(2500)
    unknown_detail = any_pb2.Any(type_url="type.googleapis.com/example.Private", value=b"\x08\x96\x01")
    status = status_pb2.Status(code=code_pb2.RESOURCE_EXHAUSTED, message="slow down")
    status.details.extend([_packed(error_info), _packed(retry), unknown_detail])
    metadata = fs.OperationMetadata(verb="delete")
    operation = operations_pb2.Operation(name="projects/p/locations/l/operations/o", done=True, error=status)
    operation.metadata.Pack(metadata)

    printed = operation_to_dict(operation, registry)
    assert list(printed) == ["name", "metadata", "done", "error"]
    assert printed["error"] == {
        "code": 8,
        "message": "slow down",
        "details": [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "QUOTA",
                "domain": "example.com",
                "metadata": {"k": "v"},
            },
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2.500s"},
            {"@type": "type.googleapis.com/example.Private", "value": base64.b64encode(b"\x08\x96\x01").decode()},
        ],
    }
    assert operation_from_json(operation_to_json(operation, registry), registry) == operation


def test_unknown_any_prints_raw_and_round_trips() -> None:
    registry = TypeRegistry()  # knows nothing
    operation = operations_pb2.Operation(name="operations/x", done=True)
    operation.metadata.Pack(sm.OperationMetadata(progress_percentage=40))
    operation.response.Pack(sm.Rollout(rollout_id="r"))
    printed = operation_to_dict(operation, registry)
    assert printed["metadata"] == {
        "@type": "type.googleapis.com/google.api.servicemanagement.v1.OperationMetadata",
        "value": base64.b64encode(operation.metadata.value).decode(),
    }
    assert operation_from_dict(printed, registry) == operation
    # The raw form also loads with a registry that knows the type.
    known = default_registry()
    loaded = operation_from_dict(printed, known)
    assert loaded == operation
    assert operation_from_dict(operation_to_dict(loaded, known), known) == operation


def test_corrupt_known_any_prints_raw_and_round_trips() -> None:
    registry = default_registry()
    corrupt = b"\x0a\x05ab"
    operation = operations_pb2.Operation(name="operations/x", done=True)
    operation.response.CopyFrom(any_pb2.Any(type_url=type_url_of(sm.Rollout), value=corrupt))
    printed = operation_to_dict(operation, registry)
    assert printed["response"] == {"@type": type_url_of(sm.Rollout), "value": base64.b64encode(corrupt).decode()}
    assert operation_from_dict(printed, registry).response.value == corrupt


def test_unknown_type_with_fields_cannot_load() -> None:
    data = {"name": "operations/x", "metadata": {"@type": "type.googleapis.com/example.Meta", "stage": "READY"}}
    with pytest.raises(UnknownTypeError) as caught:
        operation_from_dict(data, default_registry())
    assert "'type.googleapis.com/example.Meta'" in str(caught.value)


def test_well_known_types_inside_any() -> None:
    registry = default_registry()
    registry.register(duration_pb2.Duration)
    operation = operations_pb2.Operation(name="operations/x", done=True)
    operation.metadata.Pack(duration_pb2.Duration(seconds=3))
    operation.response.Pack(empty_pb2.Empty())
    printed = operation_to_dict(operation, registry)
    # A type whose JSON is not an object sits under "value" (not the raw base64 form).
    assert printed["metadata"] == {"@type": "type.googleapis.com/google.protobuf.Duration", "value": "3s"}
    assert printed["response"] == {"@type": "type.googleapis.com/google.protobuf.Empty"}
    assert operation_from_dict(printed, registry) == operation


def test_user_type_from_its_own_pool_prints_and_loads() -> None:
    registry = default_registry()
    file_proto = descriptor_pb2.FileDescriptorProto(name="json_user.proto", package="jsonuser.v1", syntax="proto3")
    message_proto = file_proto.message_type.add(name="Progress")
    message_proto.field.add(name="rows_done", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_INT64, label=1)
    message_proto.field.add(
        name="instance",
        number=2,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
        type_name=".google.cloud.financialservices.v1.Instance",
        label=1,
    )
    file_proto.dependency.append("financialservices_v1.proto")
    registry.register_file_descriptor_set(descriptor_pb2.FileDescriptorSet(file=[file_proto]))
    progress_class = registry.message_class("type.googleapis.com/jsonuser.v1.Progress")
    progress = progress_class()
    progress.rows_done = 12  # type: ignore[attr-defined]
    progress.instance.state = fs.Instance.State.UPDATING  # type: ignore[attr-defined]
    operation = operations_pb2.Operation(name="operations/x")
    operation.metadata.Pack(progress)
    printed = operation_to_dict(operation, registry)
    assert printed["metadata"] == {
        "@type": "type.googleapis.com/jsonuser.v1.Progress",
        "rowsDone": "12",
        "instance": {"state": "UPDATING"},
    }
    assert operation_from_dict(printed, registry) == operation


def test_list_to_dict_token_and_unreachable() -> None:
    registry = default_registry()
    operations = [operations_pb2.Operation(name="operations/a"), operations_pb2.Operation(name="operations/b")]
    assert list_to_dict([], registry) == {"operations": []}
    printed = list_to_dict(operations, registry, next_page_token="tok", unreachable=["projects/p/locations/x"])
    assert list(printed) == ["operations", "nextPageToken", "unreachable"]
    assert printed["nextPageToken"] == "tok"
    assert printed["unreachable"] == ["projects/p/locations/x"]
    loaded = list_from_dict(printed, registry)
    assert [operation.name for operation in loaded.operations] == ["operations/a", "operations/b"]
    assert loaded.next_page_token == "tok"
    assert list(loaded.unreachable) == ["projects/p/locations/x"]


def test_non_ascii_text_is_kept() -> None:
    registry = default_registry()
    operation = operations_pb2.Operation(name="operations/x", done=True)
    operation.error.CopyFrom(status_pb2.Status(code=code_pb2.FAILED_PRECONDITION, message="实例不存在"))
    text = operation_to_json(operation, registry)
    assert "实例不存在" in text
    assert operation_from_json(text, registry) == operation


# --- malformed input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"name": "operations/x", "color": "red"}, "color"),
        ({"name": 7}, "name must be a string"),
        ({"name": "operations/x", "done": "true"}, "done must be true or false"),
        ({"name": "operations/x", "metadata": "x"}, "metadata must be a JSON object"),
        ({"name": "operations/x", "metadata": {"verb": "create"}}, "no '@type'"),
        ({"name": "o", "response": {"@type": "t/google.protobuf.Empty"}, "error": {"code": 1}}, "both"),
        ({"name": "o", "error": {"code": "x"}}, "error.code"),
        ({"name": "o", "error": {"code": True}}, "error.code"),
        ({"name": "o", "error": {"code": 1, "message": 2}}, "error.message"),
        ({"name": "o", "error": {"code": 1, "details": {}}}, "error.details"),
        ({"name": "o", "error": {"code": 1, "why": "?"}}, "why"),
        ({"name": "o", "response": {"@type": "t/example.X", "value": "!!not base64!!"}}, "not base64"),
        (
            {"name": "o", "response": {"@type": type_url_of(fs.Instance), "state": "MELTING"}},
            "does not parse as",
        ),
    ],
)
def test_malformed_operations_raise_value_error(data: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        operation_from_dict(data, default_registry())


def test_ignore_unknown_fields_skips_unknown_keys_everywhere() -> None:
    data = {
        "name": "operations/x",
        "extra": 1,
        "metadata": {"@type": type_url_of(fs.OperationMetadata), "verb": "create", "newField": True},
        "error": {"code": 5, "message": "gone", "future": []},
    }
    operation = operation_from_dict(data, default_registry(), ignore_unknown_fields=True)
    assert operation.error.code == 5
    assert operation.metadata.type_url == type_url_of(fs.OperationMetadata)


def test_argument_types() -> None:
    registry = default_registry()
    with pytest.raises(TypeError, match=r"google\.longrunning\.Operation"):
        operation_to_dict(fs.Instance(), registry)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="TypeRegistry"):
        operation_to_dict(operations_pb2.Operation(), {})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="TypeRegistry"):
        operation_from_dict({}, None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="text must be a str"):
        operation_from_json(b"{}", registry)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        operation_from_json("{", registry)
    with pytest.raises(ValueError, match="must be a JSON object"):
        operation_from_json("[]", registry)
    with pytest.raises(ValueError, match="operations must be a list"):
        list_from_dict({"operations": {}}, registry)
    with pytest.raises(ValueError, match="unknown field"):
        list_from_dict({"operations": [], "next": "x"}, registry)
