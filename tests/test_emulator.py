"""The emulator's RPCs and semantics, driven with raw generated stubs over loopback."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import grpc
import pytest
from google.longrunning import operations_pb2
from google.protobuf import duration_pb2, empty_pb2
from google.rpc import code_pb2, error_details_pb2

from lro_grpc import OperationsClient
from lro_grpc._generated import financialservices_v1_pb2 as fs
from lro_grpc._generated import financialservices_v1_pb2_grpc as fs_grpc
from lro_grpc._generated import operations_pb2_grpc
from lro_grpc._generated import servicemanagement_v1_pb2 as sm
from lro_grpc._generated import servicemanagement_v1_pb2_grpc as sm_grpc
from lro_grpc.emulator import DURATION_HEADER, OUTCOME_HEADER, Emulator

PARENT = "projects/demo-project/locations/us-central1"
SERVICE = "endpointsapis.appspot.com"
START = datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc)
STEP = sm.OperationMetadata.Status


class Stubs:
    """The three generated stubs over one channel."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.operations = operations_pb2_grpc.OperationsStub(channel)
        self.aml = fs_grpc.AMLStub(channel)
        self.manager = sm_grpc.ServiceManagerStub(channel)

    def get(self, name: str) -> operations_pb2.Operation:
        return self.operations.GetOperation(operations_pb2.GetOperationRequest(name=name), timeout=5)

    def list(self, name: str, **fields: object) -> operations_pb2.ListOperationsResponse:
        return self.operations.ListOperations(operations_pb2.ListOperationsRequest(name=name, **fields), timeout=5)

    def cancel(self, name: str) -> None:
        self.operations.CancelOperation(operations_pb2.CancelOperationRequest(name=name), timeout=5)

    def delete(self, name: str) -> None:
        self.operations.DeleteOperation(operations_pb2.DeleteOperationRequest(name=name), timeout=5)

    def create_instance(
        self,
        instance_id: str = "inst-1",
        *,
        parent: str = PARENT,
        metadata: tuple[tuple[str, str], ...] = (),
        **fields: object,
    ) -> operations_pb2.Operation:
        request = fs.CreateInstanceRequest(parent=parent, instance_id=instance_id, **fields)
        return self.aml.CreateInstance(request, metadata=metadata, timeout=5)

    def create_rollout(
        self, rollout_id: str = "", *, service: str = SERVICE, metadata: tuple[tuple[str, str], ...] = ()
    ) -> operations_pb2.Operation:
        request = sm.CreateServiceRolloutRequest(service_name=service, rollout=sm.Rollout(rollout_id=rollout_id))
        return self.manager.CreateServiceRollout(request, metadata=metadata, timeout=5)


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(speed=0, start_time=START, default_duration=60) as emulator:
        yield emulator


@pytest.fixture
def stubs(emu: Emulator) -> Iterator[Stubs]:
    with grpc.insecure_channel(emu.target) as channel:
        yield Stubs(channel)


def fs_metadata(operation: operations_pb2.Operation) -> fs.OperationMetadata:
    metadata = fs.OperationMetadata()
    assert operation.metadata.Unpack(metadata)
    return metadata


def sm_metadata(operation: operations_pb2.Operation) -> sm.OperationMetadata:
    metadata = sm.OperationMetadata()
    assert operation.metadata.Unpack(metadata)
    return metadata


def rpc_error(call: object, *args: object, **kwargs: object) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(*args, **kwargs)  # type: ignore[operator]
    return caught.value


# --- Financial Services -----------------------------------------------------------------------------


def test_create_instance_starts_a_running_operation(stubs: Stubs) -> None:
    operation = stubs.create_instance("inst-1")

    assert operation.name.startswith(f"{PARENT}/operations/operation-")
    assert not operation.done
    assert operation.WhichOneof("result") is None
    assert operation.metadata.type_url == "type.googleapis.com/google.cloud.financialservices.v1.OperationMetadata"
    metadata = fs_metadata(operation)
    assert metadata.create_time.ToDatetime(tzinfo=timezone.utc) == START
    assert not metadata.HasField("end_time")
    assert metadata.target == f"{PARENT}/instances/inst-1"
    assert metadata.verb == "create"
    assert metadata.api_version == "v1"
    assert metadata.requested_cancellation is False
    assert stubs.get(operation.name) == operation


