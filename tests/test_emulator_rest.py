"""The emulator's REST gateway over real HTTP on loopback: every route, the JSON shapes and the error mapping."""

from __future__ import annotations

import base64
import http.client
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any

import grpc
import pytest
from google.longrunning import operations_pb2
from rest_http import Reply, call

from lro_grpc._generated import financialservices_v1_pb2 as fs
from lro_grpc._generated import financialservices_v1_pb2_grpc as fs_grpc
from lro_grpc._generated import operations_pb2_grpc
from lro_grpc._json import operation_to_dict
from lro_grpc.emulator import DURATION_HEADER, OUTCOME_HEADER, Emulator, Faults
from lro_grpc.emulator._transcoding import PathTemplate, error_body, http_status
from lro_grpc.registry import default_registry

PARENT = "projects/demo-project/locations/us-central1"
SERVICE = "endpointsapis.appspot.com"
START = datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc)
Body = bytes | str | Mapping[str, Any] | None
INT_ENUMS = "$alt=json;enum-encoding=int"
FS_METADATA = "type.googleapis.com/google.cloud.financialservices.v1.OperationMetadata"
SM_METADATA = "type.googleapis.com/google.api.servicemanagement.v1.OperationMetadata"


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(speed=0, start_time=START, default_duration=60, rest_port=0) as emulator:
        yield emulator


