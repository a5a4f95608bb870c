"""Errors a new user meets first, each pointing at the fix: library and command line, over real loopback."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from test_cli import ENTRY_POINT, cli, emu, free_port, start_instance

from lro_grpc import AsyncOperationsClient, CredentialsError, InvalidNameError, LroError, OperationsClient, RpcError
from lro_grpc.cli import ExitCode
from lro_grpc.emulator import Emulator
from lro_grpc.policies import RetryPolicy

__all__ = ["cli", "emu"]  # fixtures used here

FS_NAME = "projects/demo/locations/us-central1/operations/abc"
# Patient enough that a retried failure would log retries before giving up.
PATIENT = RetryPolicy(timeout=30.0, max_attempts=50, initial=0.05, maximum=0.05)


@pytest.fixture
def no_emulator_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LRO_GRPC_EMULATOR_HOST", raising=False)


# --- a scheme is rejected the same way everywhere ------------------------------------------------


@pytest.mark.usefixtures("no_emulator_variable")
@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:18080", "https://127.0.0.1:18080/", "grpc://127.0.0.1:18080"])
def test_a_url_as_endpoint_is_refused_naming_host_and_port(endpoint: str) -> None:
    for make in (
        lambda: OperationsClient(endpoint),
        lambda: OperationsClient.for_api("financialservices", endpoint=endpoint),
        lambda: AsyncOperationsClient(endpoint),
    ):
        with pytest.raises(ValueError, match=re.escape("without a scheme: give '127.0.0.1:18080'")):
            make()


def test_a_url_in_the_emulator_variable_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LRO_GRPC_EMULATOR_HOST", "http://127.0.0.1:18080")
    with pytest.raises(
        ValueError, match=re.escape("LRO_GRPC_EMULATOR_HOST 'http://127.0.0.1:18080' must be 'host:port'")
    ):
        OperationsClient.for_api("financialservices")


@pytest.mark.usefixtures("no_emulator_variable")
def test_cli_url_endpoint_is_a_usage_error(cli: Any) -> None:
    result = cli("--endpoint", "http://127.0.0.1:18080", "get", FS_NAME)
    assert result.code == ExitCode.USAGE
    result.assert_one_error_line("without a scheme", "'127.0.0.1:18080'")
    assert "credentials" not in result.err


# --- credentials ---------------------------------------------------------------------------------


@pytest.fixture
def no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No Application Default Credentials anywhere: no key file, no gcloud, no metadata server."""
    monkeypatch.delenv("LRO_GRPC_EMULATOR_HOST", raising=False)
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    monkeypatch.setenv("GCE_METADATA_HOST", f"127.0.0.1:{free_port()}")
    monkeypatch.setenv("GCE_METADATA_IP", f"127.0.0.1:{free_port()}")
    monkeypatch.setenv("NO_GCE_CHECK", "True")
    return tmp_path


def test_missing_credentials_are_an_lro_error_saying_what_was_tried(no_credentials: Path) -> None:
    with pytest.raises(CredentialsError) as raised:
        OperationsClient.for_api("financialservices")
    error = raised.value
    assert isinstance(error, LroError)
    assert error.endpoint == "financialservices.googleapis.com:443"
    message = str(error)
    for fragment in ("Application Default Credentials", "GOOGLE_APPLICATION_CREDENTIALS (not set)", "metadata server"):
        assert fragment in message
    assert "LRO_GRPC_EMULATOR_HOST is not set" in message
    assert error.__cause__ is not None  # google-auth's own error, chained


async def test_missing_credentials_async_client(no_credentials: Path) -> None:
    async with AsyncOperationsClient.for_api("financialservices") as client:
        with pytest.raises(CredentialsError, match="no credentials for TLS to financialservices"):
            await client.get(FS_NAME)


