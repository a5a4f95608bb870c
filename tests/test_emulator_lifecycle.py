"""The emulator as a harness: lifecycle, arguments, persistence across restarts."""

from __future__ import annotations

import sqlite3
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import grpc
import pytest
from google.longrunning import operations_pb2
from google.rpc import code_pb2

from lro_grpc._generated import financialservices_v1_pb2 as fs
from lro_grpc._generated import financialservices_v1_pb2_grpc as fs_grpc
from lro_grpc._generated import operations_pb2_grpc
from lro_grpc.emulator import DURATION_HEADER, Emulator

PARENT = "projects/p/locations/us-central1"
START = datetime(2026, 1, 5, tzinfo=timezone.utc)


def create(target: str, instance_id: str, duration: float = 60) -> str:
    with grpc.insecure_channel(target) as channel:
        request = fs.CreateInstanceRequest(parent=PARENT, instance_id=instance_id)
        metadata = ((DURATION_HEADER, str(duration)),)
        return str(fs_grpc.AMLStub(channel).CreateInstance(request, metadata=metadata, timeout=5).name)


def list_all(target: str) -> list[operations_pb2.Operation]:
    with grpc.insecure_channel(target) as channel:
        request = operations_pb2.ListOperationsRequest(name=PARENT, page_size=1000)
        return list(operations_pb2_grpc.OperationsStub(channel).ListOperations(request, timeout=5).operations)


def cancel(target: str, name: str) -> None:
    with grpc.insecure_channel(target) as channel:
        request = operations_pb2.CancelOperationRequest(name=name)
        operations_pb2_grpc.OperationsStub(channel).CancelOperation(request, timeout=5)


def test_context_manager_binds_a_free_port_and_stops() -> None:
    emulator = Emulator()
    with pytest.raises(RuntimeError, match="not running"):
        _ = emulator.target
    with emulator as emu:
        assert emu.target == f"127.0.0.1:{emu.port}"
        assert emu.port > 0
        create(emu.target, "a")
        with pytest.raises(RuntimeError, match="already started"):
            emu.start()
    with pytest.raises(RuntimeError, match="not running"):
        emulator.advance(1)
    emulator.stop()  # idempotent


def test_a_taken_port_fails_to_start() -> None:
    with Emulator() as first:
        second = Emulator(port=first.port)
        with pytest.raises(RuntimeError, match=str(first.port)):
            second.start()
        create(first.target, "still-serving")


def test_clock_api(tmp_path: Path) -> None:
    with Emulator(speed=0, start_time=START) as emu:
        assert emu.now() == START
        assert emu.advance(timedelta(hours=1)) == START + timedelta(hours=1)
        assert emu.clock.now() == (START + timedelta(hours=1)).timestamp()
        emu.set_speed(10)
        assert emu.speed == 10
        with pytest.raises(ValueError, match="advance"):
            emu.advance(-1)


@pytest.mark.parametrize(
    ("arguments", "error", "mentions"),
    [
        ({"port": 70000}, ValueError, "port"),
        ({"port": "8080"}, TypeError, "port"),
        ({"speed": -1}, ValueError, "speed"),
        ({"speed": float("nan")}, ValueError, "speed"),
        ({"default_duration": -5}, ValueError, "default_duration"),
        ({"retention": "30d"}, TypeError, "retention"),
        ({"durations": {"GetOperation": 1}}, ValueError, "GetOperation"),
        ({"durations": {"CreateInstance": -1}}, ValueError, "CreateInstance"),
        ({"start_time": datetime(2026, 1, 1)}, ValueError, "start_time"),
        ({"faults": object()}, TypeError, "faults"),
        ({"db": 3}, TypeError, "db"),
    ],
)
def test_arguments_are_validated(arguments: dict[str, object], error: type[Exception], mentions: str) -> None:
    with pytest.raises(error, match=mentions):
        Emulator(**arguments)  # type: ignore[arg-type]


def test_restart_with_a_db_file_loses_nothing(tmp_path: Path) -> None:
    db = tmp_path / "emulator.sqlite"
    with Emulator(db=db, speed=0, start_time=START) as emu:
        running = create(emu.target, "running", duration=3600)
        done = create(emu.target, "done", duration=0)
        cancelled = create(emu.target, "cancelled", duration=3600)
        cancel(emu.target, cancelled)
        emu.advance(600)
        before = {op.name: op for op in list_all(emu.target)}
    assert set(before) == {running, done, cancelled}

    with Emulator(db=db, speed=0, start_time=datetime(2030, 1, 1, tzinfo=timezone.utc)) as emu:
        # The saved clock wins over start_time: simulated time carries on where it stopped.
        assert emu.now() == START + timedelta(seconds=600)
        after = {op.name: op for op in list_all(emu.target)}
        assert after == before
        assert after[cancelled].error.code == code_pb2.CANCELLED
        emu.advance(3000)
        assert {op.name: op.done for op in list_all(emu.target)} == {running: True, done: True, cancelled: True}
        newer = create(emu.target, "newer")
        assert newer not in before
        assert [op.name for op in list_all(emu.target)] == [running, done, cancelled, newer]


def test_clock_keeps_running_while_the_emulator_is_down(tmp_path: Path) -> None:
    db = tmp_path / "emulator.sqlite"
    with Emulator(db=db, speed=1000, start_time=START) as emu:
        name = create(emu.target, "a", duration=3600)
        stopped_at = emu.now()
    time.sleep(0.05)  # 50 simulated seconds at least
    with Emulator(db=db, speed=0) as emu:
        assert emu.now() >= stopped_at + timedelta(seconds=50)
        assert [op.name for op in list_all(emu.target)] == [name]


def test_a_db_in_use_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "emulator.sqlite"
    with Emulator(db=db) as emu:
        with pytest.raises(RuntimeError, match="in use"):
            Emulator(db=db).start()
        create(emu.target, "still-serving")


def test_a_foreign_file_is_refused(tmp_path: Path) -> None:
    not_a_db = tmp_path / "notes.txt"
    not_a_db.write_text("hello, this is not SQLite\n" * 100)
    with pytest.raises(ValueError, match=r"notes\.txt"):
        Emulator(db=not_a_db).start()
    other_schema = tmp_path / "other.sqlite"
    connection = sqlite3.connect(other_schema)
    connection.execute("PRAGMA user_version = 99")
    connection.close()
    with pytest.raises(ValueError, match="schema version 99"):
        Emulator(db=other_schema).start()
