"""The ``lro-grpc`` command line, against the emulator over loopback."""

from __future__ import annotations

import fcntl
import io
import json
import os
import pty
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.longrunning import operations_pb2
from google.rpc import code_pb2, status_pb2
from servicer import Fault, ScriptedOperations, serve

from lro_grpc import AsyncOperationsClient, PollPolicy, _progress, default_registry
from lro_grpc._generated import financialservices_v1_pb2 as fs
from lro_grpc._generated import financialservices_v1_pb2_grpc as fs_grpc
from lro_grpc._generated import servicemanagement_v1_pb2 as sm
from lro_grpc._generated import servicemanagement_v1_pb2_grpc as sm_grpc
from lro_grpc.cli import ExitCode, main
from lro_grpc.emulator import Emulator, Faults

PYTHON = sys.executable
ENTRY_POINT = Path(sys.executable).with_name("lro-grpc")
DATA = Path(__file__).resolve().parent / "data"

# The seed documents' JSON responses (see tests/data/README.md for the few changes made
# to make them valid JSON).
SEED_FINANCIAL_SERVICES_OPERATION: dict[str, Any] = json.loads((DATA / "fs_get_operation.json").read_text())
SEED_FINANCIAL_SERVICES_LIST: dict[str, Any] = json.loads((DATA / "fs_list_operations.json").read_text())
SEED_SERVICE_MANAGEMENT_OPERATION: dict[str, Any] = json.loads((DATA / "sm_operation_done.json").read_text())
# Rollout fields of the seed that the v1 message no longer has.
NOT_IN_V1_SCHEMA = {"serviceSelectionStrategy"}
DEFAULTS: tuple[object, ...] = (False, 0, "", [], {})
RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")
FS_PARENT = "projects/demo/locations/us-central1"


# --- rendering, no I/O ---------------------------------------------------------------------------


def test_operation_state_names_each_outcome() -> None:
    assert _progress.operation_state({"done": False}) == "RUNNING"
    assert _progress.operation_state({"done": False, "metadata": {"requestedCancellation": True}}) == "CANCELLING"
    assert _progress.operation_state({"done": True, "response": {}}) == "SUCCEEDED"
    assert _progress.operation_state({"done": True}) == "SUCCEEDED"
    assert _progress.operation_state({"done": True, "error": {"code": 1}}) == "CANCELLED"
    assert (
        _progress.operation_state({"done": True, "error": {"code": 9, "message": "x"}}) == "FAILED(FAILED_PRECONDITION)"
    )
    assert _progress.operation_state({"done": True, "error": {"code": 99}}) == "FAILED(99)"


def test_operation_fraction_uses_progress_percentage_where_given() -> None:
    assert _progress.operation_fraction({"done": True}) == 1.0
    assert _progress.operation_fraction({"done": False, "metadata": {"progressPercentage": 40}}) == 0.4
    assert _progress.operation_fraction({"done": False, "metadata": {"verb": "create"}}) is None


def test_table_aligns_columns_and_shows_every_operation() -> None:
    operations = [
        SEED_FINANCIAL_SERVICES_OPERATION,
        {**SEED_SERVICE_MANAGEMENT_OPERATION, "done": False, "metadata": {"progressPercentage": 40}},
        {"name": "operations/failed", "done": True, "error": {"code": 9, "message": "simulated failure"}},
    ]
    table = _progress.render_operation_table(operations, width=None).splitlines()
    assert table[0].split() == ["NAME", "STATE", "PROGRESS", "CREATED", "DETAIL"]
    assert len(table) == 4
    state_column = table[0].index("STATE")
    assert [line[state_column:].split()[0] for line in table[1:]] == [
        "SUCCEEDED",
        "RUNNING",
        "FAILED(FAILED_PRECONDITION)",
    ]
    assert "create instances/INSTANCE_ID" in table[1]  # the detail: verb and target (relative)
    assert "40%" in table[2]
    assert table[3].endswith("simulated failure")
    assert _progress.render_operation_table([]) == "NAME  STATE  PROGRESS  CREATED  DETAIL"


def test_detail_view_shows_nested_fields_and_types() -> None:
    text = _progress.render_operation_detail(SEED_SERVICE_MANAGEMENT_OPERATION)
    lines = text.splitlines()
    assert lines[:3] == [
        "name: operations/rollouts.endpointsapis.appspot.com:2016-07-16r2",
        "state: SUCCEEDED",
        "done: true",
    ]
    assert "metadata: google.api.servicemanagement.v1.OperationMetadata" in lines
    assert "  progressPercentage: 100" in lines
    assert "    - description: update Service Controller" in lines
    assert "      status: DONE" in lines
    assert "    - services/endpointsapis.appspot.com/rollouts/2016-07-16r2" in lines
    assert "response: google.api.servicemanagement.v1.Rollout" in lines
    error_text = _progress.render_operation_detail({"name": "operations/x", "done": True, "error": {"code": 1}})
    assert "  code: 1 (CANCELLED)" in error_text.splitlines()


