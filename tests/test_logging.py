"""Logging: retries at DEBUG, giving up at WARNING, the WaitOperation fallback at INFO; names documented."""

from __future__ import annotations

import logging
import re
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import grpc
import pytest
from google.longrunning import operations_pb2
from servicer import Fault, ScriptedOperations

from lro_grpc import OperationNotFoundError, OperationsClient, RpcError

ROOT = Path(__file__).resolve().parent.parent
NAME = "projects/p/locations/us-central1/operations/op-1"


def records(caplog: pytest.LogCaptureFixture, logger: str) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == logger]


def test_retries_are_logged_at_debug_with_code_attempt_delay_and_operation(
    servicer: ScriptedOperations, client: OperationsClient, caplog: pytest.LogCaptureFixture
) -> None:
    servicer.add(operations_pb2.Operation(name=NAME, done=True))
    servicer.inject("GetOperation", Fault(grpc.StatusCode.UNAVAILABLE), Fault(grpc.StatusCode.UNAVAILABLE))
    with caplog.at_level(logging.DEBUG, logger="lro_grpc"):
        assert client.get(NAME, timeout=None).done  # retried however long it takes under load
    retries = records(caplog, "lro_grpc.rpc")
    assert [record.levelno for record in retries] == [logging.DEBUG, logging.DEBUG]
    # FAST_RETRY: no jitter, 0.01 s then 0.02 s.
    assert [(r.lro_code, r.lro_attempt, r.lro_delay) for r in retries] == [  # type: ignore[attr-defined]
        ("UNAVAILABLE", 1, 0.01),
        ("UNAVAILABLE", 2, 0.02),
    ]
    assert all(r.lro_operation == NAME and r.lro_method == "GetOperation" for r in retries)  # type: ignore[attr-defined]
    assert "GetOperation for 'projects/p/locations/us-central1/operations/op-1' failed with UNAVAILABLE" in (
        retries[0].getMessage()
    )


def test_giving_up_is_a_warning_but_a_plain_error_is_not(
    servicer: ScriptedOperations, client: OperationsClient, caplog: pytest.LogCaptureFixture
) -> None:
    servicer.add(operations_pb2.Operation(name=NAME, done=False))
    servicer.inject("GetOperation", *[Fault(grpc.StatusCode.UNAVAILABLE, details="link down")] * 4)
    with caplog.at_level(logging.DEBUG, logger="lro_grpc"), pytest.raises(RpcError) as caught:
        client.get(NAME, timeout=None)  # the four attempts end it, not the 5 s overall timeout (under load)
    assert caught.value.code is grpc.StatusCode.UNAVAILABLE and caught.value.method == "GetOperation"
    warnings = [r for r in records(caplog, "lro_grpc.rpc") if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].getMessage().endswith("giving up after 4 attempt(s): UNAVAILABLE: link down")

    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="lro_grpc"), pytest.raises(OperationNotFoundError):
        client.get("projects/p/locations/us-central1/operations/missing")
    assert records(caplog, "lro_grpc.rpc") == []


def test_polls_log_retries_slow_downs_and_the_wait_fallback(
    servicer: ScriptedOperations, client: OperationsClient, caplog: pytest.LogCaptureFixture
) -> None:
    servicer.script(NAME, operations_pb2.Operation(name=NAME), operations_pb2.Operation(name=NAME, done=True))
    servicer.inject("WaitOperation", Fault(grpc.StatusCode.UNIMPLEMENTED))
    servicer.inject(
        "GetOperation", Fault(grpc.StatusCode.UNAVAILABLE), Fault(grpc.StatusCode.RESOURCE_EXHAUSTED, retry_delay=0.05)
    )
    with caplog.at_level(logging.DEBUG, logger="lro_grpc"):
        assert client.wait(NAME, timeout=10).done
    fallback = [r for r in records(caplog, "lro_grpc.wait") if r.levelno == logging.INFO]
    assert (
        len(fallback) == 1
        and "WaitOperation" in fallback[0].getMessage()
        and "UNIMPLEMENTED" in (fallback[0].getMessage())
    )
    slow = [r for r in records(caplog, "lro_grpc.wait") if "RESOURCE_EXHAUSTED" in r.getMessage()]
    assert len(slow) == 1 and slow[0].levelno == logging.DEBUG and slow[0].lro_delay >= 0.05  # type: ignore[attr-defined]
    retried = records(caplog, "lro_grpc.rpc")
    assert [(r.levelno, r.lro_code) for r in retried] == [(logging.DEBUG, "UNAVAILABLE")]  # type: ignore[attr-defined]


def test_a_retry_that_succeeds_leaves_nothing_at_warning_level(
    servicer: ScriptedOperations, client: OperationsClient
) -> None:
    seen: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = seen.append  # type: ignore[method-assign]
    logger = logging.getLogger("lro_grpc")
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.WARNING)
    try:
        servicer.add(operations_pb2.Operation(name=NAME, done=True))
        servicer.inject("GetOperation", Fault(grpc.StatusCode.UNAVAILABLE))
        assert client.get(NAME).done
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
    assert seen == []


@pytest.mark.slow  # a subprocess
def test_without_logging_configured_nothing_reaches_stderr() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    script = textwrap.dedent(f"""
        from lro_grpc import OperationsClient, RetryPolicy, RpcError
        policy = RetryPolicy(initial=0.01, maximum=0.01, max_attempts=2, timeout=None)
        with OperationsClient("127.0.0.1:{port}", retry_policy=policy) as client:
            try:
                client.get("operations/x")
            except RpcError as error:
                print(error.code.name)
    """)
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert completed.stdout.strip() == "UNAVAILABLE"
    assert completed.stderr == ""


def test_every_logger_is_documented_in_the_readme() -> None:
    used = set()
    for path in (ROOT / "lro_grpc").rglob("*.py"):
        used.update(re.findall(r'getLogger\("([^"]+)"\)', path.read_text(encoding="utf-8")))
    documented = set(re.findall(r"^\| `(lro_grpc[\w.]*)` \|", (ROOT / "README.md").read_text(), re.MULTILINE))
    assert {"lro_grpc.rpc", "lro_grpc.wait"} <= used
    assert used - {"lro_grpc"} <= documented, used - documented