def test_create_instance_finishes_with_the_instance(emu: Emulator, stubs: Stubs) -> None:
    kms_key = "projects/kms/locations/us-central1/keyRings/ring/cryptoKeys/key"
    operation = stubs.create_instance("inst-1", instance=fs.Instance(labels={"team": "risk"}, kms_key=kms_key))

    emu.advance(59.9)
    assert not stubs.get(operation.name).done
    emu.advance(0.1)
    done = stubs.get(operation.name)

    assert done.done
    assert done.response.type_url == "type.googleapis.com/google.cloud.financialservices.v1.Instance"
    instance = fs.Instance()
    assert done.response.Unpack(instance)
    assert instance.name == f"{PARENT}/instances/inst-1"
    assert instance.state == fs.Instance.State.ACTIVE
    assert dict(instance.labels) == {"team": "risk"}
    assert instance.kms_key == kms_key
    assert instance.create_time.ToDatetime(tzinfo=timezone.utc) == START
    assert instance.update_time.ToDatetime(tzinfo=timezone.utc) == START + timedelta(seconds=60)
    metadata = fs_metadata(done)
    assert metadata.end_time == instance.update_time
    assert metadata.create_time.ToDatetime(tzinfo=timezone.utc) == START


def test_update_and_delete_instance(emu: Emulator, stubs: Stubs) -> None:
    name = f"{PARENT}/instances/inst-1"
    update = stubs.aml.UpdateInstance(
        fs.UpdateInstanceRequest(instance=fs.Instance(name=name, labels={"env": "prod"})), timeout=5
    )
    delete = stubs.aml.DeleteInstance(fs.DeleteInstanceRequest(name=name), timeout=5)
    assert (fs_metadata(update).verb, fs_metadata(update).target) == ("update", name)
    assert (fs_metadata(delete).verb, fs_metadata(delete).target) == ("delete", name)
    assert update.name.startswith(f"{PARENT}/operations/")

    emu.advance(60)
    instance = fs.Instance()
    assert stubs.get(update.name).response.Unpack(instance)
    assert (instance.name, dict(instance.labels), instance.state) == (name, {"env": "prod"}, fs.Instance.State.ACTIVE)
    deleted = stubs.get(delete.name)
    assert deleted.response.type_url == "type.googleapis.com/google.protobuf.Empty"
    assert deleted.response.Unpack(empty_pb2.Empty())


def test_duration_header_zero_finishes_at_once(stubs: Stubs) -> None:
    instant = stubs.create_instance("now", metadata=((DURATION_HEADER, "0"),))
    assert instant.done
    assert instant.HasField("response")
    assert fs_metadata(instant).HasField("end_time")


def test_per_rpc_durations_override_the_default() -> None:
    with Emulator(speed=0, durations={"CreateInstance": 10}) as emu, grpc.insecure_channel(emu.target) as channel:
        stubs = Stubs(channel)
        instance_op = stubs.create_instance("a")
        rollout_op = stubs.create_rollout()
        emu.advance(10)
        assert stubs.get(instance_op.name).done
        assert not stubs.get(rollout_op.name).done


def test_outcome_header_fail_ends_with_error_info(emu: Emulator, stubs: Stubs) -> None:
    operation = stubs.create_instance("bad", metadata=((OUTCOME_HEADER, "fail"), (DURATION_HEADER, "5")))
    assert not operation.done
    emu.advance(5)
    failed = stubs.get(operation.name)

    assert failed.done
    assert failed.WhichOneof("result") == "error"
    assert failed.error.code == code_pb2.FAILED_PRECONDITION
    assert "fail" in failed.error.message
    info = error_details_pb2.ErrorInfo()
    assert failed.error.details[0].Unpack(info)
    assert info.domain == "financialservices.googleapis.com"
    assert info.reason == "EMULATED_FAILURE"
    assert info.metadata["operation"] == operation.name
    assert fs_metadata(failed).HasField("end_time")


@pytest.mark.parametrize(
    ("header", "value"),
    [(DURATION_HEADER, "soon"), (DURATION_HEADER, "-1"), (DURATION_HEADER, "nan"), (OUTCOME_HEADER, "maybe")],
)
def test_bad_control_headers_are_invalid_argument(stubs: Stubs, header: str, value: str) -> None:
    error = rpc_error(stubs.create_instance, "x", metadata=((header, value),))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert header in error.details()
    assert repr(value) in error.details()