def test_format_progress() -> None:
    assert _progress.format_progress(done=5, failed=1, pending=5, width=10) == "[#####-----]  50% 5/10 done, 1 failed"
    assert _progress.format_progress(done=0, failed=0, pending=1, fraction=0.42, width=10, elapsed=1.25) == (
        "[####------]  42% 0/1 done (1.2s)"
    )
    assert _progress.format_progress(done=0, failed=0, pending=0, width=4) == "[####] 100% 0/0 done"
    with pytest.raises(ValueError, match="pending"):
        _progress.format_progress(done=0, failed=0, pending=-1)


def test_progress_bar_redraws_in_place_throttled_and_ends_the_line() -> None:
    now = [0.0]
    stream = io.StringIO()
    bar = _progress.ProgressBar(stream, width=4, min_interval=1.0, clock=lambda: now[0])
    bar.update(done=0, failed=0, pending=2)
    now[0] = 0.5
    bar.update(done=1, failed=0, pending=1)  # throttled
    bar.update(done=1, failed=0, pending=1, force=True)
    bar.close()
    bar.update(done=2, failed=0, pending=0, force=True)  # after close: ignored
    assert stream.getvalue() == ("\r[----]   0% 0/2 done (0.0s)\x1b[K\r[##--]  50% 1/2 done (0.5s)\x1b[K\n")


def test_batch_display_uses_progress_percentage_of_running_operations() -> None:
    from google.longrunning import operations_pb2

    from lro_grpc.registry import default_registry

    stream = io.StringIO()
    names = ["operations/a", "operations/b"]
    display = _progress.BatchDisplay(_progress.ProgressBar(stream, width=10, min_interval=0), names, default_registry())
    running = operations_pb2.Operation(name="operations/a")
    running.metadata.Pack(sm.OperationMetadata(progress_percentage=40))
    display.on_poll(running)
    assert "[##--------]  20% 0/2 done" in stream.getvalue()  # (0.4 + 0) / 2
    display.on_progress(_progress.BatchProgress(done=1, failed=0, pending=1))
    assert stream.getvalue().rsplit("\r", 1)[-1].startswith("[#######---]  70% 1/2 done")  # (1 + 0.4) / 2
    display.close()
    assert stream.getvalue().endswith("\n")


# --- against the emulator ------------------------------------------------------------------------


@pytest.fixture
def emu() -> Iterator[Emulator]:
    # A frozen clock: operations finish only when a test advances it.
    with Emulator(speed=0) as emulator:
        yield emulator


def start_instance(emulator: Emulator, *, duration: float = 60.0, fail: bool = False, parent: str = FS_PARENT) -> str:
    metadata = [("x-emulator-duration-seconds", str(duration))]
    if fail:
        metadata.append(("x-emulator-outcome", "fail"))
    instance_id = f"instance-{time.monotonic_ns()}"
    location = parent.rsplit("/", 1)[-1]
    request = fs.CreateInstanceRequest(
        parent=parent,
        instance_id=instance_id,
        instance=fs.Instance(kms_key=f"projects/kms/locations/{location}/keyRings/ring/cryptoKeys/key"),
    )
    with grpc.insecure_channel(emulator.target) as channel:
        return str(fs_grpc.AMLStub(channel).CreateInstance(request, metadata=metadata, timeout=10).name)


def start_rollout(emulator: Emulator, *, duration: float = 60.0) -> str:
    request = sm.CreateServiceRolloutRequest(
        service_name="endpointsapis.appspot.com",
        rollout=sm.Rollout(
            traffic_percent_strategy=sm.Rollout.TrafficPercentStrategy(percentages={"2016-07-16r1": 100.0})
        ),
    )
    with grpc.insecure_channel(emulator.target) as channel:
        stub = sm_grpc.ServiceManagerStub(channel)
        return str(stub.CreateServiceRollout(request, metadata=[("x-emulator-duration-seconds", str(duration))]).name)


class Run:
    """What one in-process ``main()`` call returned and printed."""

    def __init__(self, code: int, out: str, err: str) -> None:
        self.code = code
        self.out = out
        self.err = err

    def json(self) -> Any:
        return json.loads(self.out)

    def assert_one_error_line(self, *fragments: str) -> None:
        lines = self.err.splitlines()
        assert len(lines) == 1, self.err
        assert lines[0].startswith("lro-grpc: error: "), self.err
        assert "Traceback" not in self.err
        for fragment in fragments:
            assert fragment in lines[0]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Any:
    def run(*argv: str) -> Run:
        code = main(list(argv))
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


