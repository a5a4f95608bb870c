"""The emulator's input limits on loopback: REST listen backlog, body and connection caps, hostile input.

Each hostile input is answered ``INVALID_ARGUMENT`` (REST ``400``) naming the
field, with the echoed value cut to ``ECHO_LIMIT`` characters, on gRPC and REST.
"""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Iterator
from urllib.parse import quote

import grpc
import pytest
from google.longrunning import operations_pb2
from rest_http import Reply, call

from lro_grpc._generated import financialservices_v1_pb2 as fs
from lro_grpc._generated import financialservices_v1_pb2_grpc as fs_grpc
from lro_grpc._generated import operations_pb2_grpc
from lro_grpc.emulator import Emulator
from lro_grpc.emulator._limits import (
    ECHO_LIMIT,
    MAX_FILTER_DEPTH,
    MAX_FILTER_TERMS,
    MAX_JSON_DEPTH,
    MAX_MESSAGE_LENGTH,
    MAX_STRING_LENGTH,
)
from lro_grpc.emulator._rest import REST_LISTEN_BACKLOG, REST_MAX_BODY_BYTES, REST_MAX_CONNECTIONS

PARENT = "projects/demo-project/locations/us-central1"
SERVICE = "endpointsapis.appspot.com"


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(speed=0, rest_port=0) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def operations(emu: Emulator) -> Iterator[operations_pb2_grpc.OperationsStub]:
    with grpc.insecure_channel(emu.target) as channel:
        yield operations_pb2_grpc.OperationsStub(channel)


def grpc_error(call_rpc: object) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call_rpc()  # type: ignore[operator]
    return caught.value


def assert_invalid(error: grpc.RpcError, field: str) -> str:
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (error.code(), error.details()[:300])
    details: str = error.details()
    assert details.startswith(f"{field}:"), details[:300]
    assert len(details) <= MAX_MESSAGE_LENGTH
    return details


def assert_rest_invalid(reply: Reply, field: str) -> str:
    assert reply.status == 400, reply.text[:300]
    error = reply.error
    assert (error["code"], error["status"]) == (400, "INVALID_ARGUMENT")
    message: str = error["message"]
    assert field in message, message[:300]
    assert len(message) <= MAX_MESSAGE_LENGTH
    return message


# --- Hostile input -------------------------------------------------------------------------------------


def nested_filter(depth: int) -> str:
    return "(" * depth + "done=true" + ")" * depth


def or_filter(terms: int) -> str:
    return " OR ".join(["done=true"] * terms)


@pytest.mark.parametrize(
    "text",
    [nested_filter(5000), or_filter(20_000), nested_filter(MAX_FILTER_DEPTH + 1), or_filter(MAX_FILTER_TERMS + 1)],
    ids=["5000-parentheses", "20000-or-terms", "just-too-deep", "just-too-many-terms"],
)
def test_pathological_filters_are_invalid_argument_naming_the_filter(
    operations: operations_pb2_grpc.OperationsStub, emu: Emulator, text: str
) -> None:
    request = operations_pb2.ListOperationsRequest(name=PARENT, filter=text)
    details = assert_invalid(grpc_error(lambda: operations.ListOperations(request, timeout=30)), "filter")
    assert "characters)" in details or len(text) <= ECHO_LIMIT  # the filter is quoted cut, with its length
    if len(text) < 8000:  # fits in a URL: the same answer over REST, for both APIs' list routes
        reply = call(emu.rest_url, "GET", f"/v1/{PARENT}/operations?filter={quote(text)}")
        assert_rest_invalid(reply, "filter:")
        sm_text = f"serviceName={SERVICE} AND {text}"
        assert_rest_invalid(call(emu.rest_url, "GET", f"/v1/operations?filter={quote(sm_text)}"), "filter:")


def test_filters_at_the_limits_are_served(operations: operations_pb2_grpc.OperationsStub) -> None:
    for text in (nested_filter(MAX_FILTER_DEPTH), or_filter(MAX_FILTER_TERMS)):
        response = operations.ListOperations(operations_pb2.ListOperationsRequest(name=PARENT, filter=text), timeout=30)
        assert list(response.operations) == [] or all(op.done for op in response.operations)