@pytest.mark.parametrize(
    ("fields", "field_name"),
    [
        ({"parent": "projects/p", "instance_id": "ok"}, "parent"),
        ({"parent": PARENT, "instance_id": ""}, "instance_id"),
        ({"parent": PARENT, "instance_id": "has/slash"}, "instance_id"),
    ],
)
def test_create_instance_validates_its_request(stubs: Stubs, fields: dict[str, str], field_name: str) -> None:
    error = rpc_error(stubs.aml.CreateInstance, fs.CreateInstanceRequest(**fields), timeout=5)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith(f"{field_name}:")
    assert repr(fields[field_name]) in error.details()


def test_request_id_makes_create_idempotent(stubs: Stubs) -> None:
    first = stubs.create_instance("inst-1", request_id="7a3c1b4e-0000-4000-8000-000000000001")
    again = stubs.create_instance("inst-1", request_id="7a3c1b4e-0000-4000-8000-000000000001")
    other = stubs.create_instance("inst-1", request_id="7a3c1b4e-0000-4000-8000-000000000002")
    assert again.name == first.name
    assert other.name != first.name


def test_operation_ids_are_unique(stubs: Stubs) -> None:
    names = {stubs.create_instance(f"inst-{index}").name for index in range(50)}
    assert len(names) == 50


# --- Service Management ------------------------------------------------------------------------------


def test_rollout_metadata_evolves_to_success(emu: Emulator, stubs: Stubs) -> None:
    operation = stubs.create_rollout("2016-07-16r2")
    assert operation.name == f"operations/rollouts.{SERVICE}:2016-07-16r2"

    seen: list[tuple[int, list[int]]] = []
    for _ in range(7):
        current = stubs.get(operation.name)
        metadata = sm_metadata(current)
        assert list(metadata.resource_names) == [f"services/{SERVICE}/rollouts/2016-07-16r2"]
        assert metadata.start_time.ToDatetime(tzinfo=timezone.utc) == START
        seen.append((metadata.progress_percentage, [step.status for step in metadata.steps]))
        assert current.done == (metadata.progress_percentage == 100)
        emu.advance(10)

    progress = [percentage for percentage, _ in seen]
    assert progress == sorted(progress)
    assert progress[0] == 0
    assert progress[-1] == 100
    assert seen[0][1] == [STEP.IN_PROGRESS, STEP.NOT_STARTED, STEP.NOT_STARTED]
    assert seen[-1][1] == [STEP.DONE, STEP.DONE, STEP.DONE]
    for step_index in range(3):
        statuses = [steps[step_index] for _, steps in seen]
        # Each step goes NOT_STARTED -> IN_PROGRESS -> DONE, never back.
        order = {STEP.NOT_STARTED: 0, STEP.IN_PROGRESS: 1, STEP.DONE: 2}
        assert [order[status] for status in statuses] == sorted(order[status] for status in statuses)
    assert any(STEP.NOT_STARTED in steps and STEP.IN_PROGRESS in steps for _, steps in seen)

    done = stubs.get(operation.name)
    rollout = sm.Rollout()
    assert done.response.Unpack(rollout)
    assert rollout.rollout_id == "2016-07-16r2"
    assert rollout.service_name == SERVICE
    assert rollout.status == sm.Rollout.RolloutStatus.SUCCESS
    assert rollout.create_time.ToDatetime(tzinfo=timezone.utc) == START
    assert rollout.created_by


def test_rollout_keeps_the_strategy_and_generates_an_id(stubs: Stubs) -> None:
    rollout = sm.Rollout(traffic_percent_strategy=sm.Rollout.TrafficPercentStrategy(percentages={"cfg-1": 100.0}))
    operation = stubs.manager.CreateServiceRollout(
        sm.CreateServiceRolloutRequest(service_name=SERVICE, rollout=rollout),
        metadata=((DURATION_HEADER, "0"),),
        timeout=5,
    )
    result = sm.Rollout()
    assert operation.response.Unpack(result)
    assert result.rollout_id.startswith("2026-01-05r")
    assert operation.name == f"operations/rollouts.{SERVICE}:{result.rollout_id}"
    assert dict(result.traffic_percent_strategy.percentages) == {"cfg-1": 100.0}