def table_rows(out: str) -> list[str]:
    """The rows of the table ``wait`` prints at the end (after the outcomes printed as they came)."""
    lines = out.splitlines()
    header = max(index for index, line in enumerate(lines) if line.startswith("NAME "))
    return lines[header + 1 :]


def shows_name(cell: str, name: str) -> bool:
    """Whether a table's NAME cell shows ``name``: in full, or cut in its middle to fit."""
    if "..." not in cell:
        return cell == name
    head, tail = cell.split("...", 1)
    return len(head) >= 8 and len(tail) >= 8 and name.startswith(head) and name.endswith(tail)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def assert_like_seed(
    output: dict[str, Any], seed: dict[str, Any], *, path: str = "", optional: frozenset[str] = frozenset()
) -> None:
    """``output`` has the seed's keys and nesting: every key it has, the seed has (same kind of
    value, same "@type", same enum names); a key of the seed it lacks holds a default value,
    which the proto3 JSON mapping does not print, or is not in the v1 schema."""
    for key, value in output.items():
        assert key in seed, f"{path}{key} is not in the seed document"
        expected = seed[key]
        if isinstance(value, dict):
            assert isinstance(expected, dict), f"{path}{key}"
            assert_like_seed(value, expected, path=f"{path}{key}.", optional=optional)
        elif isinstance(value, list):
            assert isinstance(expected, list) and len(value) >= 1 and len(expected) >= 1, f"{path}{key}"
            for item in value:
                if isinstance(item, dict):
                    assert_like_seed(item, expected[0], path=f"{path}{key}[].", optional=optional)
                else:
                    assert type(item) is type(expected[0]), f"{path}{key}[]"
        else:
            assert type(value) is type(expected), f"{path}{key}: {value!r} vs {expected!r}"
            if key == "@type" or key in ("verb", "apiVersion", "state", "status", "done"):
                assert value == expected, f"{path}{key}"
            if key.endswith("Time"):
                assert RFC3339.fullmatch(value), f"{path}{key}: {value!r}"
    for key, expected in seed.items():
        if key not in output:
            assert expected in DEFAULTS or key in NOT_IN_V1_SCHEMA or f"{path}{key}" in optional, (
                f"{path}{key} is missing from the output"
            )


def test_get_json_has_the_shape_of_the_financial_services_seed(emu: Emulator, cli: Any) -> None:
    name = start_instance(emu, duration=30)
    running = cli("--endpoint", emu.target, "--json", "get", name)
    assert running.code == ExitCode.OK and running.err == ""
    assert running.json()["done"] is False
    assert "response" not in running.json() and "error" not in running.json()

    emu.advance(31)
    done = cli("--endpoint", emu.target, "get", name, "--json")  # global options after the command too
    assert done.code == ExitCode.OK and done.err == ""
    operation = done.json()
    assert list(operation) == ["name", "metadata", "done", "response"]  # the seed's order
    assert operation["name"] == name
    assert_like_seed(operation, SEED_FINANCIAL_SERVICES_OPERATION)
    # Exactly the seed's keys, "requestedCancellation": false included.
    assert set(SEED_FINANCIAL_SERVICES_OPERATION["response"]) == set(operation["response"])
    assert set(SEED_FINANCIAL_SERVICES_OPERATION["metadata"]) == set(operation["metadata"])
    assert operation["metadata"]["requestedCancellation"] is False
    assert operation["metadata"]["target"] == operation["response"]["name"]


def test_get_json_has_the_shape_of_the_service_management_seed(emu: Emulator, cli: Any) -> None:
    name = start_rollout(emu, duration=10)
    emu.advance(11)
    result = cli("--endpoint", emu.target, "--json", "get", name)
    assert result.code == ExitCode.OK
    operation = result.json()
    assert list(operation) == ["name", "metadata", "done", "response"]
    assert name.startswith("operations/rollouts.endpointsapis.appspot.com:")
    assert operation["metadata"]["progressPercentage"] == 100
    assert {step["status"] for step in operation["metadata"]["steps"]} == {"DONE"}
    # The v1 Rollout has more fields than the seed's older one shows (status, createdBy, the strategy).
    response = dict(operation["response"])
    assert response.pop("status") == "SUCCESS"
    assert isinstance(response.pop("createdBy"), str)
    assert response.pop("trafficPercentStrategy") == {"percentages": {"2016-07-16r1": 100.0}}
    assert_like_seed({**operation, "response": response}, SEED_SERVICE_MANAGEMENT_OPERATION)
    assert set(SEED_SERVICE_MANAGEMENT_OPERATION["response"]) - set(response) == NOT_IN_V1_SCHEMA