def test_a_deeply_nested_json_body_is_400_naming_the_body(emu: Emulator) -> None:
    path = f"/v1/{PARENT}/instances?instanceId=deep"
    for depth in (100_000, MAX_JSON_DEPTH + 1):
        body = '{"labels": ' + "[" * depth + "]" * depth + "}"
        message = assert_rest_invalid(call(emu.rest_url, "POST", path, body), "body:")
        assert str(MAX_JSON_DEPTH) in message


def test_a_100000_character_name_is_invalid_argument_with_the_echo_cut(
    operations: operations_pb2_grpc.OperationsStub, emu: Emulator
) -> None:
    name = f"{PARENT}/operations/" + "x" * 100_000
    details = assert_invalid(
        grpc_error(lambda: operations.GetOperation(operations_pb2.GetOperationRequest(name=name))), "name"
    )
    assert f"longer than {MAX_STRING_LENGTH} characters" in details
    assert repr(name[:ECHO_LIMIT]) in details and f"({len(name)} characters)" in details
    assert name[: ECHO_LIMIT + 1] not in details
    # Over REST the name must fit in a request line: 50,000 characters do.
    long_name = f"{PARENT}/operations/" + "x" * 50_000
    message = assert_rest_invalid(call(emu.rest_url, "GET", f"/v1/{long_name}"), "name:")
    assert f"({len(long_name)} characters)" in message
    # A body field too: named by its path in the request message.
    reply = call(emu.rest_url, "POST", f"/v1/services/{SERVICE}/rollouts", {"rolloutId": "r" * 100_000})
    assert_rest_invalid(reply, "rollout.rollout_id:")


def test_a_name_with_nul_is_invalid_argument(operations: operations_pb2_grpc.OperationsStub, emu: Emulator) -> None:
    name = f"{PARENT}/operations/op\x00x"
    details = assert_invalid(
        grpc_error(lambda: operations.GetOperation(operations_pb2.GetOperationRequest(name=name))), "name"
    )
    assert "NUL" in details
    reply = call(emu.rest_url, "GET", f"/v1/{PARENT}/operations/op%00x")
    assert "NUL" in assert_rest_invalid(reply, "name:")


def test_nested_string_fields_are_checked_and_named(emu: Emulator) -> None:
    with grpc.insecure_channel(emu.target) as channel:
        stub = fs_grpc.AMLStub(channel)
        request = fs.CreateInstanceRequest(
            parent=PARENT, instance_id="inst-1", instance=fs.Instance(labels={"team": "a\x00b"})
        )
        details = assert_invalid(
            grpc_error(lambda: stub.CreateInstance(request, timeout=10)), "instance.labels['team']"
        )
        assert "NUL" in details
        request = fs.CreateInstanceRequest(parent=PARENT, instance_id="i" * (MAX_STRING_LENGTH + 1))
        assert_invalid(grpc_error(lambda: stub.CreateInstance(request, timeout=10)), "instance_id")


# --- The REST gateway's limits ---------------------------------------------------------------------------


def test_rest_listen_backlog_holds_a_burst_of_300_connections(emu: Emulator) -> None:
    """Connections the kernel queues before the gateway accepts them; a dropped SYN waits 1 s to be retried."""
    assert REST_LISTEN_BACKLOG >= 300
    sockets: list[socket.socket] = []
    try:
        for _ in range(300):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", emu.rest_port))
            sockets.append(sock)
        pending = set(sockets)
        give_up = time.monotonic() + 0.8  # under the 1 s SYN retransmission: a dropped SYN is still pending then
        while pending and time.monotonic() < give_up:
            _, writable, _ = select.select([], list(pending), [], 0.05)
            for sock in writable:
                assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
            pending -= set(writable)
        assert not pending, f"{len(pending)} of 300 connections not established within 0.8 s"
    finally:
        for sock in sockets:
            sock.close()