def test_reused_rollout_id_is_already_exists(stubs: Stubs) -> None:
    stubs.create_rollout("r1")
    error = rpc_error(stubs.create_rollout, "r1")
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS
    assert f"operations/rollouts.{SERVICE}:r1" in error.details()


def test_rollout_request_is_validated(stubs: Stubs) -> None:
    error = rpc_error(stubs.create_rollout, service="")
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("service_name:")
    mismatch = sm.CreateServiceRolloutRequest(
        service_name=SERVICE, rollout=sm.Rollout(service_name="other.example.com")
    )
    error = rpc_error(stubs.manager.CreateServiceRollout, mismatch, timeout=5)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "rollout.service_name" in error.details()
    assert "'other.example.com'" in error.details()


def test_submit_config_source(emu: Emulator, stubs: Stubs) -> None:
    request = sm.SubmitConfigSourceRequest(
        service_name=SERVICE,
        config_source=sm.ConfigSource(
            files=[sm.ConfigFile(file_path="api.yaml", file_contents=b"type: google.api.Service", file_type=1)]
        ),
    )
    operation = stubs.manager.SubmitConfigSource(request, timeout=5)
    assert operation.name.startswith(f"operations/serviceConfigs.{SERVICE}:")
    emu.advance(60)
    response = sm.SubmitConfigSourceResponse()
    assert stubs.get(operation.name).response.Unpack(response)
    assert response.service_config.name == SERVICE
    assert response.service_config.id
    assert sm_metadata(stubs.get(operation.name)).resource_names == [
        f"services/{SERVICE}/configs/{response.service_config.id}"
    ]

    error = rpc_error(stubs.manager.SubmitConfigSource, sm.SubmitConfigSourceRequest(service_name=SERVICE), timeout=5)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("config_source:")


def test_service_lifecycle_operations(emu: Emulator, stubs: Stubs) -> None:
    created = stubs.manager.CreateService(
        sm.CreateServiceRequest(service=sm.ManagedService(service_name=SERVICE, producer_project_id="prod")), timeout=5
    )
    deleted = stubs.manager.DeleteService(sm.DeleteServiceRequest(service_name=SERVICE), timeout=5)
    undeleted = stubs.manager.UndeleteService(sm.UndeleteServiceRequest(service_name=SERVICE), timeout=5)
    emu.advance(60)

    managed = sm.ManagedService()
    assert stubs.get(created.name).response.Unpack(managed)
    assert (managed.service_name, managed.producer_project_id) == (SERVICE, "prod")
    assert stubs.get(deleted.name).response.Unpack(empty_pb2.Empty())
    restored = sm.UndeleteServiceResponse()
    assert stubs.get(undeleted.name).response.Unpack(restored)
    assert restored.service.service_name == SERVICE


# --- Get, cancel, delete -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", [f"{PARENT}/operations/operation-unknown", "operations/rollouts.x:unknown"])
def test_get_unknown_is_not_found(stubs: Stubs, name: str) -> None:
    error = rpc_error(stubs.get, name)
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert name in error.details()


@pytest.mark.parametrize("name", ["", "projects/p/operations/x", "operations/", "operations/a/b", "instances/x"])
def test_malformed_names_are_invalid_argument(stubs: Stubs, name: str) -> None:
    for call in (stubs.get, stubs.cancel, stubs.delete):
        error = rpc_error(call, name)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error.details().startswith("name:")
        assert repr(name) in error.details()


def test_cancel_stops_a_running_operation(emu: Emulator, stubs: Stubs) -> None:
    operation = stubs.create_instance("inst-1")
    emu.advance(10)
    stubs.cancel(operation.name)
    cancelled = stubs.get(operation.name)

    assert cancelled.done
    assert cancelled.error.code == code_pb2.CANCELLED == 1
    metadata = fs_metadata(cancelled)
    assert metadata.requested_cancellation
    assert metadata.end_time.ToDatetime(tzinfo=timezone.utc) == START + timedelta(seconds=10)
    emu.advance(3600)
    assert stubs.get(operation.name).error.code == code_pb2.CANCELLED