def test_list_json_table_limit_page_size_and_filter(emu: Emulator, cli: Any) -> None:
    names = [start_instance(emu, duration=10 * (index + 1)) for index in range(3)]
    start_instance(emu, parent="projects/demo/locations/europe-west4")
    emu.advance(15)  # the first one is done

    listed = cli("--endpoint", emu.target, "--json", "list", FS_PARENT)
    assert listed.code == ExitCode.OK
    document = listed.json()
    assert list(document) == ["operations"]
    assert [operation["name"] for operation in document["operations"]] == names
    assert [operation["done"] for operation in document["operations"]] == [True, False, False]
    seed_running, seed_done = SEED_FINANCIAL_SERVICES_LIST["operations"]
    assert_like_seed(document["operations"][0], seed_done)
    for operation in document["operations"][1:]:
        # The seed shows an endTime on its running operation too; the emulator, like the
        # service's metadata definition, sets it when the operation ends.
        assert_like_seed(operation, seed_running, optional=frozenset({"metadata.endTime"}))

    paged = cli("--endpoint", emu.target, "--json", "list", FS_PARENT, "--page-size", "1")
    assert paged.json() == document
    limited = cli("--endpoint", emu.target, "--json", "list", FS_PARENT, "--page-size", "1", "--limit", "2")
    assert [operation["name"] for operation in limited.json()["operations"]] == names[:2]
    running = cli("--endpoint", emu.target, "--json", "list", FS_PARENT, "--filter", "done=false")
    assert [operation["name"] for operation in running.json()["operations"]] == names[1:]
    empty = cli("--endpoint", emu.target, "--json", "list", "projects/demo/locations/asia-south1")
    assert empty.code == ExitCode.OK and empty.json() == {"operations": []}

    table = cli("--endpoint", emu.target, "list", FS_PARENT, "--wide")
    assert table.code == ExitCode.OK and table.err == ""
    lines = table.out.splitlines()
    assert lines[0].split() == ["NAME", "STATE", "PROGRESS", "CREATED", "DETAIL"]
    # Each row starts with its whole name and its state.
    assert [line.split()[1] for line in lines[1:]] == ["SUCCEEDED", "RUNNING", "RUNNING"]
    assert [line.split()[0] for line in lines[1:]] == names
    # Not a terminal and not --wide: the bare names, one per line.
    plain = cli("--endpoint", emu.target, "list", FS_PARENT)
    assert plain.out.splitlines() == names

    empty_table = cli("--endpoint", emu.target, "list", "projects/demo/locations/asia-south1", "--wide")
    assert empty_table.code == ExitCode.OK and empty_table.err == ""
    assert empty_table.out == "no operations under projects/demo/locations/asia-south1\n"
    none_running = cli(
        "--endpoint", emu.target, "list", "projects/demo/locations/europe-west4", "--filter", "done=true", "--wide"
    )
    assert none_running.out == "no operations under projects/demo/locations/europe-west4 matching filter 'done=true'\n"


def test_table_fits_the_width_leaving_names_whole() -> None:
    long_id = "operation-1795465169764-06ae1441a69f8-55bbc68a-fbbfb61a"
    operations = [
        {
            "name": f"projects/demo-project/locations/northamerica-northeast1/operations/{long_id}-{index}",
            "done": True,
            "error": {"code": 9, "message": "CreateInstance failed: simulated failure requested " * 3},
            "metadata": {"createTime": "2026-11-23T20:20:40.261836Z", "verb": "create"},
        }
        for index in range(2)
    ]
    for width in (200, 160, 100, 60):
        lines = _progress.render_operation_table(operations, width=width).splitlines()
        for index, line in enumerate(lines[1:]):
            assert line.split()[0] == operations[index]["name"]  # whole, whatever the width
            assert line.split()[1] == "FAILED(FAILED_PRECONDITION)"
        name_width = len(operations[0]["name"])
        if name_width + 2 + len("FAILED(FAILED_PRECONDITION)") <= width:
            assert max(len(line) for line in lines) <= width, (width, lines)
    wide = _progress.render_operation_table(operations, width=200).splitlines()
    assert wide[0].split() == ["NAME", "STATE", "CREATED", "DETAIL"]  # PROGRESS says nothing here: left out first
    assert wide[1].endswith("...") and "CreateInstance fail" in wide[1]
    assert _progress.render_operation_table(operations, width=None).splitlines()[1].endswith("requested  | create")
    # Short rows are left alone.
    short = [{"name": "operations/a", "done": False}]
    assert _progress.render_operation_table(short).splitlines()[1].split() == ["operations/a", "RUNNING", "-", "-", "-"]
    with pytest.raises(ValueError, match="19"):
        _progress.render_operation_table(operations, width=19)


