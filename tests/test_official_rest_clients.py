"""Google's official clients with ``transport="rest"``, unchanged, against the emulator's REST gateway.

``test_official_clients.py`` runs its ``AMLClient`` tests (create and wait, a
failed operation, the operations mixin) and a rollout's ``result()`` over REST
too; these are the rest.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from google.api_core import exceptions, operation, operations_v1
from google.auth.credentials import AnonymousCredentials
from google.cloud import financialservices_v1, servicemanagement_v1
from google.longrunning import operations_pb2

from lro_grpc.emulator import DURATION_HEADER, Emulator, Faults

PARENT = "projects/demo-project/locations/us-central1"
SERVICE = "endpointsapis.appspot.com"
DONE_AT_ONCE = [(DURATION_HEADER, "0")]


@pytest.fixture
def emu() -> Iterator[Emulator]:
    # 20x real time: an operation of 4 simulated seconds finishes in 0.2 s.
    with Emulator(speed=20, rest_port=0) as emulator:
        yield emulator


@pytest.fixture
def aml(emu: Emulator) -> financialservices_v1.AMLClient:
    return financialservices_v1.AMLClient(
        transport="rest", credentials=AnonymousCredentials(), client_options={"api_endpoint": emu.rest_url}
    )


@pytest.fixture
def manager(emu: Emulator) -> servicemanagement_v1.ServiceManagerClient:
    return servicemanagement_v1.ServiceManagerClient(
        transport="rest", credentials=AnonymousCredentials(), client_options={"api_endpoint": emu.rest_url}
    )


# --- Financial Services ---------------------------------------------------------------------------------


def test_update_and_delete_instance(aml: financialservices_v1.AMLClient) -> None:
    name = f"{PARENT}/instances/aml-1"
    updated = aml.update_instance(
        instance=financialservices_v1.Instance(name=name, labels={"a": "b"}),
        update_mask={"paths": ["labels"]},
        metadata=DONE_AT_ONCE,
    ).result(timeout=30)
    assert (updated.name, dict(updated.labels)) == (name, {"a": "b"})

    deleting = aml.delete_instance(name=name, metadata=DONE_AT_ONCE)
    deleting.result(timeout=30)
    assert deleting.metadata.verb == "delete"


def test_errors_map_to_the_clients_exceptions(emu: Emulator, aml: financialservices_v1.AMLClient) -> None:
    with pytest.raises(exceptions.BadRequest, match="instance_id"):
        aml.create_instance(parent=PARENT, instance_id="bad id", instance={})
    emu.faults = Faults(resource_exhausted=1.0, retry_delay=2, methods={"GetOperation"})
    with pytest.raises(exceptions.TooManyRequests) as caught:
        aml.get_operation(operations_pb2.GetOperationRequest(name=f"{PARENT}/operations/x"))
    assert caught.value.details == [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2s"}]


# --- Service Management ---------------------------------------------------------------------------------


def test_rollout_polling_fails_inside_the_client(manager: servicemanagement_v1.ServiceManagerClient) -> None:
    # The REST client's operations client knows GetOperation only as /v1/{name=**/operations/*}, which no
    # "operations/..." name matches: it raises before sending anything. Not the emulator's to fix.
    future = manager.create_service_rollout(service_name=SERVICE, rollout={"rollout_id": "r1"})
    assert not future.operation.done
    with pytest.raises(ValueError, match=r"\*\*/operations/\*"):
        future.result(timeout=30)


def test_rollout_polling_with_an_operations_client_that_knows_the_route(
    emu: Emulator, manager: servicemanagement_v1.ServiceManagerClient
) -> None:
    # The workaround docs/emulator-rest.md gives: an operations client with the API's published GetOperation rule.
    get_rule = {"method": "get", "uri": "/v1/{name=operations/**}"}
    operations = operations_v1.AbstractOperationsClient(
        transport=operations_v1.OperationsRestTransport(
            host=emu.rest_url,
            credentials=AnonymousCredentials(),
            http_options={"google.longrunning.Operations.GetOperation": [get_rule]},
        )
    )
    started = manager.create_service_rollout(
        service_name=SERVICE, rollout={"rollout_id": "r1"}, metadata=[(DURATION_HEADER, "4")]
    )
    assert not started.operation.done
    future = operation.from_gapic(
        started.operation,
        operations,
        servicemanagement_v1.Rollout,
        metadata_type=servicemanagement_v1.OperationMetadata,
    )

    assert future.result(timeout=30).rollout_id == "r1"
    assert future.metadata.progress_percentage == 100
    listed = manager.transport.operations_client.list_operations("operations", filter_=f"serviceName={SERVICE}")
    assert [op.name for op in listed] == [started.operation.name]


def test_service_lifecycle_and_config_submission(manager: servicemanagement_v1.ServiceManagerClient) -> None:
    created = manager.create_service(
        service=servicemanagement_v1.ManagedService(service_name=SERVICE, producer_project_id="prod"),
        metadata=DONE_AT_ONCE,
    ).result(timeout=30)
    assert (created.service_name, created.producer_project_id) == (SERVICE, "prod")

    submitted = manager.submit_config_source(
        service_name=SERVICE,
        config_source=servicemanagement_v1.ConfigSource(
            files=[
                servicemanagement_v1.ConfigFile(
                    file_path="api.yaml",
                    file_contents=b"type: google.api.Service",
                    file_type=servicemanagement_v1.ConfigFile.FileType.SERVICE_CONFIG_YAML,
                )
            ]
        ),
        metadata=DONE_AT_ONCE,
    ).result(timeout=30)
    assert submitted.service_config.name == SERVICE

    manager.delete_service(service_name=SERVICE, metadata=DONE_AT_ONCE).result(timeout=30)
    restored = manager.undelete_service(service_name=SERVICE, metadata=DONE_AT_ONCE).result(timeout=30)
    assert restored.service.service_name == SERVICE


def test_conflicts_map_to_conflict(manager: servicemanagement_v1.ServiceManagerClient) -> None:
    manager.create_service_rollout(service_name=SERVICE, rollout={"rollout_id": "r1"})
    with pytest.raises(exceptions.Conflict, match=f"rollouts.{SERVICE}:r1"):
        manager.create_service_rollout(service_name=SERVICE, rollout={"rollout_id": "r1"})
