"""Fault injection, as a raw gRPC client observes it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

import grpc
import pytest
from google.longrunning import operations_pb2
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2, status_pb2

from lro_grpc._generated import financialservices_v1_pb2 as fs
from lro_grpc._generated import financialservices_v1_pb2_grpc as fs_grpc
from lro_grpc._generated import operations_pb2_grpc
from lro_grpc.emulator import DURATION_HEADER, STATUS_DETAILS_KEY, Emulator, Faults

PARENT = "projects/p/locations/us-central1"


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(speed=0) as emulator:
        yield emulator


def create(channel: grpc.Channel, instance_id: str = "i", duration: str = "60") -> operations_pb2.Operation:
    request = fs.CreateInstanceRequest(parent=PARENT, instance_id=instance_id)
    return fs_grpc.AMLStub(channel).CreateInstance(request, metadata=((DURATION_HEADER, duration),), timeout=5)


def get(channel: grpc.Channel, name: str) -> operations_pb2.Operation:
    return operations_pb2_grpc.OperationsStub(channel).GetOperation(
        operations_pb2.GetOperationRequest(name=name), timeout=5
    )


def outcomes(channel: grpc.Channel, name: str, calls: int) -> list[grpc.StatusCode]:
    codes = []
    for _ in range(calls):
        try:
            get(channel, name)
            codes.append(grpc.StatusCode.OK)
        except grpc.RpcError as error:
            codes.append(error.code())
    return codes


def test_faults_are_off_by_default(emu: Emulator, channel: grpc.Channel) -> None:
    assert not emu.faults.enabled
    name = create(channel).name
    assert set(outcomes(channel, name, 20)) == {grpc.StatusCode.OK}


def test_unavailable_fraction(emu: Emulator, channel: grpc.Channel) -> None:
    name = create(channel).name
    emu.faults.unavailable = 1.0
    with pytest.raises(grpc.RpcError) as caught:
        get(channel, name)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "GetOperation" in caught.value.details()
    emu.faults.unavailable = 0.0
    assert get(channel, name).name == name


def test_resource_exhausted_carries_retry_info_in_trailers(emu: Emulator, channel: grpc.Channel) -> None:
    name = create(channel).name
    emu.faults.resource_exhausted = 1.0
    emu.faults.retry_delay = timedelta(milliseconds=1500)
    with pytest.raises(grpc.RpcError) as caught:
        get(channel, name)
    error = caught.value
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    trailers = dict(error.trailing_metadata())
    status = status_pb2.Status.FromString(trailers[STATUS_DETAILS_KEY])
    assert status.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    assert status.message == error.details()
    retry_info = error_details_pb2.RetryInfo()
    assert status.details[0].Unpack(retry_info)
    assert retry_info.retry_delay.ToTimedelta() == timedelta(milliseconds=1500)


def test_fractions_are_reproducible_with_a_seed(channel: grpc.Channel, emu: Emulator) -> None:
    name = create(channel).name
    emu.faults = Faults(unavailable=0.3, resource_exhausted=0.2, seed=42)
    first = outcomes(channel, name, 60)
    emu.faults.seed = 42  # restarts the sequence
    second = outcomes(channel, name, 60)
    assert first == second
    counts = {code: first.count(code) for code in set(first)}
    assert set(counts) == {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED}
    emu.faults.seed = 7
    assert outcomes(channel, name, 60) != first


def test_faults_can_target_some_methods(emu: Emulator, channel: grpc.Channel) -> None:
    emu.faults = Faults(unavailable=1.0, methods={"GetOperation"})
    name = create(channel).name  # CreateInstance is not targeted
    with pytest.raises(grpc.RpcError) as caught:
        get(channel, name)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


def test_latency_is_added(emu: Emulator, channel: grpc.Channel) -> None:
    name = create(channel).name
    emu.faults.latency = 0.2
    started = time.monotonic()
    get(channel, name)
    assert time.monotonic() - started >= 0.2


def test_a_served_wait_operation_can_be_switched_off_while_running() -> None:
    with Emulator(speed=0, wait_rpc=True) as emu, grpc.insecure_channel(emu.target) as channel:
        name = create(channel, duration="0").name
        stub = operations_pb2_grpc.OperationsStub(channel)
        request = operations_pb2.WaitOperationRequest(name=name, timeout=duration_pb2.Duration(seconds=1))
        assert stub.WaitOperation(request, timeout=5).done
        emu.faults.wait_unimplemented = True
        with pytest.raises(grpc.RpcError) as caught:
            stub.WaitOperation(request, timeout=5)
        assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
        assert get(channel, name).done  # other RPCs unaffected


def test_faults_given_at_construction() -> None:
    with (
        Emulator(speed=0, faults=Faults(unavailable=1.0)) as emu,
        grpc.insecure_channel(emu.target) as channel,
        pytest.raises(grpc.RpcError) as caught,
    ):
        create(channel)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("unavailable", 1.5, ValueError),
        ("unavailable", -0.1, ValueError),
        ("resource_exhausted", "half", TypeError),
        ("latency", -1, ValueError),
        ("retry_delay", float("inf"), ValueError),
        ("wait_unimplemented", 1, TypeError),
        ("methods", "GetOperation", TypeError),
        ("seed", 1.5, TypeError),
    ],
)
def test_settings_are_validated(field: str, value: object, error: type[Exception]) -> None:
    with pytest.raises(error, match=field):
        Faults(**{field: value})  # type: ignore[arg-type]
    faults = Faults()
    with pytest.raises(error, match=field):
        setattr(faults, field, value)


def test_fractions_must_not_sum_past_one() -> None:
    with pytest.raises(ValueError, match="must be <= 1"):
        Faults(unavailable=0.6, resource_exhausted=0.6)
    faults = Faults(unavailable=0.6)
    with pytest.raises(ValueError, match="must be <= 1"):
        faults.resource_exhausted = 0.5
    assert faults.resource_exhausted == 0.0


def test_emulator_faults_setter_checks_type(emu: Emulator) -> None:
    with pytest.raises(TypeError, match="faults"):
        emu.faults = {"unavailable": 1.0}  # type: ignore[assignment]


def list_names(channel: grpc.Channel, filter: str) -> list[str]:
    response = operations_pb2_grpc.OperationsStub(channel).ListOperations(
        operations_pb2.ListOperationsRequest(name=PARENT, filter=filter, page_size=1000), timeout=5
    )
    return [operation.name for operation in response.operations]


def test_listings_can_ignore_or_reject_their_filter(emu: Emulator, channel: grpc.Channel) -> None:
    running = create(channel, "running", "60").name
    finished = create(channel, "finished", "0").name
    assert list_names(channel, "done=false") == [running]

    emu.faults.list_filter = "ignore"
    assert sorted(list_names(channel, "done=false")) == sorted([running, finished])

    emu.faults.list_filter = "reject"
    with pytest.raises(grpc.RpcError) as caught:
        list_names(channel, "done=false")
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "done=false" in caught.value.details()
    assert list_names(channel, "") == [running, finished]  # no filter, nothing to reject

    with pytest.raises(ValueError, match="list_filter"):
        emu.faults.list_filter = "sometimes"


def test_listings_can_leave_running_operations_out(emu: Emulator, channel: grpc.Channel) -> None:
    running = {create(channel, f"running-{index}", "60").name for index in range(200)}
    finished = create(channel, "finished", "0").name
    emu.faults = Faults(list_omit_running=0.25, seed=3)
    listed = set(list_names(channel, ""))

    assert finished in listed  # done operations are never left out
    left_out = len(running - listed)
    assert 25 <= left_out <= 75  # about a quarter of 200
    with pytest.raises(ValueError, match="list_omit_running"):
        emu.faults.list_omit_running = 1.5