def test_a_newer_rollout_marks_the_running_one_cancelled(emu: Emulator, stubs: Stubs) -> None:
    operation = stubs.create_rollout("r1")
    emu.advance(30)
    stubs.create_rollout("r2")
    cancelled = stubs.get(operation.name)
    assert cancelled.error.code == code_pb2.CANCELLED
    steps = [step.status for step in sm_metadata(cancelled).steps]
    assert steps == [STEP.DONE, STEP.CANCELLED, STEP.NOT_STARTED]
    assert sm_metadata(cancelled).progress_percentage == 50


def test_cancel_near_the_end_lets_it_finish(emu: Emulator, stubs: Stubs) -> None:
    operation = stubs.create_instance("inst-1")
    emu.advance(59)  # within the default 2 s grace window
    stubs.cancel(operation.name)
    still_running = stubs.get(operation.name)
    assert not still_running.done
    assert fs_metadata(still_running).requested_cancellation
    emu.advance(1)
    finished = stubs.get(operation.name)
    assert finished.done
    assert finished.HasField("response")
    assert fs_metadata(finished).requested_cancellation


def test_cancel_of_a_done_operation_changes_nothing(emu: Emulator, stubs: Stubs) -> None:
    operation = stubs.create_instance("inst-1", metadata=((DURATION_HEADER, "0"),))
    before = stubs.get(operation.name)
    stubs.cancel(operation.name)
    assert stubs.get(operation.name) == before


def test_cancel_and_delete_unknown_are_not_found(stubs: Stubs) -> None:
    for call in (stubs.cancel, stubs.delete):
        error = rpc_error(call, f"{PARENT}/operations/nothing-here")
        assert error.code() == grpc.StatusCode.NOT_FOUND


def test_delete_removes_the_record_without_cancelling(emu: Emulator, stubs: Stubs) -> None:
    running = stubs.create_instance("inst-1")
    done = stubs.create_instance("inst-2", metadata=((DURATION_HEADER, "0"),))
    stubs.delete(running.name)
    stubs.delete(done.name)
    for name in (running.name, done.name):
        assert rpc_error(stubs.get, name).code() == grpc.StatusCode.NOT_FOUND
        assert rpc_error(stubs.delete, name).code() == grpc.StatusCode.NOT_FOUND
    assert stubs.list(PARENT).operations == []
    assert emu.operation_count() == 0


# --- Retention ---------------------------------------------------------------------------------------


def test_records_expire_after_retention(emu: Emulator, stubs: Stubs) -> None:
    finished = stubs.create_instance("inst-1", metadata=((DURATION_HEADER, "0"),))
    long_running = stubs.create_instance("inst-2", metadata=((DURATION_HEADER, str(60 * 86400)),))

    emu.advance(timedelta(days=30) - timedelta(seconds=1))
    assert stubs.get(finished.name).done
    assert [op.name for op in stubs.list(PARENT).operations] == [finished.name, long_running.name]

    emu.advance(1)
    error = rpc_error(stubs.get, finished.name)
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert [op.name for op in stubs.list(PARENT).operations] == [long_running.name]
    assert rpc_error(stubs.cancel, finished.name).code() == grpc.StatusCode.NOT_FOUND
    # Running operations never expire; once done their own retention starts.
    assert not stubs.get(long_running.name).done
    assert emu.purge_expired() == 1
    assert emu.operation_count() == 1


def test_retention_is_configurable() -> None:
    with Emulator(speed=0, retention=timedelta(hours=1)) as emu, grpc.insecure_channel(emu.target) as channel:
        stubs = Stubs(channel)
        operation = stubs.create_instance("inst-1", metadata=((DURATION_HEADER, "0"),))
        emu.advance(3599)
        assert stubs.get(operation.name).done
        emu.advance(1)
        assert rpc_error(stubs.get, operation.name).code() == grpc.StatusCode.NOT_FOUND


# --- List --------------------------------------------------------------------------------------------


def test_list_by_parent_and_api(stubs: Stubs) -> None:
    here = stubs.create_instance("a")
    stubs.create_instance("b", parent="projects/demo-project/locations/europe-west1")
    rollout = stubs.create_rollout("r1")

    assert [op.name for op in stubs.list(PARENT).operations] == [here.name]
    assert [op.name for op in stubs.list(f"{PARENT}/operations").operations] == [here.name]
    by_service = f"serviceName={SERVICE}"
    assert [op.name for op in stubs.list("operations", filter=by_service).operations] == [rollout.name]
    assert [op.name for op in stubs.list("", filter=by_service).operations] == [rollout.name]
    # Service Management's list "name" is "Not used": any value that is not a
    # Financial Services parent lists Service Management operations.
    assert [op.name for op in stubs.list("anything/at-all", filter=by_service).operations] == [rollout.name]
    assert stubs.list("projects/other/locations/us-east1").operations == []
    listed = stubs.list(PARENT).operations[0]
    assert listed == stubs.get(here.name)