def test_list_service_management_operations(emu: Emulator, cli: Any) -> None:
    name = start_rollout(emu, duration=100)
    emu.advance(50)
    # PARENT defaults to "operations"; Service Management requires a serviceName filter.
    unfiltered = cli("--endpoint", emu.target, "--api", "servicemanagement", "list")
    assert unfiltered.code == ExitCode.USAGE  # INVALID_ARGUMENT about what the command line gave
    assert "serviceName is required" in unfiltered.err
    result = cli(
        "--endpoint",
        emu.target,
        "--api",
        "servicemanagement",
        "list",
        "--filter",
        "serviceName=endpointsapis.appspot.com",
        "--wide",
    )
    assert result.code == ExitCode.OK
    row = result.out.splitlines()[1].split()
    assert row[0] == name and row[1:3] == ["RUNNING", "50%"]
    filtered = cli(
        "--endpoint", emu.target, "--json", "list", "operations", "--filter", "serviceName=other.example.com"
    )
    assert filtered.json() == {"operations": []}


def test_get_table_is_readable(emu: Emulator, cli: Any) -> None:
    name = start_instance(emu)
    result = cli("--endpoint", emu.target, "get", name)
    assert result.code == ExitCode.OK
    lines = result.out.splitlines()
    assert lines[:3] == [f"name: {name}", "state: RUNNING", "done: false"]
    assert "metadata: google.cloud.financialservices.v1.OperationMetadata" in lines
    assert "  verb: create" in lines


def test_wait_success_exit_0(emu: Emulator, cli: Any) -> None:
    names = [start_instance(emu, duration=10), start_rollout(emu, duration=20)]
    timer = threading.Timer(0.3, emu.advance, args=(25,))
    timer.start()
    try:
        result = cli("--endpoint", emu.target, "--api", "financialservices", "wait", *names, "--poll-interval", "0.05")
    finally:
        timer.join()
    assert result.code == ExitCode.OK, result.err
    assert result.err == ""  # no progress bar when not on a terminal
    rows = table_rows(result.out)
    assert [row.split()[1] for row in rows] == ["SUCCEEDED", "SUCCEEDED"]
    assert [row.split()[0] for row in rows] == names


def test_wait_json_prints_each_operation(emu: Emulator, cli: Any) -> None:
    first, second = start_instance(emu, duration=1), start_instance(emu, duration=1)
    emu.advance(2)
    single = cli("--endpoint", emu.target, "--json", "wait", first)
    assert single.code == ExitCode.OK
    assert_like_seed(single.json(), SEED_FINANCIAL_SERVICES_OPERATION)
    both = cli("--endpoint", emu.target, "--json", "wait", first, second, "--poll-interval", "0.05")
    assert both.code == ExitCode.OK
    # JSON lines, one per outcome as it came.
    assert sorted(json.loads(line)["name"] for line in both.out.splitlines()) == sorted([first, second])


