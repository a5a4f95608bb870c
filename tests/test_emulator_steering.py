"""Steering operations by hand: ``Emulator.succeed``, ``fail``, ``cancel`` and ``delete``, seen over gRPC and REST."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from google.longrunning import operations_pb2
from rest_http import call

from lro_grpc._generated import financialservices_v1_pb2 as fs
from lro_grpc._generated import operations_pb2_grpc
from lro_grpc.emulator import Emulator

PARENT = "projects/demo-project/locations/us-central1"
SERVICE = "example.googleapis.com"


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(speed=0, rest_port=0, default_duration=600) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def stub(emu: Emulator) -> Iterator[operations_pb2_grpc.OperationsStub]:
    with grpc.insecure_channel(emu.target) as channel:
        yield operations_pb2_grpc.OperationsStub(channel)


def get(stub: operations_pb2_grpc.OperationsStub, name: str) -> operations_pb2.Operation:
    return stub.GetOperation(operations_pb2.GetOperationRequest(name=name), timeout=10)


@pytest.mark.parametrize("parent", [PARENT, f"services/{SERVICE}"])
def test_succeed_ends_it_now_with_its_response(
    emu: Emulator, stub: operations_pb2_grpc.OperationsStub, parent: str
) -> None:
    name = emu.start_operation(parent)
    assert not get(stub, name).done
    emu.succeed(name)
    operation = get(stub, name)
    assert operation.done and operation.HasField("response")
    if parent == PARENT:
        instance = fs.Instance()
        operation.response.Unpack(instance)
        assert instance.state == fs.Instance.State.ACTIVE
    assert call(emu.rest_url, "GET", f"/v1/{name}").body["done"] is True


@pytest.mark.parametrize("code", [grpc.StatusCode.RESOURCE_EXHAUSTED, "resource_exhausted", 8])
def test_fail_ends_it_now_with_the_chosen_status(
    emu: Emulator, stub: operations_pb2_grpc.OperationsStub, code: object
) -> None:
    name = emu.start_operation(PARENT)
    emu.fail(name, code, "quota gone")  # type: ignore[arg-type]
    operation = get(stub, name)
    assert operation.done and (operation.error.code, operation.error.message) == (8, "quota gone")
    error = call(emu.rest_url, "GET", f"/v1/{name}").body["error"]
    assert error == {"code": 8, "message": "quota gone", "details": []}


def test_fail_without_a_message_says_it_was_on_demand(emu: Emulator, stub: operations_pb2_grpc.OperationsStub) -> None:
    name = emu.start_operation(f"services/{SERVICE}")
    emu.fail(name)
    operation = get(stub, name)
    assert operation.error.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    assert operation.error.message == "failed on demand (emulator)"


def test_cancel_and_delete_are_the_rpcs(emu: Emulator, stub: operations_pb2_grpc.OperationsStub) -> None:
    cancelled, deleted = emu.start_operation(PARENT), emu.start_operation(PARENT)
    emu.cancel(cancelled)
    assert get(stub, cancelled).error.code == grpc.StatusCode.CANCELLED.value[0]
    emu.delete(deleted)
    with pytest.raises(grpc.RpcError) as caught:
        get(stub, deleted)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_refusals_name_the_problem(emu: Emulator) -> None:
    done = emu.start_operation(PARENT, duration=0)
    rollout = emu.start_operation(f"services/{SERVICE}")
    with pytest.raises(ValueError, match="already done"):
        emu.succeed(done)
    with pytest.raises(LookupError, match="not found"):
        emu.fail(f"{PARENT}/operations/nope")
    with pytest.raises(ValueError, match="name: expected"):
        emu.succeed("nope")
    with pytest.raises(ValueError, match="Service Management offers only"):
        emu.cancel(rollout)
    with pytest.raises(ValueError, match="code: expected a status code other than OK"):
        emu.fail(rollout, "OK")
    with pytest.raises(ValueError, match="code: expected"):
        emu.fail(rollout, "NOPE")
    with pytest.raises(TypeError, match="code must be"):
        emu.fail(rollout, 1.5)  # type: ignore[arg-type]