def test_list_page_size_default_and_maximum(stubs: Stubs) -> None:
    futures = [
        stubs.aml.CreateInstance.future(fs.CreateInstanceRequest(parent=PARENT, instance_id=f"i-{index}"), timeout=30)
        for index in range(1005)
    ]
    assert len({future.result().name for future in futures}) == 1005
    default_page = stubs.list(PARENT)
    assert len(default_page.operations) == 100
    assert default_page.next_page_token
    largest = stubs.list(PARENT, page_size=5000)
    assert len(largest.operations) == 1000
    rest = stubs.list(PARENT, page_size=5000, page_token=largest.next_page_token)
    assert len(rest.operations) == 5
    assert rest.next_page_token == ""


def test_list_pages_through_everything_once(stubs: Stubs) -> None:
    created = [stubs.create_instance(f"i-{index}").name for index in range(23)]
    seen: list[str] = []
    token = ""
    while True:
        page = stubs.list(PARENT, page_size=5, page_token=token)
        assert len(page.operations) <= 5
        seen.extend(op.name for op in page.operations)
        token = page.next_page_token
        if not token:
            break
    assert seen == created


def test_list_filters(emu: Emulator, stubs: Stubs) -> None:
    done_op = stubs.create_instance("done", metadata=((DURATION_HEADER, "0"),))
    running_op = stubs.create_instance("running")
    rollout_a = stubs.create_rollout("r1", metadata=((DURATION_HEADER, "0"),))
    rollout_b = stubs.create_rollout("r2", service="other.example.com")

    def names(name: str, filter_text: str) -> list[str]:
        return [op.name for op in stubs.list(name, filter=filter_text).operations]

    assert names(PARENT, "done=true") == [done_op.name]
    assert names(PARENT, "done = false") == [running_op.name]
    assert names(PARENT, "") == [done_op.name, running_op.name]
    assert names(PARENT, "  done = true AND done = false ") == []
    assert names(PARENT, "done=true OR done=false") == [done_op.name, running_op.name]
    assert names("operations", f"serviceName={SERVICE}") == [rollout_a.name]
    assert names("operations", 'serviceName="other.example.com"') == [rollout_b.name]
    assert names("operations", f"serviceName={SERVICE} AND status=in_progress") == []
    assert names("operations", f"serviceName={SERVICE} AND status=done") == [rollout_a.name]
    emu.advance(60)
    assert names(PARENT, "done=true") == [done_op.name, running_op.name]


@pytest.mark.parametrize(
    ("fields", "mentions"),
    [
        ({"filter": "state=DONE"}, ["filter", "'state'"]),
        ({"filter": "done=maybe"}, ["filter", "'maybe'"]),
        ({"filter": "done"}, ["filter", "'done'"]),
        ({"page_size": -1}, ["page_size", "-1"]),
        ({"filter": "done=true AND"}, ["filter", "'done=true AND'"]),
        ({"filter": "serviceName=x"}, ["filter", "'serviceName'"]),
        ({"page_size": -1}, ["page_size", "-1"]),
        ({"page_token": "not-a-token!"}, ["page_token", "'not-a-token!'"]),
        ({"filter": "status=done", "name": "operations"}, ["filter", "serviceName is required"]),
        ({"filter": "", "name": "operations"}, ["filter", "serviceName is required"]),
        ({"filter": f"serviceName={SERVICE} AND done=true", "name": "operations"}, ["filter", "'done'"]),
    ],
)
def test_list_rejects_bad_requests(stubs: Stubs, fields: dict[str, object], mentions: list[str]) -> None:
    fields = {"name": PARENT, **fields}
    error = rpc_error(stubs.list, **fields)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    for text in mentions:
        assert text in error.details()


def test_list_rejects_a_bad_parent(stubs: Stubs) -> None:
    error = rpc_error(stubs.list, "projects/p")
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("name:")
    assert "'projects/p'" in error.details()