def test_failed_operation_exit_1(emu: Emulator, cli: Any) -> None:
    name = start_instance(emu, duration=5, fail=True)
    emu.advance(6)
    waited = cli("--endpoint", emu.target, "wait", name)
    assert waited.code == ExitCode.OPERATION_FAILED
    waited.assert_one_error_line(name, "FAILED_PRECONDITION", "simulated failure")
    assert "state: FAILED(FAILED_PRECONDITION)" in waited.out.splitlines()
    got = cli("--endpoint", emu.target, "--json", "get", name)
    assert got.code == ExitCode.OPERATION_FAILED
    assert got.json()["error"]["code"] == 9
    assert got.json()["error"]["details"][0]["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"


def test_error_of_code_ok_is_a_failure_exit_1(cli: Any) -> None:
    name = "operations/rollouts.svc.example.com:2016-07-16r2"
    servicer = ScriptedOperations()
    servicer.add(operations_pb2.Operation(name=name, done=True, error=status_pb2.Status(code=code_pb2.OK)))
    with serve(servicer) as target:
        got = cli("--endpoint", target, "get", name)
        waited = cli("--endpoint", target, "wait", name)
    for run in (got, waited):
        assert run.code == ExitCode.OPERATION_FAILED
        run.assert_one_error_line(name, "UNKNOWN", "code 0 (OK) and no response")
    assert "state: FAILED(UNKNOWN)" in got.out.splitlines()
    assert _progress.operation_state({"done": True, "error": {}}) == "FAILED(UNKNOWN)"


def test_cancelled_operation_exit_1(emu: Emulator, cli: Any) -> None:
    name = start_instance(emu, duration=600)
    cancelled = cli("--endpoint", emu.target, "--json", "cancel", name)
    assert cancelled.code == ExitCode.OK and cancelled.json() == {}  # as the seed shows
    again = cli("--endpoint", emu.target, "cancel", name)
    assert again.code == ExitCode.OK and again.out == f"cancellation requested: {name}\n"
    waited = cli("--endpoint", emu.target, "--json", "wait", name, "--poll-interval", "0.05")
    assert waited.code == ExitCode.OPERATION_FAILED
    waited.assert_one_error_line(name, "CANCELLED")
    assert waited.json()["error"]["code"] == 1
    assert waited.json()["metadata"]["requestedCancellation"] is True


def test_mixed_outcomes_exit_with_the_highest_code(emu: Emulator, cli: Any) -> None:
    ok, failed, missing = start_instance(emu, duration=1), start_instance(emu, duration=1, fail=True), None
    missing = f"{FS_PARENT}/operations/never-started"
    emu.advance(2)
    result = cli("--endpoint", emu.target, "wait", ok, failed, missing, "--poll-interval", "0.05")
    assert result.code == ExitCode.NOT_FOUND
    result.assert_one_error_line("1 of 3 operations were not found", missing)
    states = [row.split()[1] for row in table_rows(result.out)]
    assert states == ["SUCCEEDED", "FAILED(FAILED_PRECONDITION)", "FAILED(NOT_FOUND)"]


def test_timeout_exit_3_prints_the_last_seen_state(emu: Emulator, cli: Any) -> None:
    name = start_instance(emu, duration=60)
    started = time.monotonic()
    result = cli("--endpoint", emu.target, "--json", "wait", name, "--timeout", "0.3", "--poll-interval", "0.05")
    waited = time.monotonic() - started
    assert result.code == ExitCode.TIMEOUT
    result.assert_one_error_line("timed out after 0.3s", name, "still running")
    assert result.json()["name"] == name and result.json()["done"] is False
    assert waited >= 0.3


def test_not_found_exit_4(emu: Emulator, cli: Any) -> None:
    never = f"{FS_PARENT}/operations/never-started"
    for command in ("get", "wait", "cancel", "delete"):
        result = cli("--endpoint", emu.target, command, never)
        assert result.code == ExitCode.NOT_FOUND, command
        result.assert_one_error_line("NOT_FOUND", never)

    name = start_instance(emu, duration=1)
    emu.advance(2)
    deleted = cli("--endpoint", emu.target, "--json", "delete", name)
    assert deleted.code == ExitCode.OK and deleted.json() == {}  # as the seed shows
    gone = cli("--endpoint", emu.target, "get", name)
    assert gone.code == ExitCode.NOT_FOUND
    gone.assert_one_error_line("record expired")


def test_bad_name_exit_2_before_any_rpc(cli: Any) -> None:
    # Nobody listens there: had an RPC been made, the exit code would be 5.
    endpoint = f"127.0.0.1:{free_port()}"
    for argv in (
        ("get", "projects/p/operations/x"),
        ("wait", "operations/ok", "operations/"),
        ("cancel", "not-a-name"),
        ("delete", "projects/p/locations/l/operations/a b"),
        ("list", "projects/p"),
    ):
        result = cli("--endpoint", endpoint, "--rpc-timeout", "0.5", *argv)
        assert result.code == ExitCode.USAGE, argv
        result.assert_one_error_line("invalid")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ((), "the following arguments are required: COMMAND"),
        (("frobnicate",), "invalid choice: 'frobnicate'"),
        (("get",), "the following arguments are required: NAME"),
        (("--api", "storage", "get", "operations/x"), "invalid choice: 'storage'"),
        (("wait", "operations/x", "--timeout", "soon"), "expected seconds"),
        (("list", "projects/p/locations/l", "--page-size", "0"), "expected a positive integer"),
        (("list",), "list needs a PARENT"),
        (("wait", "operations/x", "--poll-interval", "0"), "expected seconds (a finite number > 0)"),
        (("--endpoint", "10.1.2.3:80", "--rpc-timeout", "-1", "get", "operations/x"), "expected seconds"),
        (("wait", "operations/x", "projects/p/locations/l/operations/y"), "different APIs"),
        (("--endpoint", "example.com:443", "--api", "financialservices", "demo", "--instances", "2"), "instances"),
    ],
)
def test_usage_errors_exit_2(cli: Any, argv: tuple[str, ...], message: str) -> None:
    result = cli(*argv)
    assert result.code == ExitCode.USAGE
    assert "Traceback" not in result.err
    last = result.err.splitlines()[-1]
    assert last.startswith("lro-grpc: error: ") and message in last


def test_rpc_failure_exit_5(cli: Any) -> None:
    endpoint = f"127.0.0.1:{free_port()}"
    for argv in (
        ("get", "operations/x"),
        ("list", "projects/p/locations/l"),
        ("wait", "operations/x", "operations/y"),
        ("cancel", "operations/x"),
    ):
        result = cli("--endpoint", endpoint, "--rpc-timeout", "0.5", *argv)
        assert result.code == ExitCode.RPC_FAILURE, argv
        result.assert_one_error_line("UNAVAILABLE")


