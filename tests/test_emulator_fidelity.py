"""Where the emulator follows the two APIs' references (rows of docs/emulator-fidelity.md), over loopback."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import grpc
import pytest
from google.longrunning import operations_pb2
from google.rpc import code_pb2

from lro_grpc._generated import financialservices_v1_pb2 as fs
from lro_grpc._generated import financialservices_v1_pb2_grpc as fs_grpc
from lro_grpc._generated import operations_pb2_grpc
from lro_grpc._generated import servicemanagement_v1_pb2 as sm
from lro_grpc._generated import servicemanagement_v1_pb2_grpc as sm_grpc
from lro_grpc.emulator import DURATION_HEADER, Emulator

PARENT = "projects/demo-project/locations/us-central1"
SERVICE = "endpointsapis.appspot.com"
REQUEST_ID = "7a3c1b4e-5f6d-4e8a-9b0c-1d2e3f4a5b6c"
START = datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc)
ROLLOUT_STEP = sm.OperationMetadata.Status


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(speed=0, start_time=START, default_duration=60) as emulator:
        yield emulator


def operations(channel: grpc.Channel) -> operations_pb2_grpc.OperationsStub:
    return operations_pb2_grpc.OperationsStub(channel)


def get(channel: grpc.Channel, name: str) -> operations_pb2.Operation:
    return operations(channel).GetOperation(operations_pb2.GetOperationRequest(name=name), timeout=5)


def rollout(
    channel: grpc.Channel, rollout_id: str = "", *, service: str = SERVICE, duration: float | None = None
) -> operations_pb2.Operation:
    metadata = () if duration is None else ((DURATION_HEADER, str(duration)),)
    request = sm.CreateServiceRolloutRequest(service_name=service, rollout=sm.Rollout(rollout_id=rollout_id))
    return sm_grpc.ServiceManagerStub(channel).CreateServiceRollout(request, metadata=metadata, timeout=5)


def create_instance(
    channel: grpc.Channel,
    instance_id: str = "inst-1",
    *,
    metadata: tuple[tuple[str, str], ...] = (),
    **fields: object,
) -> operations_pb2.Operation:
    request = fs.CreateInstanceRequest(parent=PARENT, instance_id=instance_id, **fields)
    return fs_grpc.AMLStub(channel).CreateInstance(request, metadata=metadata, timeout=5)


def rpc_error(call: object, *args: object, **kwargs: object) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(*args, **kwargs)  # type: ignore[operator]
    return caught.value


# --- Service Management offers no cancel or delete ----------------------------------------------------


def test_service_management_offers_no_cancel_or_delete(channel: grpc.Channel) -> None:
    running = rollout(channel, "r1")
    stub = operations(channel)
    for method, call, request_type in (
        ("CancelOperation", stub.CancelOperation, operations_pb2.CancelOperationRequest),
        ("DeleteOperation", stub.DeleteOperation, operations_pb2.DeleteOperationRequest),
    ):
        for name in (running.name, "operations/never-existed"):
            error = rpc_error(call, request_type(name=name), timeout=5)
            assert error.code() == grpc.StatusCode.UNIMPLEMENTED
            assert error.details().startswith(f"{method}:")
            assert repr(name) in error.details()
    assert get(channel, running.name) == running  # untouched: still running, still there


def test_financial_services_keeps_cancel_and_delete(channel: grpc.Channel) -> None:
    operation = create_instance(channel)
    operations(channel).CancelOperation(operations_pb2.CancelOperationRequest(name=operation.name), timeout=5)
    assert get(channel, operation.name).error.code == code_pb2.CANCELLED
    operations(channel).DeleteOperation(operations_pb2.DeleteOperationRequest(name=operation.name), timeout=5)
    assert rpc_error(get, channel, operation.name).code() == grpc.StatusCode.NOT_FOUND


# --- WaitOperation is off by default ----------------------------------------------------------------------


@pytest.mark.parametrize("wait_rpc", [False, True])
def test_wait_operation_only_with_wait_rpc(wait_rpc: bool) -> None:
    with (
        Emulator(speed=0, wait_rpc=wait_rpc) as emu,
        grpc.insecure_channel(emu.target) as channel,
    ):
        assert emu.wait_rpc is wait_rpc
        name = create_instance(channel, metadata=((DURATION_HEADER, "0"),)).name
        request = operations_pb2.WaitOperationRequest(name=name)
        if wait_rpc:
            assert operations(channel).WaitOperation(request, timeout=5).done
        else:
            error = rpc_error(operations(channel).WaitOperation, request, timeout=5)
            assert error.code() == grpc.StatusCode.UNIMPLEMENTED
            assert "WaitOperation" in error.details()


def test_wait_rpc_must_be_a_bool() -> None:
    with pytest.raises(TypeError, match="wait_rpc"):
        Emulator(wait_rpc=1)  # type: ignore[arg-type]


# --- A new rollout cancels the earlier pending and running ones --------------------------------------------


def test_a_new_rollout_cancels_the_services_earlier_pending_and_running_rollouts(
    emu: Emulator, channel: grpc.Channel
) -> None:
    finished = rollout(channel, "r0", duration=0)
    running = rollout(channel, "r1")
    emu.advance(30)
    pending = rollout(channel, "r2")  # just created: no simulated time has passed for it
    other_service = rollout(channel, "r1", service="other.example.com")
    config = sm_grpc.ServiceManagerStub(channel).SubmitConfigSource(
        sm.SubmitConfigSourceRequest(service_name=SERVICE, config_source=sm.ConfigSource()), timeout=5
    )
    # r2 cancelled r1 when it was created; r3 now cancels r2, while r2 is still pending.
    assert get(channel, running.name).error.code == code_pb2.CANCELLED
    assert not get(channel, pending.name).done

    latest = rollout(channel, "r3")

    cancelled = get(channel, pending.name)
    assert cancelled.done and cancelled.error.code == code_pb2.CANCELLED
    steps = [step.status for step in _sm_metadata(cancelled).steps]
    assert steps == [ROLLOUT_STEP.CANCELLED, ROLLOUT_STEP.NOT_STARTED, ROLLOUT_STEP.NOT_STARTED]
    assert get(channel, finished.name).HasField("response")  # done ones stay as they ended
    response = sm.Rollout()
    assert get(channel, finished.name).response.Unpack(response)
    assert response.status == sm.Rollout.RolloutStatus.SUCCESS
    for untouched in (latest, other_service, config):
        assert not get(channel, untouched.name).done
    emu.advance(60)
    assert get(channel, latest.name).HasField("response")


def test_a_refused_rollout_cancels_nothing(channel: grpc.Channel) -> None:
    running = rollout(channel, "r1")
    assert rpc_error(rollout, channel, "r1").code() == grpc.StatusCode.ALREADY_EXISTS
    assert rpc_error(rollout, channel, "Upper").code() == grpc.StatusCode.INVALID_ARGUMENT
    assert not get(channel, running.name).done


def _sm_metadata(operation: operations_pb2.Operation) -> sm.OperationMetadata:
    metadata = sm.OperationMetadata()
    assert operation.metadata.Unpack(metadata)
    return metadata


# --- rollout_id format --------------------------------------------------------------------------------------


@pytest.mark.parametrize("rollout_id", ["2016-07-16r2", "canary-rollout", "a.b_c-1", "x" * 63, "0"])
def test_rollout_ids_of_the_documented_format_are_accepted(channel: grpc.Channel, rollout_id: str) -> None:
    assert rollout(channel, rollout_id).name == f"operations/rollouts.{SERVICE}:{rollout_id}"


@pytest.mark.parametrize("rollout_id", ["Canary", "x" * 64, "has space", "slash/y", "colon:z", "ümlaut"])
def test_rollout_ids_outside_the_format_are_invalid_argument(channel: grpc.Channel, rollout_id: str) -> None:
    error = rpc_error(rollout, channel, rollout_id)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("rollout.rollout_id:")
    assert repr(rollout_id) in error.details()


def test_generated_rollout_ids_keep_the_documented_shape(channel: grpc.Channel) -> None:
    generated = rollout(channel).name.rsplit(":", 1)[1]
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}r\d+", generated)
    assert re.fullmatch(r"[a-z0-9._-]{1,63}", generated)


# --- Financial Services request_id ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "request_id",
    [
        "not-a-uuid",
        "00000000-0000-0000-0000-000000000000",
        "7a3c1b4e5f6d4e8a9b0c1d2e3f4a5b6c",  # no hyphens
        "{7a3c1b4e-5f6d-4e8a-9b0c-1d2e3f4a5b6c}",
        "7a3c1b4e-5f6d-4e8a-9b0c-1d2e3f4a5b6",  # one digit short
        "retry-1",
    ],
)
def test_request_id_must_be_a_non_zero_uuid(channel: grpc.Channel, request_id: str) -> None:
    error = rpc_error(create_instance, channel, request_id=request_id)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("request_id:")
    assert repr(request_id) in error.details()


def test_the_same_request_id_and_request_within_60_minutes_is_the_same_operation(
    emu: Emulator, channel: grpc.Channel
) -> None:
    first = create_instance(channel, request_id=REQUEST_ID)
    emu.advance(timedelta(minutes=59))
    assert create_instance(channel, request_id=REQUEST_ID).name == first.name
    assert create_instance(channel, request_id=REQUEST_ID.upper()).name == first.name
    emu.advance(timedelta(minutes=1))
    # Past the 60 minutes the reference guarantees, the id is free again: a new operation starts.
    later = create_instance(channel, request_id=REQUEST_ID)
    assert later.name != first.name
    assert create_instance(channel, request_id=REQUEST_ID).name == later.name


def test_the_same_request_id_for_a_different_request_is_invalid_argument(channel: grpc.Channel) -> None:
    first = create_instance(channel, request_id=REQUEST_ID)
    different = (
        lambda: create_instance(channel, "inst-2", request_id=REQUEST_ID),
        lambda: create_instance(channel, instance=fs.Instance(labels={"a": "b"}), request_id=REQUEST_ID),
        lambda: fs_grpc.AMLStub(channel).DeleteInstance(
            fs.DeleteInstanceRequest(name=f"{PARENT}/instances/inst-1", request_id=REQUEST_ID), timeout=5
        ),
    )
    for call in different:
        error = rpc_error(call)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error.details().startswith("request_id:")
        assert first.name in error.details()
    assert create_instance(channel, request_id=REQUEST_ID).name == first.name


def test_request_ids_survive_a_restart_and_old_databases_open(tmp_path: Path) -> None:
    # A database of the previous schema (no request digest column) is upgraded in place.
    old = tmp_path / "v1.sqlite"
    connection = sqlite3.connect(old)
    connection.executescript(
        "CREATE TABLE operations (seq INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE, "
        "collection TEXT NOT NULL, api TEXT NOT NULL, method TEXT NOT NULL, service_name TEXT NOT NULL, "
        "start_at REAL NOT NULL, natural_end REAL NOT NULL, end_at REAL NOT NULL, outcome TEXT NOT NULL, "
        "cancel_requested_at REAL, metadata BLOB NOT NULL, response BLOB NOT NULL, request_key TEXT UNIQUE);"
        "PRAGMA user_version = 1;"
    )
    connection.close()
    with Emulator(speed=0, db=old) as emu, grpc.insecure_channel(emu.target) as channel:
        first = create_instance(channel, request_id=REQUEST_ID)
    with Emulator(speed=0, db=old) as emu, grpc.insecure_channel(emu.target) as channel:
        assert create_instance(channel, request_id=REQUEST_ID).name == first.name


def test_every_test_the_fidelity_table_names_exists() -> None:
    tests = Path(__file__).parent
    table = (tests.parent / "docs" / "emulator-fidelity.md").read_text()
    named = set(re.findall(r"`(test_\w+)`", table))
    defined = {
        match
        for path in tests.glob("test_*.py")
        for match in re.findall(r"^(?:async )?def (test_\w+)", path.read_text(), re.MULTILINE)
    }
    assert len(named) > 20
    assert named - defined == set()