def raw_exchange(port: int, request: bytes, timeout: float = 10) -> tuple[int, dict[str, str], dict[str, object]]:
    """Send raw bytes, read one answer (by its Content-Length); its status, headers and JSON body."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        received = b""
        while b"\r\n\r\n" not in received and (chunk := sock.recv(65536)):
            received += chunk
        head, _, body = received.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {key.lower(): value.strip() for key, _, value in (line.partition(":") for line in lines[1:])}
        while len(body) < int(headers["content-length"]) and (chunk := sock.recv(65536)):
            body += chunk
    return int(lines[0].split()[1]), headers, json.loads(body)


@pytest.mark.parametrize("expect", [False, True], ids=["plain", "expect-100-continue"])
def test_a_body_over_the_limit_is_413_without_being_read(emu: Emulator, expect: bool) -> None:
    length = REST_MAX_BODY_BYTES + 1
    request = (
        f"POST /v1/{PARENT}/instances?instanceId=big HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n" + ("Expect: 100-continue\r\n" if expect else "") + "\r\n"
    ).encode()
    status, headers, body = raw_exchange(emu.rest_port, request)  # no body sent: the answer must not wait for it
    assert status == 413
    assert headers["connection"] == "close"
    error = body["error"]
    assert isinstance(error, dict)
    assert (error["code"], error["status"]) == (413, "INVALID_ARGUMENT")
    assert error["message"].startswith("body:") and str(REST_MAX_BODY_BYTES) in error["message"]


def test_a_client_sending_an_oversized_body_reads_the_413(emu: Emulator) -> None:
    """Most clients send the whole body before reading: the gateway drops it unstored, then they read the answer."""
    for _ in range(3):
        reply = call(emu.rest_url, "POST", f"/v1/{PARENT}/instances?instanceId=big", b"x" * (4 * REST_MAX_BODY_BYTES))
        assert reply.status == 413 and reply.error["status"] == "INVALID_ARGUMENT"


def test_a_body_at_the_limit_is_read(emu: Emulator) -> None:
    body = json.dumps({"labels": {"padding": ""}}).encode()
    body += b" " * (REST_MAX_BODY_BYTES - len(body))
    reply = call(emu.rest_url, "POST", f"/v1/{PARENT}/instances?instanceId=at-limit", body)
    assert reply.status == 200, reply.text[:300]


def test_http_layer_errors_are_google_json(emu: Emulator) -> None:
    status, headers, body = raw_exchange(emu.rest_port, b"GET /v1/" + b"x" * 70_000 + b" HTTP/1.1\r\n\r\n")
    assert status == 414 and headers["content-type"].startswith("application/json")
    assert body["error"] == {
        "code": 414,
        "message": "HTTP 414: Request-URI Too Long",
        "status": "INVALID_ARGUMENT",
        "details": [],
    }


def test_connections_past_the_cap_are_answered_503(emu: Emulator) -> None:
    idle = [socket.create_connection(("127.0.0.1", emu.rest_port), timeout=10) for _ in range(REST_MAX_CONNECTIONS)]
    try:
        # The gateway takes connections in arrival order: once this one is answered, all idle ones hold a slot.
        status, headers, body = raw_exchange(
            emu.rest_port, f"GET /v1/{PARENT}/operations HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        )
        assert status == 503
        assert headers["retry-after"] == "1" and headers["connection"] == "close"
        error = body["error"]
        assert isinstance(error, dict)
        assert (error["code"], error["status"]) == (503, "UNAVAILABLE")
        assert str(REST_MAX_CONNECTIONS) in error["message"]
        idle.pop().close()
        deadline = time.monotonic() + 30
        while True:  # the freed slot returns once the gateway's thread sees the close
            reply = call(emu.rest_url, "GET", f"/v1/{PARENT}/operations")
            if reply.status == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert reply.status == 200, reply.text
    finally:
        for sock in idle:
            sock.close()