def test_wait_timeout_bounds_the_first_get_too(cli: Any) -> None:
    # A server that holds every GetOperation: without --timeout bounding it, the first look
    # would take the per-RPC timeout (10 s) and its retries.
    servicer = ScriptedOperations()
    servicer.add(operations_pb2.Operation(name="operations/held"))
    servicer.inject("GetOperation", *[Fault(hang=30)] * 20)
    with serve(servicer) as target:
        started = time.monotonic()
        result = cli("--endpoint", target, "wait", "operations/held", "--timeout", "1")
        elapsed = time.monotonic() - started
    assert result.code == ExitCode.TIMEOUT, result.err
    result.assert_one_error_line("timed out after 1s", "first GetOperation", "operations/held")
    assert elapsed < 5, elapsed  # 1 s and the time to give up; 10 s or more before


def test_progress_bar_elapsed_time_moves_between_polls(emu: Emulator) -> None:
    name = start_rollout(emu, duration=600)  # the frozen clock keeps it running
    stream = io.StringIO()
    results, timed_out = _progress.wait_all_with_progress(
        lambda: AsyncOperationsClient(emu.target),
        [name],
        timeout=1.2,
        poll_policy=PollPolicy(initial=30, multiplier=1, maximum=30, jitter=0),  # one poll, at the start
        rpc_timeout=5,
        registry=default_registry(),
        bar_stream=stream,
    )
    assert timed_out and [operation.name for operation in results] == [name]
    shown = re.findall(r"\((\d+\.\d)s\)", stream.getvalue())
    assert len(set(shown)) >= 3, stream.getvalue()  # redrawn with the time moving, not once per poll


def test_help_documents_exit_codes(cli: Any) -> None:
    result = cli("--help")
    assert result.code == ExitCode.OK
    for line in (
        "0  success",
        "1  the operation failed or was cancelled",
        "2  usage error",
        "3  timed out",
        "4  not found",
        "5  RPC",
    ):
        assert line in result.out
    wait_help = cli("wait", "--help")
    assert wait_help.code == ExitCode.OK and "exit codes:" in wait_help.out
    import lro_grpc.cli

    assert lro_grpc.cli.__doc__ is not None and "Exit codes:" in lro_grpc.cli.__doc__


def test_version_prints_the_package_version(cli: Any) -> None:
    import lro_grpc

    result = cli("--version")
    assert result.code == ExitCode.OK
    assert result.out == f"lro-grpc {lro_grpc.__version__}\n"


def run_on_terminal(
    argv: list[str],
    on_output: Callable[[bytes, subprocess.Popen[bytes]], None],
    *,
    columns: int | None = None,
    env: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    """Run ``argv`` on a pseudo-terminal; ``on_output(screen so far, process)`` after each read.

    Args:
        argv: the command.
        on_output: called after each read.
        columns: the terminal's width (default: the pseudo-terminal's own).
        env: the command's environment (default: this one).

    Returns:
        The exit code and everything written to the terminal.
    """
    leader, follower = pty.openpty()
    if columns is not None:
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    process = subprocess.Popen(argv, stdout=follower, stderr=follower, stdin=subprocess.DEVNULL, env=env)
    os.close(follower)
    screen = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.05)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the process closed the terminal
                break
            if not chunk:
                break
            screen += chunk
            on_output(screen, process)
        elif process.poll() is not None:
            break
    os.close(leader)
    return process.wait(timeout=30), screen


@pytest.mark.slow  # a subprocess
def test_interrupted_wait_exits_130(emu: Emulator) -> None:
    name = start_rollout(emu, duration=10)
    # A suite started in the background (``pytest &``, nohup) ignores SIGINT, and so would the command it
    # starts: Python keeps an inherited SIG_IGN. The command is started with the default disposition.
    default_sigint = (
        "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])"
    )
    argv = [sys.executable, "-c", default_sigint, str(ENTRY_POINT), "--endpoint", emu.target, "wait", name]
    argv += ["--poll-interval", "0.05"]
    interrupted: list[float] = []

    def interrupt_once_waiting(screen: bytes, process: subprocess.Popen[bytes]) -> None:
        if not interrupted and b"0/1 done" in screen:  # waiting: the bar is up
            process.send_signal(signal.SIGINT)
            interrupted.append(time.monotonic())
        elif interrupted and time.monotonic() - interrupted[0] > 20 and process.poll() is None:
            # Still waiting long after the interrupt: have it print every thread's stack and end.
            process.send_signal(signal.SIGABRT)

    code, screen = run_on_terminal(argv, interrupt_once_waiting, env={**os.environ, "PYTHONFAULTHANDLER": "1"})
    assert code == ExitCode.INTERRUPTED == 130, screen[-6000:].decode(errors="replace")
    assert b"lro-grpc: error: interrupted" in screen
    assert b"Traceback" not in screen


