"""``python -m lro_grpc.emulator`` / ``lro_grpc.emulator.main``."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from google.longrunning import operations_pb2
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2, status_pb2
from rest_http import call

from lro_grpc._generated import financialservices_v1_pb2 as fs
from lro_grpc._generated import financialservices_v1_pb2_grpc as fs_grpc
from lro_grpc._generated import operations_pb2_grpc
from lro_grpc.emulator import STATUS_DETAILS_KEY, Emulator, main

pytestmark = pytest.mark.slow  # runs the emulator in subprocesses

PARENT = "projects/p/locations/us-east1"


@contextmanager
def emulator_process(*arguments: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "lro_grpc.emulator", "--port", "0", *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        target = process.stdout.readline().strip()
        assert target.startswith("127.0.0.1:"), process.stderr.read() if process.stderr else target
        yield target, process
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


def test_serves_until_sigterm_and_keeps_operations_in_the_db(tmp_path: Path) -> None:
    db = tmp_path / "ops.sqlite"
    with emulator_process("--db", str(db), "--speed", "100", "--default-duration", "5", "--wait-rpc") as (
        target,
        process,
    ):
        with grpc.insecure_channel(target) as channel:
            operation = fs_grpc.AMLStub(channel).CreateInstance(
                fs.CreateInstanceRequest(parent=PARENT, instance_id="a"), timeout=10
            )
            assert not operation.done
            done = operations_pb2_grpc.OperationsStub(channel).WaitOperation(
                operations_pb2.WaitOperationRequest(name=operation.name, timeout=duration_pb2.Duration(seconds=10)),
                timeout=10,
            )
            assert done.done
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0

    with Emulator(db=db) as emu, grpc.insecure_channel(emu.target) as channel:
        again = operations_pb2_grpc.OperationsStub(channel).GetOperation(
            operations_pb2.GetOperationRequest(name=operation.name), timeout=5
        )
        assert again.done
        assert again.response == done.response


def test_fault_flags() -> None:
    flags = ("--fail-resource-exhausted", "0.5", "--retry-delay", "2", "--seed", "3")
    with emulator_process(*flags) as (target, process), grpc.insecure_channel(target) as channel:
        operations = operations_pb2_grpc.OperationsStub(channel)
        codes = []
        for _ in range(30):
            try:
                operations.GetOperation(operations_pb2.GetOperationRequest(name="operations/x"), timeout=5)
            except grpc.RpcError as error:
                codes.append(error.code())
                if error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                    trailers = dict(error.trailing_metadata())
                    status = status_pb2.Status.FromString(trailers[STATUS_DETAILS_KEY])
                    retry_info = error_details_pb2.RetryInfo()
                    assert status.details[0].Unpack(retry_info)
                    assert retry_info.retry_delay.ToTimedelta() == timedelta(seconds=2)
        assert set(codes) == {grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.NOT_FOUND}
        # Without --wait-rpc, WaitOperation is not offered (as on both APIs); injected faults still come first.
        wait_codes = set()
        for _ in range(10):
            with pytest.raises(grpc.RpcError) as caught:
                operations.WaitOperation(operations_pb2.WaitOperationRequest(name="operations/x"), timeout=5)
            wait_codes.add(caught.value.code())
        assert wait_codes == {grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.RESOURCE_EXHAUSTED}
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0


def test_rest_port_serves_rest_over_the_same_state() -> None:
    with emulator_process("--rest-port", "0", "--fail-unavailable", "1", "--seed", "1") as (target, process):
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:")
        reply = call(base_url, "GET", f"/v1/{PARENT}/operations")
        assert (reply.status, reply.body["error"]["status"]) == (503, "UNAVAILABLE")  # the fault flags apply to REST
        with grpc.insecure_channel(target) as channel, pytest.raises(grpc.RpcError) as caught:
            operations_pb2_grpc.OperationsStub(channel).ListOperations(
                operations_pb2.ListOperationsRequest(name=PARENT), timeout=5
            )
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0


@pytest.mark.parametrize(
    ("argv", "mentions"),
    [
        (["--speed", "-1"], "--speed"),
        (["--port", "99999"], "--port"),
        (["--rest-port", "http"], "--rest-port"),
        (["--fail-unavailable", "2"], "--fail-unavailable"),
        (["--latency-ms", "soon"], "--latency-ms"),
        (["--fail-unavailable", "0.7", "--fail-resource-exhausted", "0.7"], "must be <= 1"),
        (["--bogus"], "--bogus"),
    ],
)
def test_bad_arguments_exit_2(argv: list[str], mentions: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert mentions in captured.err
    assert captured.out == ""


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    help_text = capsys.readouterr().out
    for flag in ("--rest-port", "--db", "--speed", "--retention-days", "--default-duration", "--wait-rpc", "--seed"):
        assert flag in help_text


def test_a_taken_port_exits_6_its_own_code(capsys: pytest.CaptureFixture[str]) -> None:
    with Emulator() as running:
        port = running.port
        assert main(["--port", str(port)]) == 6  # not 1, which lro-grpc uses for "operation failed"
    captured = capsys.readouterr()
    assert f"127.0.0.1:{port}" in captured.err
    assert "in use" in captured.err
    assert captured.out == ""