def test_page_token_is_tied_to_its_query(stubs: Stubs) -> None:
    for index in range(3):
        stubs.create_instance(f"i-{index}")
    token = stubs.list(PARENT, page_size=1).next_page_token
    assert token
    error = rpc_error(stubs.list, PARENT, page_size=1, page_token=token, filter="done=false")
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "page_token" in error.details()


def test_pagination_while_inserting_concurrently(emu: Emulator, stubs: Stubs) -> None:
    existing = [stubs.create_instance(f"old-{index}").name for index in range(120)]
    stop = threading.Event()
    added: list[str] = []

    def insert() -> None:
        with grpc.insecure_channel(emu.target) as channel:
            writer = Stubs(channel)
            index = 0
            while not stop.is_set():
                added.append(writer.create_instance(f"new-{index}").name)
                index += 1

    writer = threading.Thread(target=insert)
    writer.start()
    try:
        seen: list[str] = []
        token = ""
        while True:
            page = stubs.list(PARENT, page_size=7, page_token=token)
            seen.extend(op.name for op in page.operations)
            # Records already listed go away meanwhile: an offset-based token would now skip some.
            stubs.delete(page.operations[0].name)
            token = page.next_page_token
            if not token:
                break
    finally:
        stop.set()
        writer.join()

    assert len(seen) == len(set(seen)), "a name was listed twice"
    assert seen[: len(existing)] == existing, "a pre-existing operation was missed or reordered"
    assert set(seen[len(existing) :]) <= set(added)
    assert added, "the writer made no progress"


# --- WaitOperation -----------------------------------------------------------------------------------


def wait_request(name: str, timeout: float | None = None) -> operations_pb2.WaitOperationRequest:
    request = operations_pb2.WaitOperationRequest(name=name)
    if timeout is not None:
        request.timeout.CopyFrom(duration_pb2.Duration(seconds=int(timeout), nanos=int(timeout % 1 * 1e9)))
    return request


@pytest.fixture
def waiting_emu() -> Iterator[Emulator]:
    """An emulator serving WaitOperation (off by default: neither API offers it)."""
    with Emulator(speed=0, start_time=START, default_duration=60, wait_rpc=True) as emulator:
        yield emulator


@pytest.fixture
def waiting(waiting_emu: Emulator) -> Iterator[Stubs]:
    with grpc.insecure_channel(waiting_emu.target) as channel:
        yield Stubs(channel)


def test_wait_is_unimplemented_unless_turned_on(stubs: Stubs) -> None:
    operation = stubs.create_instance("inst-1")
    error = rpc_error(stubs.operations.WaitOperation, wait_request(operation.name, 1), timeout=5)
    assert error.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "--wait-rpc" in error.details()


def test_wait_returns_once_done(waiting_emu: Emulator, waiting: Stubs) -> None:
    operation = waiting.create_instance("inst-1")
    timer = threading.Timer(0.2, waiting_emu.advance, args=(60,))
    timer.start()
    try:
        done = waiting.operations.WaitOperation(wait_request(operation.name, 30), timeout=30)
    finally:
        timer.cancel()
    assert done.done
    assert done.HasField("response")


def test_wait_follows_the_running_clock() -> None:
    with Emulator(speed=100, wait_rpc=True) as emu, grpc.insecure_channel(emu.target) as channel:
        stubs = Stubs(channel)
        operation = stubs.create_instance("inst-1", metadata=((DURATION_HEADER, "20"),))
        done = stubs.operations.WaitOperation(wait_request(operation.name, 30), timeout=30)
        assert done.done


def test_wait_gives_up_at_its_timeout(waiting: Stubs) -> None:
    operation = waiting.create_instance("inst-1")
    still_running = waiting.operations.WaitOperation(wait_request(operation.name, 0.2), timeout=10)
    assert not still_running.done
    assert still_running.name == operation.name


def test_wait_without_timeout_uses_the_configured_default() -> None:
    with Emulator(speed=0, wait_timeout=0.2, wait_rpc=True) as emu, grpc.insecure_channel(emu.target) as channel:
        stubs = Stubs(channel)
        operation = stubs.create_instance("inst-1")
        still_running = stubs.operations.WaitOperation(wait_request(operation.name), timeout=10)
        assert not still_running.done