def test_a_missing_key_file_is_named(no_credentials: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key_file = str(no_credentials / "missing.json")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", key_file)
    with pytest.raises(CredentialsError) as raised:
        OperationsClient.for_api("servicemanagement")
    assert f"GOOGLE_APPLICATION_CREDENTIALS={key_file!r}" in str(raised.value)


# --- the REST port given as the gRPC endpoint; a refused loopback port ---------------------------


@contextlib.contextmanager
def http1_server() -> Iterator[tuple[str, list[int]]]:
    """A loopback port answering every connection like an HTTP/1.1 server; counts the connections."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[int] = []

    def serve() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            accepted.append(1)
            with connection, contextlib.suppress(OSError):
                connection.recv(65536)
                connection.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}", accepted
    finally:
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() up
        listener.close()
        thread.join(timeout=10)


def retries_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if "retrying" in record.getMessage()]


def test_an_http1_port_fails_at_once_saying_so(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="lro_grpc.rpc")
    with http1_server() as (target, accepted), OperationsClient(target, retry_policy=PATIENT) as client:
        with pytest.raises(RpcError) as raised:
            client.get(FS_NAME)
        assert raised.value.code is grpc.StatusCode.UNAVAILABLE
        assert "does not speak gRPC (HTTP/2)" in str(raised.value)
        assert "--rest-port" in str(raised.value)
        assert retries_logged(caplog) == []  # not retried: it would answer the same way
        assert len(accepted) == 1


def test_the_emulators_rest_port_as_grpc_endpoint(cli: Any) -> None:
    with Emulator(rest_port=0) as emulator:
        result = cli("--endpoint", f"127.0.0.1:{emulator.rest_port}", "get", FS_NAME)
    assert result.code == ExitCode.RPC_FAILURE
    result.assert_one_error_line("HTTP/1.1", "--rest-port")


def test_a_refused_loopback_port_fails_at_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="lro_grpc.rpc")
    port = free_port()
    with OperationsClient(f"127.0.0.1:{port}", retry_policy=PATIENT) as client, pytest.raises(RpcError) as raised:
        client.get(FS_NAME)
    assert raised.value.code is grpc.StatusCode.UNAVAILABLE
    assert f"nothing listens on 127.0.0.1:{port}" in str(raised.value)
    assert retries_logged(caplog) == []


async def test_a_refused_loopback_port_fails_at_once_async(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="lro_grpc.rpc")
    port = free_port()
    async with AsyncOperationsClient(f"127.0.0.1:{port}", retry_policy=PATIENT) as client:
        with pytest.raises(RpcError, match="nothing listens on"):
            await client.get(FS_NAME)
    assert retries_logged(caplog) == []


def test_a_server_that_answered_once_is_retried_when_it_refuses(caplog: pytest.LogCaptureFixture) -> None:
    # A server that answered and then refuses is restarting: retried as before.
    caplog.set_level(logging.DEBUG, logger="lro_grpc.rpc")
    emulator = Emulator(speed=0).start()
    name = start_instance(emulator)
    retry = RetryPolicy(timeout=1.0, max_attempts=50, initial=0.05, maximum=0.05)
    with OperationsClient(emulator.target, retry_policy=retry) as client:
        client.get(name)
        emulator.stop()
        with pytest.raises(RpcError):
            client.get(name)
    assert retries_logged(caplog)


def test_cli_refused_port_says_what_to_check(cli: Any) -> None:
    port = free_port()
    result = cli("--endpoint", f"127.0.0.1:{port}", "get", FS_NAME)
    assert result.code == ExitCode.RPC_FAILURE
    result.assert_one_error_line("server unreachable", f"nothing listens on 127.0.0.1:{port}")


# --- names pasted as URLs ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pasted", "name"),
    [
        (f"https://financialservices.googleapis.com/v1/{FS_NAME}", FS_NAME),
        (
            "https://servicemanagement.googleapis.com/v1/operations/rollouts.x.com:2026r1?alt=json",
            "operations/rollouts.x.com:2026r1",
        ),
        (f"//financialservices.googleapis.com/{FS_NAME}", FS_NAME),
    ],
)
def test_a_name_pasted_as_url_gets_the_name_suggested(cli: Any, pasted: str, name: str) -> None:
    with pytest.raises(InvalidNameError, match=f"did you mean '{name}'"):
        OperationsClient("127.0.0.1:1").get(pasted)
    result = cli("--endpoint", "127.0.0.1:1", "get", pasted)
    assert result.code == ExitCode.USAGE
    result.assert_one_error_line(f"did you mean '{name}'")


def test_a_parent_pasted_as_url(cli: Any) -> None:
    parent = "projects/demo/locations/us-central1"
    result = cli("--endpoint", "127.0.0.1:1", "list", f"https://financialservices.googleapis.com/v1/{parent}")
    assert result.code == ExitCode.USAGE
    result.assert_one_error_line(f"did you mean '{parent}'")


# --- the server refusing the user's own input ----------------------------------------------------


def test_a_malformed_filter_exits_2(emu: Emulator, cli: Any) -> None:
    start_instance(emu)
    result = cli("--endpoint", emu.target, "list", "projects/demo/locations/us-central1", "--filter", "done==(")
    assert result.code == ExitCode.USAGE == 2
    result.assert_one_error_line("INVALID_ARGUMENT")


# --- a closed pipe keeps the exit code ------------------------------------------------------------


def run_with_closed_stdout(*argv: str) -> subprocess.CompletedProcess[str]:
    """Run the installed command with a stdout whose reader is gone before it writes (``... | head -0``)."""
    reader, writer = os.pipe()
    os.close(reader)
    try:
        return subprocess.run(
            [str(ENTRY_POINT), *argv], stdout=writer, stderr=subprocess.PIPE, text=True, timeout=60, check=False
        )
    finally:
        os.close(writer)


def test_a_failed_operation_exits_1_into_a_closed_pipe(emu: Emulator) -> None:
    name = start_instance(emu, duration=1, fail=True)
    emu.advance(2)
    result = run_with_closed_stdout("--endpoint", emu.target, "get", name)
    assert result.returncode == ExitCode.OPERATION_FAILED, result.stderr
    assert "Traceback" not in result.stderr
    waited = run_with_closed_stdout("--endpoint", emu.target, "wait", name)
    assert waited.returncode == ExitCode.OPERATION_FAILED, waited.stderr


# --- the emulator's own start-up failure ---------------------------------------------------------


def test_the_emulator_failing_to_start_has_its_own_exit_code(cli: Any) -> None:
    with Emulator() as running:
        result = cli("emulator", "--port", str(running.port))
    assert result.code == ExitCode.EMULATOR_FAILED == 6
    assert "in use" in result.err
    help_text = cli("--help").out
    assert "6  the emulator could not start" in help_text


def test_cli_missing_credentials_says_what_was_tried(no_credentials: Path, cli: Any) -> None:
    result = cli("get", "operations/rollouts.example.com:1")
    assert result.code == ExitCode.RPC_FAILURE
    result.assert_one_error_line("authentication failed", "Application Default Credentials", "LRO_GRPC_EMULATOR_HOST")
