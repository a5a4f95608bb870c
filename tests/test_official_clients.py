"""Google's official client libraries, unchanged, against the emulator over an insecure channel.

The ``AMLClient`` tests and the rollout test run over both transports: gRPC, and
REST against the emulator's HTTP/JSON gateway (more REST cases:
``test_official_rest_clients.py``).
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from google.api_core import exceptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import financialservices_v1, servicemanagement_v1
from google.cloud.financialservices_v1.services.aml.transports import AMLGrpcTransport
from google.cloud.servicemanagement_v1.services.service_manager.transports import ServiceManagerGrpcTransport
from google.longrunning import operations_pb2

from lro_grpc.emulator import DURATION_HEADER, OUTCOME_HEADER, Emulator

PARENT = "projects/demo-project/locations/us-central1"
SERVICE = "endpointsapis.appspot.com"


@pytest.fixture
def emu() -> Iterator[Emulator]:
    # 20x real time: an operation of 4 simulated seconds finishes in 0.2 s.
    with Emulator(speed=20, rest_port=0) as emulator:
        yield emulator


@pytest.fixture
def channel(emu: Emulator) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(emu.target) as channel:
        yield channel


@pytest.fixture(params=["grpc", "rest"])
def aml(request: pytest.FixtureRequest, emu: Emulator, channel: grpc.Channel) -> financialservices_v1.AMLClient:
    if request.param == "rest":
        return financialservices_v1.AMLClient(
            transport="rest", credentials=AnonymousCredentials(), client_options={"api_endpoint": emu.rest_url}
        )
    return financialservices_v1.AMLClient(transport=AMLGrpcTransport(channel=channel))


@pytest.fixture
def manager(channel: grpc.Channel) -> servicemanagement_v1.ServiceManagerClient:
    return servicemanagement_v1.ServiceManagerClient(transport=ServiceManagerGrpcTransport(channel=channel))


@pytest.fixture
def rest_manager(emu: Emulator) -> servicemanagement_v1.ServiceManagerClient:
    return servicemanagement_v1.ServiceManagerClient(
        transport="rest", credentials=AnonymousCredentials(), client_options={"api_endpoint": emu.rest_url}
    )


def test_create_instance_result_is_the_instance(aml: financialservices_v1.AMLClient) -> None:
    future = aml.create_instance(
        request=financialservices_v1.CreateInstanceRequest(
            parent=PARENT,
            instance_id="aml-1",
            instance=financialservices_v1.Instance(labels={"team": "risk"}, kms_key="projects/k/cryptoKeys/key"),
        ),
        metadata=[(DURATION_HEADER, "4")],
    )
    assert not future.operation.done  # the client has to poll

    instance = future.result(timeout=30)

    assert isinstance(instance, financialservices_v1.Instance)
    assert instance.name == f"{PARENT}/instances/aml-1"
    assert instance.state == financialservices_v1.Instance.State.ACTIVE
    assert dict(instance.labels) == {"team": "risk"}
    assert instance.kms_key == "projects/k/cryptoKeys/key"
    metadata = future.metadata
    assert isinstance(metadata, financialservices_v1.OperationMetadata)
    assert (metadata.verb, metadata.target, metadata.api_version) == ("create", instance.name, "v1")
    assert metadata.end_time == instance.update_time


def test_failed_operation_raises_from_result(aml: financialservices_v1.AMLClient) -> None:
    future = aml.create_instance(
        request={"parent": PARENT, "instance_id": "aml-bad"},
        metadata=[(DURATION_HEADER, "0"), (OUTCOME_HEADER, "fail")],
    )
    with pytest.raises(exceptions.FailedPrecondition, match="simulated failure"):
        future.result(timeout=30)


def test_operations_mixin_methods(aml: financialservices_v1.AMLClient) -> None:
    done = aml.create_instance(request={"parent": PARENT, "instance_id": "a"}, metadata=[(DURATION_HEADER, "0")])
    running = aml.create_instance(request={"parent": PARENT, "instance_id": "b"})
    done_name, running_name = done.operation.name, running.operation.name

    fetched = aml.get_operation(operations_pb2.GetOperationRequest(name=done_name))
    assert fetched.done
    assert fetched.response.type_url == "type.googleapis.com/google.cloud.financialservices.v1.Instance"

    listed = aml.list_operations(operations_pb2.ListOperationsRequest(name=PARENT))
    assert [op.name for op in listed.operations] == [done_name, running_name]
    running_only = aml.list_operations(operations_pb2.ListOperationsRequest(name=PARENT, filter="done=false"))
    assert [op.name for op in running_only.operations] == [running_name]

    aml.cancel_operation(operations_pb2.CancelOperationRequest(name=running_name))
    with pytest.raises(exceptions.Cancelled):
        running.result(timeout=30)
    metadata = running.metadata
    assert metadata is not None
    assert metadata.requested_cancellation

    aml.delete_operation(operations_pb2.DeleteOperationRequest(name=done_name))
    with pytest.raises(exceptions.NotFound):
        aml.get_operation(operations_pb2.GetOperationRequest(name=done_name))


@pytest.mark.parametrize("transport", ["grpc", "rest"])
def test_create_service_rollout_result_is_the_rollout(request: pytest.FixtureRequest, transport: str) -> None:
    manager: servicemanagement_v1.ServiceManagerClient = request.getfixturevalue(
        "manager" if transport == "grpc" else "rest_manager"
    )
    # Over REST the client cannot poll an "operations/..." name (docs/emulator-rest.md): it resolves only
    # an operation that is done in the answer that started it.
    duration = "4" if transport == "grpc" else "0"
    future = manager.create_service_rollout(
        service_name=SERVICE,
        rollout=servicemanagement_v1.Rollout(
            rollout_id="2016-07-16r2",
            traffic_percent_strategy=servicemanagement_v1.Rollout.TrafficPercentStrategy(
                percentages={"2016-07-16r1": 100.0}
            ),
        ),
        metadata=[(DURATION_HEADER, duration)],
    )
    assert future.operation.name == f"operations/rollouts.{SERVICE}:2016-07-16r2"
    assert future.operation.done == (duration == "0")

    rollout = future.result(timeout=30)

    assert isinstance(rollout, servicemanagement_v1.Rollout)
    assert rollout.rollout_id == "2016-07-16r2"
    assert rollout.service_name == SERVICE
    assert rollout.status == servicemanagement_v1.Rollout.RolloutStatus.SUCCESS
    assert dict(rollout.traffic_percent_strategy.percentages) == {"2016-07-16r1": 100.0}
    metadata = future.metadata
    assert isinstance(metadata, servicemanagement_v1.OperationMetadata)
    assert metadata.progress_percentage == 100
    assert list(metadata.resource_names) == [f"services/{SERVICE}/rollouts/2016-07-16r2"]
    assert {step.status for step in metadata.steps} == {servicemanagement_v1.OperationMetadata.Status.DONE}


def test_service_manager_operations(manager: servicemanagement_v1.ServiceManagerClient) -> None:
    ours = manager.create_service_rollout(service_name=SERVICE, rollout={"rollout_id": "r1"})
    manager.create_service_rollout(service_name="other.example.com", rollout={"rollout_id": "r1"})

    listed = manager.list_operations(
        operations_pb2.ListOperationsRequest(name="operations", filter=f"serviceName={SERVICE}")
    )
    assert [op.name for op in listed.operations] == [ours.operation.name]
    # ServiceManagerClient exposes only list_operations; the rest is the transport's operations client.
    operations = manager.transport.operations_client
    assert not operations.get_operation(ours.operation.name).done
    listed_again = list(operations.list_operations("operations", f"serviceName={SERVICE}"))
    assert [op.name for op in listed_again] == [ours.operation.name]
    # Service Management offers no cancel or delete: the emulator says so as the API would.
    with pytest.raises(exceptions.MethodNotImplemented):
        operations.cancel_operation(ours.operation.name)
    with pytest.raises(exceptions.MethodNotImplemented):
        operations.delete_operation(ours.operation.name)
    # What cancels a rollout is a newer one for the same service.
    newer = manager.create_service_rollout(service_name=SERVICE, rollout={"rollout_id": "r2"})
    with pytest.raises(exceptions.Cancelled):
        ours.result(timeout=30)
    assert not newer.operation.done


def test_submit_config_source(manager: servicemanagement_v1.ServiceManagerClient) -> None:
    future = manager.submit_config_source(
        service_name=SERVICE,
        config_source=servicemanagement_v1.ConfigSource(
            files=[servicemanagement_v1.ConfigFile(file_path="api.yaml", file_contents=b"name: x")]
        ),
        metadata=[(DURATION_HEADER, "0")],
    )
    response = future.result(timeout=30)
    assert isinstance(response, servicemanagement_v1.SubmitConfigSourceResponse)
    assert response.service_config.name == SERVICE