def test_wait_answers_before_the_rpc_deadline(waiting: Stubs) -> None:
    operation = waiting.create_instance("inst-1")
    # The request asks for 30 s but the RPC deadline is 1 s: the operation comes back, not DEADLINE_EXCEEDED.
    still_running = waiting.operations.WaitOperation(wait_request(operation.name, 30), timeout=1)
    assert not still_running.done


def test_wait_validates_and_reports_missing_operations(waiting_emu: Emulator, waiting: Stubs) -> None:
    operation = waiting.create_instance("inst-1")
    error = rpc_error(
        waiting.operations.WaitOperation,
        operations_pb2.WaitOperationRequest(name=operation.name, timeout=duration_pb2.Duration(seconds=-1)),
        timeout=5,
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("timeout:")
    error = rpc_error(waiting.operations.WaitOperation, wait_request("operations/unknown", 1), timeout=5)
    assert error.code() == grpc.StatusCode.NOT_FOUND

    timer = threading.Timer(0.2, waiting.delete, args=(operation.name,))
    timer.start()
    try:
        error = rpc_error(waiting.operations.WaitOperation, wait_request(operation.name, 30), timeout=30)
    finally:
        timer.join()
    assert error.code() == grpc.StatusCode.NOT_FOUND


def test_wait_on_a_cancelled_operation_returns_at_once(waiting_emu: Emulator, waiting: Stubs) -> None:
    operation = waiting.create_instance("inst-1")
    timer = threading.Timer(0.2, waiting.cancel, args=(operation.name,))
    timer.start()
    try:
        cancelled = waiting.operations.WaitOperation(wait_request(operation.name, 30), timeout=30)
    finally:
        timer.join()
    assert cancelled.error.code == code_pb2.CANCELLED


# --- Concurrency -------------------------------------------------------------------------------------


def test_concurrent_creates_and_cancels_stay_consistent(emu: Emulator) -> None:
    per_thread = 40
    results: dict[int, tuple[list[str], list[str]]] = {}

    def work(worker: int) -> None:
        created: list[str] = []
        cancelled: list[str] = []
        with grpc.insecure_channel(emu.target) as channel:
            stubs = Stubs(channel)
            for index in range(per_thread):
                created.append(stubs.create_instance(f"w{worker}-{index}").name)
                if index % 3 == 0:
                    stubs.cancel(created[-1])
                    cancelled.append(created[-1])
        results[worker] = (created, cancelled)

    threads = [threading.Thread(target=work, args=(worker,)) for worker in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    created = [name for names, _ in results.values() for name in names]
    cancelled = {name for _, names in results.values() for name in names}
    assert len(created) == len(set(created)) == 6 * per_thread
    assert emu.operation_count() == len(created)
    with grpc.insecure_channel(emu.target) as channel:
        stubs = Stubs(channel)
        listed = stubs.list(PARENT, page_size=1000).operations
        assert sorted(op.name for op in listed) == sorted(created)
        for operation in listed:
            metadata = fs_metadata(operation)
            if operation.name in cancelled:
                assert operation.done
                assert operation.error.code == code_pb2.CANCELLED
                assert metadata.requested_cancellation
            else:
                assert not operation.done
                assert not metadata.requested_cancellation
        assert {op.name for op in stubs.list(PARENT, page_size=1000, filter="done=true").operations} == cancelled


def test_start_operation_starts_each_api_operation_over_grpc() -> None:
    with Emulator(speed=0) as emu, OperationsClient(emu.target) as client:
        instance = emu.start_operation("projects/p/locations/us-central1", duration=10)
        assert instance.startswith("projects/p/locations/us-central1/operations/")
        rollout = emu.start_operation("services/svc.example.com", duration=10)
        assert rollout.startswith("operations/rollouts.svc.example.com:")
        failing = emu.start_operation("projects/p/locations/us-east1", duration=0, fail=True)
        assert not client.get(instance).done and not client.get(rollout).done
        assert client.get(failing).error is not None
        emu.advance(10)
        assert client.get(instance).done and client.get(rollout).done
        for bad in ("projects/p", "services/", "operations", ""):
            with pytest.raises(ValueError, match="projects/PROJECT/locations/LOCATION or services/SERVICE_NAME"):
                emu.start_operation(bad)
        with pytest.raises(ValueError, match="duration"):
            emu.start_operation("services/svc.example.com", duration=-1)