class Rest:
    """The two APIs' REST calls against one gateway."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def __call__(self, method: str, path: str, body: Body = None, headers: dict[str, str] | None = None) -> Reply:
        return call(self.base_url, method, path, body, headers)

    def ok(self, method: str, path: str, body: Body = None, headers: dict[str, str] | None = None) -> dict[str, Any]:
        reply = self(method, path, body, headers)
        assert reply.status == 200, reply.text
        assert reply.headers["content-type"] == "application/json; charset=UTF-8"
        result: dict[str, Any] = reply.body
        return result

    def create_instance(self, instance_id: str = "inst-1", body: Body = None, **headers: str) -> dict[str, Any]:
        return self.ok("POST", f"/v1/{PARENT}/instances?instanceId={instance_id}", body or {}, headers or None)

    def get(self, name: str, query: str = "") -> dict[str, Any]:
        return self.ok("GET", f"/v1/{name}" + (f"?{query}" if query else ""))

    def create_rollout(self, rollout_id: str, body: Body = None, **headers: str) -> dict[str, Any]:
        return self.ok("POST", f"/v1/services/{SERVICE}/rollouts", body or {"rolloutId": rollout_id}, headers or None)


@pytest.fixture
def rest(emu: Emulator) -> Rest:
    return Rest(emu.rest_url)


def assert_error(reply: Reply, http: int, status: str, *mentions: str) -> dict[str, Any]:
    assert reply.status == http, reply.text
    error = reply.error
    assert (error["code"], error["status"]) == (http, status)
    for text in mentions:
        assert text in error["message"]
    assert isinstance(error["details"], list)
    return error


# --- Financial Services -----------------------------------------------------------------------------


def test_create_instance_starts_a_running_operation(emu: Emulator, rest: Rest) -> None:
    operation = rest.create_instance("inst-1", {"labels": {"team": "risk"}})

    assert operation["name"].startswith(f"{PARENT}/operations/operation-")
    assert operation["done"] is False
    assert list(operation) == ["name", "metadata", "done"]
    assert operation["metadata"] == {
        "@type": FS_METADATA,
        "createTime": "2026-01-05T12:00:00Z",
        "target": f"{PARENT}/instances/inst-1",
        "verb": "create",
        "requestedCancellation": False,
        "apiVersion": "v1",
    }
    assert rest.get(operation["name"]) == operation


def test_instance_finishes_in_the_documented_json_shape(emu: Emulator, rest: Rest) -> None:
    kms_key = "projects/kms/locations/us-central1/keyRings/ring/cryptoKeys/key"
    name = rest.create_instance("inst-1", {"kmsKey": kms_key})["name"]
    emu.advance(60)

    done = rest.get(name)

    assert done["done"] is True
    assert done["metadata"]["endTime"] == "2026-01-05T12:01:00Z"
    assert done["response"] == {
        "@type": "type.googleapis.com/google.cloud.financialservices.v1.Instance",
        "name": f"{PARENT}/instances/inst-1",
        "createTime": "2026-01-05T12:00:00Z",
        "updateTime": "2026-01-05T12:01:00Z",
        "state": "ACTIVE",
        "kmsKey": kms_key,
    }
    assert rest.get(name, INT_ENUMS)["response"]["state"] == fs.Instance.State.ACTIVE


def test_update_instance_patches_with_an_update_mask(emu: Emulator, rest: Rest) -> None:
    instance = f"{PARENT}/instances/inst-1"
    operation = rest.ok(
        "PATCH",
        f"/v1/{instance}?updateMask=labels,kmsKey&requestId=7a3c1b4e-5f6d-4e8a-9b0c-1d2e3f4a5b6c",
        {"labels": {"a": "b"}},
    )

    assert operation["metadata"]["verb"] == "update"
    assert operation["metadata"]["target"] == instance
    emu.advance(60)
    response = rest.get(operation["name"])["response"]
    assert (response["name"], response["labels"], response["state"]) == (instance, {"a": "b"}, "ACTIVE")


def test_delete_instance_ends_with_empty(emu: Emulator, rest: Rest) -> None:
    operation = rest.ok("DELETE", f"/v1/{PARENT}/instances/inst-1")

    assert (operation["metadata"]["verb"], operation["metadata"]["target"]) == ("delete", f"{PARENT}/instances/inst-1")
    emu.advance(60)
    assert rest.get(operation["name"])["response"] == {"@type": "type.googleapis.com/google.protobuf.Empty"}


def test_request_id_makes_create_idempotent(rest: Rest) -> None:
    first_id, second_id = "7a3c1b4e-5f6d-4e8a-9b0c-000000000001", "7a3c1b4e-5f6d-4e8a-9b0c-000000000002"
    path = f"/v1/{PARENT}/instances?instanceId=inst-1&requestId={first_id}"
    first = rest.ok("POST", path, {})
    assert rest.ok("POST", path, {})["name"] == first["name"]
    assert (
        rest.ok("POST", f"/v1/{PARENT}/instances?instanceId=inst-1&requestId={second_id}", {})["name"] != first["name"]
    )
    reused = rest("POST", f"/v1/{PARENT}/instances?instanceId=inst-2&requestId={first_id}", {})
    assert_error(reused, 400, "INVALID_ARGUMENT", "request_id:", first["name"])
    assert_error(
        rest("POST", f"/v1/{PARENT}/instances?instanceId=inst-3&requestId=req-1", {}),
        400,
        "INVALID_ARGUMENT",
        "request_id:",
        "'req-1'",
    )


def test_list_pages_and_filters(emu: Emulator, rest: Rest) -> None:
    names = [rest.create_instance(f"inst-{index}")["name"] for index in range(3)]
    rest.create_instance("quick", **{DURATION_HEADER: "0"})

    first = rest.ok("GET", f"/v1/{PARENT}/operations?pageSize=2")
    assert [operation["name"] for operation in first["operations"]] == names[:2]
    second = rest.ok("GET", f"/v1/{PARENT}/operations?pageSize=2&pageToken={first['nextPageToken']}")
    assert [operation["name"] for operation in second["operations"]][:1] == names[2:]
    assert "nextPageToken" not in second

    running = rest.ok("GET", f"/v1/{PARENT}/operations?filter=done%3Dfalse")
    assert [operation["name"] for operation in running["operations"]] == names
    assert rest.ok("GET", "/v1/projects/other/locations/us-east1/operations") == {"operations": []}


def test_list_rejects_a_foreign_page_token(rest: Rest) -> None:
    reply = rest("GET", f"/v1/{PARENT}/operations?pageToken=bogus")
    assert_error(reply, 400, "INVALID_ARGUMENT", "page_token")


def test_cancel_accepts_an_empty_body_and_answers_an_empty_object(emu: Emulator, rest: Rest) -> None:
    name = rest.create_instance()["name"]

    assert rest.ok("POST", f"/v1/{name}:cancel", b"") == {}

    cancelled = rest.get(name)
    assert cancelled["done"] is True
    assert cancelled["error"] == {"code": 1, "message": "Operation was cancelled.", "details": []}
    assert cancelled["metadata"]["requestedCancellation"] is True
    assert rest.ok("POST", f"/v1/{name}:cancel", {}) == {}  # a done operation: nothing changes


def test_delete_forgets_the_operation(rest: Rest) -> None:
    name = rest.create_instance()["name"]

    assert rest.ok("DELETE", f"/v1/{name}") == {}

    error = assert_error(rest("GET", f"/v1/{name}"), 404, "NOT_FOUND", name)
    assert error["details"] == []
    assert_error(rest("DELETE", f"/v1/{name}"), 404, "NOT_FOUND")
    assert_error(rest("POST", f"/v1/{name}:cancel", b""), 404, "NOT_FOUND")


def test_rest_and_grpc_share_one_state(emu: Emulator, rest: Rest) -> None:
    registry = default_registry()
    over_rest = rest.create_instance("from-rest")
    with grpc.insecure_channel(emu.target) as channel:
        operations = operations_pb2_grpc.OperationsStub(channel)
        seen_by_grpc = operations.GetOperation(operations_pb2.GetOperationRequest(name=over_rest["name"]), timeout=5)
        assert operation_to_dict(seen_by_grpc, registry) == over_rest

        over_grpc = fs_grpc.AMLStub(channel).CreateInstance(
            fs.CreateInstanceRequest(parent=PARENT, instance_id="from-grpc"), timeout=5
        )
        assert rest.get(over_grpc.name) == operation_to_dict(over_grpc, registry)
        rest.ok("POST", f"/v1/{over_grpc.name}:cancel", b"")
        after = operations.GetOperation(operations_pb2.GetOperationRequest(name=over_grpc.name), timeout=5)
        assert after.done and after.error.code == grpc.StatusCode.CANCELLED.value[0]


# --- Service Management -----------------------------------------------------------------------------


def test_rollout_metadata_evolves_to_success(emu: Emulator, rest: Rest) -> None:
    body = {"rolloutId": "2016-07-16r2", "trafficPercentStrategy": {"percentages": {"2016-07-16r1": 100}}}
    operation = rest.create_rollout("2016-07-16r2", body)
    name = f"operations/rollouts.{SERVICE}:2016-07-16r2"
    assert operation["name"] == name

    emu.advance(30)
    running = rest.get(name)
    assert running["done"] is False
    assert running["metadata"]["@type"] == SM_METADATA
    assert running["metadata"]["resourceNames"] == [f"services/{SERVICE}/rollouts/2016-07-16r2"]
    assert running["metadata"]["progressPercentage"] == 50
    assert [step["status"] for step in running["metadata"]["steps"]] == ["DONE", "IN_PROGRESS", "NOT_STARTED"]
    numbered = rest.get(name, INT_ENUMS)["metadata"]["steps"]
    assert [step["status"] for step in numbered] == [1, 3, 2]  # DONE, IN_PROGRESS, NOT_STARTED

    emu.advance(30)
    done = rest.get(name)
    assert done["metadata"]["progressPercentage"] == 100
    assert done["response"]["@type"] == "type.googleapis.com/google.api.servicemanagement.v1.Rollout"
    assert done["response"]["rolloutId"] == "2016-07-16r2"
    assert done["response"]["status"] == "SUCCESS"
    assert done["response"]["trafficPercentStrategy"] == {"percentages": {"2016-07-16r1": 100.0}}


def test_submit_config_source(emu: Emulator, rest: Rest) -> None:
    contents = base64.b64encode(b"type: google.api.Service").decode()
    body = {"configSource": {"files": [{"filePath": "api.yaml", "fileContents": contents, "fileType": 1}]}}
    operation = rest.ok("POST", f"/v1/services/{SERVICE}/configs:submit", body)

    assert operation["name"].startswith(f"operations/serviceConfigs.{SERVICE}:")
    emu.advance(60)
    response = rest.get(operation["name"])["response"]
    assert response["serviceConfig"]["name"] == SERVICE

    missing = rest("POST", f"/v1/services/{SERVICE}/configs:submit", {})
    assert_error(missing, 400, "INVALID_ARGUMENT", "config_source")


def test_service_create_delete_undelete(emu: Emulator, rest: Rest) -> None:
    created = rest.ok("POST", "/v1/services", {"serviceName": SERVICE, "producerProjectId": "prod"})
    deleted = rest.ok("DELETE", f"/v1/services/{SERVICE}")
    undeleted = rest.ok("POST", f"/v1/services/{SERVICE}:undelete")
    emu.advance(60)

    managed = rest.get(created["name"])["response"]
    assert (managed["serviceName"], managed["producerProjectId"]) == (SERVICE, "prod")
    assert rest.get(deleted["name"])["response"] == {"@type": "type.googleapis.com/google.protobuf.Empty"}
    assert rest.get(undeleted["name"])["response"]["service"]["serviceName"] == SERVICE


def test_service_management_list_and_filter(rest: Rest) -> None:
    first = rest.create_rollout("r1")["name"]
    other = rest.ok("POST", "/v1/services/other.example.com/rollouts", {"rolloutId": "r1"})["name"]

    # The reference makes serviceName required.
    assert_error(rest("GET", "/v1/operations"), 400, "INVALID_ARGUMENT", "filter:", "serviceName is required")
    only = rest.ok("GET", f"/v1/operations?filter=serviceName%3D{SERVICE}&pageSize=5")
    assert [operation["name"] for operation in only["operations"]] == [first]
    others = rest.ok("GET", "/v1/operations?filter=serviceName%3Dother.example.com%20AND%20status%3Din_progress")
    assert [operation["name"] for operation in others["operations"]] == [other]


def test_service_management_has_no_rest_cancel_or_delete(rest: Rest) -> None:
    name = rest.create_rollout("r1")["name"]
    # servicemanagement_v1.yaml binds only get and list: the other two are not REST methods of the API.
    assert_error(rest("POST", f"/v1/{name}:cancel", b""), 404, "NOT_FOUND", "no such method")
    assert_error(rest("DELETE", f"/v1/{name}"), 404, "NOT_FOUND", "no such method")
    assert rest.get(name)["done"] is False


# --- Errors -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "http"),
    [
        (grpc.StatusCode.CANCELLED, 499),
        (grpc.StatusCode.UNKNOWN, 500),
        (grpc.StatusCode.INVALID_ARGUMENT, 400),
        (grpc.StatusCode.DEADLINE_EXCEEDED, 504),
        (grpc.StatusCode.NOT_FOUND, 404),
        (grpc.StatusCode.ALREADY_EXISTS, 409),
        (grpc.StatusCode.PERMISSION_DENIED, 403),
        (grpc.StatusCode.UNAUTHENTICATED, 401),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, 429),
        (grpc.StatusCode.FAILED_PRECONDITION, 400),
        (grpc.StatusCode.ABORTED, 409),
        (grpc.StatusCode.OUT_OF_RANGE, 400),
        (grpc.StatusCode.UNIMPLEMENTED, 501),
        (grpc.StatusCode.INTERNAL, 500),
        (grpc.StatusCode.UNAVAILABLE, 503),
        (grpc.StatusCode.DATA_LOSS, 500),
    ],
)
def test_status_codes_map_to_google_http_statuses(code: grpc.StatusCode, http: int) -> None:
    # google/rpc/code.proto gives each code's HTTP mapping.
    assert http_status(code) == http
    assert error_body(code, "why") == {"error": {"code": http, "message": "why", "status": code.name, "details": []}}


@pytest.mark.parametrize(
    ("name", "http", "status"),
    [
        (f"{PARENT}/operations/operation-unknown", 404, "NOT_FOUND"),
        ("operations/rollouts.x:unknown", 404, "NOT_FOUND"),
        ("operations/a/b", 400, "INVALID_ARGUMENT"),
    ],
)
def test_get_errors(rest: Rest, name: str, http: int, status: str) -> None:
    assert_error(rest("GET", f"/v1/{name}"), http, status, repr(name))


def test_bad_request_fields_are_invalid_argument(rest: Rest) -> None:
    error = assert_error(rest("POST", f"/v1/{PARENT}/instances?instanceId=bad%20id", {}), 400, "INVALID_ARGUMENT")
    assert error["message"].startswith("instance_id:")
    assert "'bad id'" in error["message"]


def test_reused_rollout_id_is_already_exists(rest: Rest) -> None:
    rest.create_rollout("r1")
    reply = rest("POST", f"/v1/services/{SERVICE}/rollouts", {"rolloutId": "r1"})
    assert_error(reply, 409, "ALREADY_EXISTS", f"operations/rollouts.{SERVICE}:r1")


@pytest.mark.parametrize(
    ("method", "path", "body", "mentions"),
    [
        ("POST", f"/v1/{PARENT}/instances?instanceId=a", b"{not json", "Invalid JSON payload"),
        ("POST", f"/v1/{PARENT}/instances?instanceId=a", b"[1]", "Expected an object"),
        ("POST", f"/v1/{PARENT}/instances?instanceId=a", {"colour": "red"}, "colour"),
        ("POST", f"/v1/{PARENT}/instances?instanceId=a", {"state": "MELTED"}, "MELTED"),
        ("POST", f"/v1/{PARENT}/instances?instanceId=a&colour=red", {}, "colour"),
        ("POST", f"/v1/{PARENT}/instances?instanceId=a&instanceId=b", {}, "instanceId"),
        ("POST", f"/v1/{PARENT}/instances?parent=projects/x/locations/y", {}, "parent"),
        ("POST", f"/v1/{PARENT}/instances?instance.labels=x", {}, "instance.labels"),
        ("GET", f"/v1/{PARENT}/operations?pageSize=many", None, "pageSize"),
        ("GET", f"/v1/{PARENT}/operations?returnPartialSuccess=maybe", None, "returnPartialSuccess"),
        ("GET", f"/v1/{PARENT}/operations?fields=operations.name", None, "fields"),
        ("GET", f"/v1/{PARENT}/operations?$alt=proto", None, "$alt"),
        ("GET", f"/v1/{PARENT}/operations?prettyPrint=sometimes", None, "prettyPrint"),
    ],
)
def test_malformed_requests_are_invalid_argument(rest: Rest, method: str, path: str, body: Body, mentions: str) -> None:
    assert_error(rest(method, path, body), 400, "INVALID_ARGUMENT", mentions)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/projects/p/operations/x"),
        ("GET", "/v2/operations/x"),
        ("PUT", f"/v1/{PARENT}/operations/x"),
        ("POST", f"/v1/{PARENT}/operations/x:frobnicate"),
        ("GET", "/"),
        ("OPTIONS", f"/v1/{PARENT}/operations"),
    ],
)
def test_unknown_routes_are_not_found(rest: Rest, method: str, path: str) -> None:
    assert_error(rest(method, path), 404, "NOT_FOUND", "no such method", method)


def test_chunked_bodies_are_refused(emu: Emulator) -> None:
    # One write, so the whole request is in before the server answers and closes.
    request = (
        f"POST /v1/{PARENT}/instances?instanceId=a HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", emu.rest_port), timeout=10) as connection:
        connection.sendall(request)
        response = http.client.HTTPResponse(connection)
        response.begin()
        assert response.status == 400
        assert response.getheader("Connection") == "close"
        assert b"send Content-Length" in response.read()
    assert rest_get_works(emu)


def rest_get_works(emu: Emulator) -> bool:
    return call(emu.rest_url, "GET", f"/v1/{PARENT}/operations").status == 200


def test_ignored_and_system_parameters(rest: Rest) -> None:
    name = rest.create_instance()["name"]
    reply = rest("GET", f"/v1/{name}?key=api-key&$.xgafv=2&prettyPrint=false&alt=json")
    assert reply.status == 200
    assert "\n" not in reply.text
    assert reply.body["name"] == name
    assert rest("GET", f"/v1/{name}").text.startswith('{\n  "name"')


# --- Per-call headers and fault injection ---------------------------------------------------------------


def test_duration_header_zero_finishes_at_once(rest: Rest) -> None:
    operation = rest.create_instance(**{DURATION_HEADER: "0"})
    assert operation["done"] is True
    assert operation["response"]["state"] == "ACTIVE"


def test_outcome_header_fail_ends_with_error_info(rest: Rest) -> None:
    operation = rest.create_rollout("r1", **{DURATION_HEADER: "0", OUTCOME_HEADER: "fail"})

    assert operation["done"] is True
    assert operation["error"]["code"] == 9  # FAILED_PRECONDITION
    [detail] = operation["error"]["details"]
    assert detail["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"
    assert detail["reason"] == "EMULATED_FAILURE"
    assert detail["domain"] == "servicemanagement.googleapis.com"


@pytest.mark.parametrize(("header", "value"), [(DURATION_HEADER, "-1"), (OUTCOME_HEADER, "explode")])
def test_bad_control_headers_are_invalid_argument(rest: Rest, header: str, value: str) -> None:
    reply = rest("POST", f"/v1/{PARENT}/instances?instanceId=a", {}, {header: value})
    assert_error(reply, 400, "INVALID_ARGUMENT", header, repr(value))


def test_unavailable_fault(emu: Emulator, rest: Rest) -> None:
    name = rest.create_instance()["name"]
    emu.faults.unavailable = 1.0
    assert_error(rest("GET", f"/v1/{name}"), 503, "UNAVAILABLE", "GetOperation")


def test_resource_exhausted_fault_carries_retry_info(emu: Emulator, rest: Rest) -> None:
    emu.faults = Faults(resource_exhausted=1.0, retry_delay=1.5)
    error = assert_error(rest("GET", f"/v1/{PARENT}/operations"), 429, "RESOURCE_EXHAUSTED", "quota")
    assert error["details"] == [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1.500s"}]


def test_faults_can_target_some_methods(emu: Emulator, rest: Rest) -> None:
    emu.faults = Faults(unavailable=1.0, methods={"CreateInstance"})
    assert_error(rest("POST", f"/v1/{PARENT}/instances?instanceId=a", {}), 503, "UNAVAILABLE", "CreateInstance")
    assert rest.ok("GET", f"/v1/{PARENT}/operations") == {"operations": []}


def test_latency_is_added(emu: Emulator, rest: Rest) -> None:
    emu.faults.latency = 0.2
    started = time.monotonic()
    rest.ok("GET", f"/v1/{PARENT}/operations")
    assert time.monotonic() - started >= 0.2


# --- The gateway's lifecycle ----------------------------------------------------------------------------


def test_keep_alive_connection_serves_many_requests(emu: Emulator) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", emu.rest_port, timeout=10)
    try:
        # Refused requests with bodies in between: each is read whole, so the next request parses.
        for query, expected in [("a&$alt=proto", 400), ("a", 200), ("b&colour=red", 400), ("b", 200)]:
            connection.request("POST", f"/v1/{PARENT}/instances?instanceId={query}", body=b'{"labels": {}}')
            response = connection.getresponse()
            assert response.status == expected
            assert response.getheader("Connection") != "close"
            response.read()
        assert connection.sock is not None  # still the first connection
    finally:
        connection.close()


def test_stop_closes_idle_keep_alive_connections() -> None:
    emu = Emulator(speed=0, rest_port=0).start()
    connection = http.client.HTTPConnection("127.0.0.1", emu.rest_port, timeout=10)
    try:
        connection.request("GET", f"/v1/{PARENT}/operations")
        connection.getresponse().read()
        started = time.monotonic()
        emu.stop()
        # The idle connection's thread would otherwise hold it open for a minute; stop() does not wait for it.
        assert time.monotonic() - started < 10
        assert connection.sock is not None
        assert connection.sock.recv(1) == b""  # closed by the server
    finally:
        connection.close()
        emu.stop()


@pytest.mark.parametrize(("grace", "latency", "status"), [(5.0, 0.5, 200), (0.0, 3.0, 503)])
def test_stop_answers_calls_in_flight(grace: float, latency: float, status: int) -> None:
    emu = Emulator(speed=0, rest_port=0, faults=Faults(latency=latency)).start()
    replies: list[Reply] = []
    caller = threading.Thread(target=lambda: replies.append(call(emu.rest_url, "GET", f"/v1/{PARENT}/operations")))
    try:
        caller.start()
        time.sleep(0.2)  # the call is in the emulator, sleeping its injected latency
        emu.stop(grace=grace)
        caller.join(10)
    finally:
        emu.stop()
    [reply] = replies
    assert reply.status == status, reply.text
    if status == 503:
        assert_error(reply, 503, "UNAVAILABLE", "stopping")


def test_concurrent_rest_and_grpc_calls_stay_consistent(emu: Emulator) -> None:
    def create_and_cancel(index: int) -> str:
        name: str = call(emu.rest_url, "POST", f"/v1/{PARENT}/instances?instanceId=i-{index}", {}).body["name"]
        assert call(emu.rest_url, "POST", f"/v1/{name}:cancel", b"").status == 200
        return name

    with ThreadPoolExecutor(max_workers=8) as pool:
        names = list(pool.map(create_and_cancel, range(40)))

    assert len(set(names)) == 40
    with grpc.insecure_channel(emu.target) as channel:
        listed = operations_pb2_grpc.OperationsStub(channel).ListOperations(
            operations_pb2.ListOperationsRequest(name=PARENT, page_size=100), timeout=5
        )
    assert sorted(operation.name for operation in listed.operations) == sorted(names)
    assert all(operation.done and operation.error.code == 1 for operation in listed.operations)


def test_rest_is_off_unless_asked_for() -> None:
    with Emulator() as emu, pytest.raises(RuntimeError, match="rest_port"):
        _ = emu.rest_url


@pytest.mark.parametrize(
    ("arguments", "error", "mentions"),
    [
        ({"rest_port": -1}, ValueError, "rest_port"),
        ({"rest_port": "8081"}, TypeError, "rest_port"),
        ({"rest_port": True}, TypeError, "rest_port"),
        ({"port": 8090, "rest_port": 8090}, ValueError, "rest_port must differ"),
    ],
)
def test_rest_port_is_validated(arguments: dict[str, object], error: type[Exception], mentions: str) -> None:
    with pytest.raises(error, match=mentions):
        Emulator(**arguments)  # type: ignore[arg-type]


def test_a_taken_rest_port_fails_to_start() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(RuntimeError, match=f"127.0.0.1:{port}"):
            Emulator(rest_port=port).start()


@pytest.mark.parametrize(
    ("template", "path", "expected"),
    [
        ("/v1/{name=operations/**}", "/v1/operations/rollouts.a:1r2", {"name": "operations/rollouts.a:1r2"}),
        ("/v1/{name=operations/**}", "/v1/operations/a%2Fb%20c", {"name": "operations/a%2Fb c"}),
        ("/v1/{name=operations/**}", "/v1/operations", None),
        ("/v1/services/{service_name}:undelete", "/v1/services/a.b%2Dc:undelete", {"service_name": "a.b-c"}),
        ("/v1/services/{service_name}:undelete", "/v1/services/a/b:undelete", None),
        ("/v1/{instance.name=p/*/i/*}", "/v1/p/x/i/y", {"instance.name": "p/x/i/y"}),
    ],
)  # fmt: skip
def test_path_templates(template: str, path: str, expected: dict[str, str] | None) -> None:
    assert PathTemplate(template).match(path) == expected