def test_emulator_command_delegates(cli: Any) -> None:
    result = cli("emulator", "--help")
    assert result.code == 0
    assert "--db" in result.out and "--port" in result.out
    bad = cli("emulator", "--port", "nope")
    assert bad.code == 2 and "Traceback" not in bad.err


# --- the installed entry point, in subprocesses ---------------------------------------------------


def run_entry_point(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ENTRY_POINT), *argv], capture_output=True, text=True, timeout=60, env=env, check=False)


@pytest.mark.slow  # a subprocess
def test_entry_point_help_and_bad_name() -> None:
    shown = run_entry_point("--help")
    assert shown.returncode == 0 and "exit codes:" in shown.stdout
    bad = run_entry_point("get", "projects/only")
    assert bad.returncode == 2
    assert bad.stdout == ""
    assert bad.stderr.startswith("lro-grpc: error: invalid operation name 'projects/only'")
    assert len(bad.stderr.splitlines()) == 1


@pytest.mark.slow  # a subprocess
def test_missing_credentials_exit_5(tmp_path: Path) -> None:
    # No --endpoint: the public host over TLS with Application Default Credentials, which
    # point at a file that does not exist. No RPC is attempted without credentials.
    env = {key: value for key, value in os.environ.items() if key != "LRO_GRPC_EMULATOR_HOST"}
    env["GOOGLE_APPLICATION_CREDENTIALS"] = str(tmp_path / "missing.json")
    result = run_entry_point("get", "operations/rollouts.example.com:1", env=env)
    assert result.returncode == ExitCode.RPC_FAILURE
    assert result.stderr.startswith("lro-grpc: error: authentication failed: ")
    assert len(result.stderr.splitlines()) == 1


@pytest.mark.slow  # a subprocess
def test_python_dash_m_and_emulator_host_variable(emu: Emulator) -> None:
    name = start_instance(emu, duration=1)
    emu.advance(2)
    env = {**os.environ, "LRO_GRPC_EMULATOR_HOST": emu.target}
    shown = subprocess.run(
        [PYTHON, "-m", "lro_grpc", "--json", "get", name],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["response"]["state"] == "ACTIVE"


@pytest.mark.slow  # a subprocess
def test_wait_draws_a_progress_bar_only_on_a_terminal(emu: Emulator) -> None:
    name = start_rollout(emu, duration=10)
    argv = [str(ENTRY_POINT), "--endpoint", emu.target, "wait", name, "--poll-interval", "0.05"]

    # On a terminal: the bar is drawn in place on stderr (carriage returns). The clock moves
    # only once the bar is up: halfway first (the rollout's progressPercentage, 50%), then to the end.
    steps = [(b"0/1 done", 5.0), (b" 50% 0/1 done", 5.0)]

    def move_the_clock(screen: bytes, process: subprocess.Popen[bytes]) -> None:
        if steps and steps[0][0] in screen:
            emu.advance(steps.pop(0)[1])

    code, screen = run_on_terminal(argv, move_the_clock)
    assert code == 0, screen
    text = screen.decode()
    assert not steps, text
    assert "\r[" in text
    assert "[###############---------------]  50% 0/1 done" in text
    assert "100% 1/1 done" in text
    assert "state: SUCCEEDED" in text

    # Piped: not a trace of it.
    piped = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert piped.returncode == 0
    assert piped.stderr == ""
    assert "state: SUCCEEDED" in piped.stdout


def test_wait_sweeps_a_location_with_list_operations(emu: Emulator, cli: Any) -> None:
    names = [start_instance(emu, duration=10) for _ in range(3)]

    def finish_where_only_listings_can_see() -> None:
        # From now on GetOperation always fails and listings include done
        # operations: only a sweep (answers straight from ListOperations) can
        # see these operations finish.
        emu.faults = Faults(list_filter="ignore", unavailable=1.0, methods={"GetOperation"})
        emu.advance(20)

    timer = threading.Timer(1.0, finish_where_only_listings_can_see)
    timer.start()
    try:
        result = cli(
            "--endpoint", emu.target, "--api", "financialservices", "wait", *names, "--poll-interval", "0.05",
            "--timeout", "20",
        )  # fmt: skip
    finally:
        timer.join()
    assert result.code == ExitCode.OK, result.err
    assert [row.split()[1] for row in table_rows(result.out)] == ["SUCCEEDED"] * 3
