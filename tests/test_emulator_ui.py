"""The emulator's operations page (``/ui/``) in a real headless Chromium, and its control API over HTTP.

Browser tests are skipped only when the browser is missing and ``CI`` is unset
(``apt-get install -y chromium chromium-driver``); in CI they run or fail.
Set ``LRO_GRPC_UI_SCREENSHOT=docs/emulator-ui.png`` to keep the screenshot a test takes.
"""

from __future__ import annotations

import http.client
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest
from browser import chromium, missing_browser
from google.longrunning import operations_pb2
from rest_http import call

from lro_grpc import OperationsClient
from lro_grpc._generated import operations_pb2_grpc
from lro_grpc._generated import servicemanagement_v1_pb2 as sm
from lro_grpc.emulator import Emulator
from lro_grpc.emulator._ui import TOKEN_HEADER
from lro_grpc.errors import OperationError

PARENT = "projects/demo-project/locations/us-central1"
OTHER_PARENT = "projects/demo-project/locations/europe-west1"
SERVICE = "example.googleapis.com"
T = TypeVar("T")

_MISSING = missing_browser()
needs_browser = pytest.mark.skipif(
    _MISSING is not None and not os.environ.get("CI"), reason=f"no headless browser: {_MISSING}"
)


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    if _MISSING is not None:
        if os.environ.get("CI"):
            pytest.fail(f"browser tests must run in CI: {_MISSING}")
        pytest.skip(_MISSING)
    with chromium() as browser:
        browser.implicitly_wait(0)
        yield browser


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(speed=1, rest_port=0, default_duration=600) as emulator:
        yield emulator


@pytest.fixture
def stub(emu: Emulator) -> Iterator[operations_pb2_grpc.OperationsStub]:
    with grpc.insecure_channel(emu.target) as channel:
        yield operations_pb2_grpc.OperationsStub(channel)


def eventually(check: Callable[[], T | None], timeout: float = 10, what: str = "condition") -> T:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def open_page(driver: Any, emu: Emulator, *names: str) -> None:
    driver.get(emu.ui_url)
    for name in names:
        row(driver, name)


def row(driver: Any, name: str, timeout: float = 10) -> Any:
    selector = f'tr[data-operation-name="{name}"]'
    return eventually(lambda: driver.find_elements("css selector", selector), timeout, f"row {name}")[0]


def state_of(driver: Any, name: str) -> str:
    return str(row(driver, name).get_attribute("data-state"))


def refreshes(driver: Any) -> int:
    return int(driver.execute_script("return window.lroUi.refreshes"))


def wait_refreshes(driver: Any, count: int = 2) -> None:
    start = refreshes(driver)
    eventually(lambda: refreshes(driver) >= start + count, 10, f"{count} refreshes")


def set_input(driver: Any, selector: str, value: str) -> None:
    """Type ``value`` into an input and fire its change event, as a user leaving the field does."""
    element = driver.find_element("css selector", selector)
    driver.execute_script(
        "arguments[0].focus(); arguments[0].value = arguments[1];"
        "arguments[0].dispatchEvent(new Event('change', {bubbles: true})); arguments[0].blur();",
        element,
        value,
    )


def error_banner(driver: Any) -> str | None:
    banner = driver.find_element("id", "error")
    return None if banner.get_attribute("hidden") is not None else str(driver.find_element("id", "error-text").text)


# --- In the browser -----------------------------------------------------------------------------------------


@needs_browser
def test_rows_appear_and_succeed_finishes_the_operation_for_grpc_clients(
    driver: Any, emu: Emulator, stub: operations_pb2_grpc.OperationsStub, tmp_path: Path
) -> None:
    names = [emu.start_operation(PARENT, duration=seconds) for seconds in (40, 90, 600)]
    names.append(emu.start_operation(f"services/{SERVICE}", duration=30))
    failed = emu.start_operation(OTHER_PARENT, duration=0, fail=True)
    open_page(driver, emu, *names, failed)
    assert [state_of(driver, name) for name in names] == ["RUNNING"] * 4
    assert state_of(driver, failed) == "FAILED"
    listed = [tr.get_attribute("data-operation-name") for tr in driver.find_elements("css selector", "tr[data-state]")]
    assert listed == [failed, *reversed(names)]  # newest first

    row(driver, names[0]).find_element("css selector", '[data-action="succeed"]').click()
    started = time.monotonic()
    operation = eventually(
        lambda: (op := stub.GetOperation(operations_pb2.GetOperationRequest(name=names[0]))).done and op,
        2,
        "GetOperation done",
    )
    assert operation.HasField("response") and time.monotonic() - started < 2
    eventually(lambda: state_of(driver, names[0]) == "SUCCEEDED", 2, "row SUCCEEDED")

    screenshot = tmp_path / "emulator-ui.png"
    row(driver, names[1]).click()
    eventually(lambda: driver.find_element("id", "details").is_displayed(), 5, "details")
    driver.execute_script("document.getElementById('table-wrap').scrollLeft = 0")  # the click scrolled to the row
    wait_refreshes(driver, 1)
    assert driver.save_screenshot(str(screenshot))
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    keep = os.environ.get("LRO_GRPC_UI_SCREENSHOT")
    if keep:
        Path(keep).write_bytes(screenshot.read_bytes())


@needs_browser
def test_fail_with_a_chosen_code_reaches_the_clients_result(driver: Any, emu: Emulator) -> None:
    name = emu.start_operation(PARENT)
    open_page(driver, emu, name)
    from selenium.webdriver.support.select import Select

    Select(driver.find_element("id", "fail-code")).select_by_value("RESOURCE_EXHAUSTED")
    set_input(driver, "#fail-message", "quota gone")
    row(driver, name).find_element("css selector", '[data-action="fail"]').click()
    eventually(lambda: state_of(driver, name) == "FAILED", 5, "row FAILED")
    assert "FAILED(RESOURCE_EXHAUSTED)" in row(driver, name).text
    with OperationsClient(emu.target) as client, pytest.raises(OperationError) as caught:
        client.get(name).result(timeout=5)
    assert caught.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "quota gone" in str(caught.value)


@needs_browser
def test_cancel_and_delete_do_what_the_rpcs_do(driver: Any, emu: Emulator) -> None:
    cancelled, deleted, rollout = (
        emu.start_operation(PARENT),
        emu.start_operation(PARENT),
        emu.start_operation(f"services/{SERVICE}"),
    )
    open_page(driver, emu, cancelled, deleted, rollout)
    # Service Management offers neither: the page does not offer them either.
    buttons = row(driver, rollout).find_elements("css selector", "[data-action]")
    assert {b.get_attribute("data-action"): b.is_enabled() for b in buttons} == {
        "succeed": True,
        "fail": True,
        "cancel": False,
        "delete": False,
    }
    row(driver, cancelled).find_element("css selector", '[data-action="cancel"]').click()
    eventually(lambda: state_of(driver, cancelled) == "CANCELLED", 5, "row CANCELLED")
    row(driver, deleted).find_element("css selector", '[data-action="delete"]').click()
    eventually(lambda: not driver.find_elements("css selector", f'tr[data-operation-name="{deleted}"]'), 5, "row gone")
    with OperationsClient(emu.target) as client:
        handle = client.get(cancelled)
        assert handle.done and handle.cancelled
        with pytest.raises(Exception, match=r"NOT_FOUND|not found"):
            client.get(deleted)


@needs_browser
def test_pause_stops_progress_and_resume_and_advance_move_it(
    driver: Any, emu: Emulator, stub: operations_pb2_grpc.OperationsStub
) -> None:
    emu.set_speed(20)
    name = emu.start_operation(f"services/{SERVICE}", duration=1000)  # 2% of progress a real second

    def progress() -> int:
        operation = stub.GetOperation(operations_pb2.GetOperationRequest(name=name))
        metadata = sm.OperationMetadata()
        operation.metadata.Unpack(metadata)
        return int(metadata.progress_percentage)

    open_page(driver, emu, name)
    eventually(lambda: progress() >= 1, 10, "progress")
    driver.find_element("css selector", '[data-control="pause"]').click()
    eventually(lambda: emu.speed == 0, 5, "paused")
    eventually(lambda: driver.find_element("id", "clock-speed").text == "paused", 5, "page says paused")
    before, shown = (
        progress(),
        row(driver, name).find_element("css selector", ".progress").get_attribute("data-progress"),
    )
    wait_refreshes(driver, 2)
    time.sleep(0.5)
    assert progress() == before
    assert row(driver, name).find_element("css selector", ".progress").get_attribute("data-progress") == str(before)
    assert shown in (str(before), str(before - 1))

    set_input(driver, "#advance-seconds", "100")
    driver.find_element("css selector", '[data-control="advance"]').click()
    eventually(lambda: progress() >= before + 10, 5, "advanced by 100 simulated seconds")
    driver.find_element("css selector", '[data-control="pause"]').click()  # now "Resume"
    eventually(lambda: emu.speed == 20, 5, "resumed at the speed it had")
    set_input(driver, '[data-control="speed"]', "5")
    eventually(lambda: emu.speed == 5, 5, "speed 5")


@needs_browser
def test_unavailable_at_100_percent_fails_clients_and_the_page_still_works(
    driver: Any, emu: Emulator, stub: operations_pb2_grpc.OperationsStub
) -> None:
    name = emu.start_operation(PARENT)
    open_page(driver, emu, name)
    set_input(driver, '[data-control="unavailable"]', "100")
    eventually(lambda: emu.faults.unavailable == 1.0, 5, "UNAVAILABLE at 100%")
    with pytest.raises(grpc.RpcError) as caught:
        stub.GetOperation(operations_pb2.GetOperationRequest(name=name), timeout=5)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    wait_refreshes(driver, 2)
    assert error_banner(driver) is None
    row(driver, name).find_element("css selector", '[data-action="succeed"]').click()
    eventually(lambda: state_of(driver, name) == "SUCCEEDED", 5, "row SUCCEEDED under faults")
    set_input(driver, '[data-control="resource-exhausted"]', "0")
    set_input(driver, '[data-control="latency"]', "25")
    eventually(lambda: emu.faults.latency == pytest.approx(0.025), 5, "latency 25 ms")
    set_input(driver, '[data-control="unavailable"]', "0")
    eventually(lambda: emu.faults.unavailable == 0.0, 5, "UNAVAILABLE off")
    assert stub.GetOperation(operations_pb2.GetOperationRequest(name=name), timeout=5).done


@needs_browser
def test_refresh_keeps_filter_selection_and_scroll(driver: Any, emu: Emulator) -> None:
    names = [emu.start_operation(PARENT) for _ in range(60)]
    other = emu.start_operation(OTHER_PARENT)
    open_page(driver, emu, names[-1])
    set_input(driver, "#filter-location", "us-central1")
    eventually(lambda: not driver.find_elements("css selector", f'tr[data-operation-name="{other}"]'), 5, "filtered")
    set_input(driver, "#page-size", "100")
    target = row(driver, names[5])
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", target)
    target.click()
    scroll = driver.execute_script("return document.getElementById('table-wrap').scrollTop")
    assert scroll > 0
    emu.start_operation(OTHER_PARENT)  # a change elsewhere: refreshes redraw nothing of ours
    wait_refreshes(driver, 3)
    assert driver.execute_script("return document.getElementById('table-wrap').scrollTop") == scroll
    assert "selected" in str(row(driver, names[5]).get_attribute("class"))
    assert driver.find_element("id", "filter-location").get_attribute("value") == "us-central1"
    assert driver.find_element("id", "details-name").text == names[5]
    shown = json.loads(driver.find_element("id", "details-json").text)
    assert shown["name"] == names[5]
    assert shown["metadata"]["@type"] == "type.googleapis.com/google.cloud.financialservices.v1.OperationMetadata"


@needs_browser
def test_details_commands_work_and_copy(driver: Any, emu: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    name = emu.start_operation(PARENT)
    open_page(driver, emu, name)
    row(driver, name).click()
    curl = eventually(lambda: driver.find_element("id", "details-curl").text, 5, "curl command")
    assert curl == f'curl "{emu.rest_url}/v1/{name}"'
    assert call(emu.rest_url, "GET", f"/v1/{name}").body["name"] == name
    get = driver.find_element("id", "details-get").text
    assert get == f"lro-grpc get --endpoint {emu.target} {name}"
    from lro_grpc.cli import main

    assert main(get.split()[1:]) == 0
    assert name in capsys.readouterr().out
    for button in ("copy-name", "copy-curl", "copy-get"):
        driver.find_element("id", button).click()
        eventually(lambda: driver.find_element("id", "copied").text == "copied", 5, f"{button} copied")


@needs_browser
def test_start_an_operation_from_the_page_and_errors_show(driver: Any, emu: Emulator) -> None:
    open_page(driver, emu)
    set_input(driver, "#start-duration", "0")
    driver.find_element("id", "start").click()
    eventually(lambda: emu.operation_count() == 1, 5, "operation started")
    started = eventually(lambda: driver.find_elements("css selector", 'tr[data-state="SUCCEEDED"]'), 5, "row")[0]
    with OperationsClient(emu.target) as client:
        assert client.get(str(started.get_attribute("data-operation-name"))).done
    set_input(driver, '[data-control="speed"]', "-3")
    message = eventually(lambda: error_banner(driver), 5, "error banner")
    assert "INVALID_ARGUMENT" in message and "speed" in message


@needs_browser
def test_no_request_leaves_the_origin(driver: Any, emu: Emulator) -> None:
    emu.start_operation(PARENT)
    driver.get(emu.ui_url)
    wait_refreshes(driver, 2)
    origin = emu.rest_url
    entries = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert entries and all(str(entry).startswith(origin + "/") for entry in entries), entries
    paint = driver.execute_script("return performance.getEntriesByType('paint').map(e => e.name)")
    assert "first-contentful-paint" in paint


# --- The control API over HTTP --------------------------------------------------------------------------------


def page_token(emu: Emulator) -> str:
    status, html = raw(emu, "GET", "/ui/")
    assert status == 200
    marker = 'name="lro-grpc-ui-token" content="'
    return html[html.index(marker) + len(marker) :].split('"', 1)[0]


def raw(
    emu: Emulator, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", emu.rest_port, timeout=10)
    try:
        connection.request(method, path, body=body or None, headers=headers or {})
        response = connection.getresponse()
        text = response.read().decode()
        return response.status, json.loads(text) if text.startswith("{") else text
    finally:
        connection.close()


def test_controls_need_post_json_and_the_token(emu: Emulator) -> None:
    name = emu.start_operation(PARENT)
    body = json.dumps({"name": name}).encode()
    token = page_token(emu)
    assert len(token) >= 32
    good = {"Content-Type": "application/json", TOKEN_HEADER: token}
    refused = [
        raw(emu, "POST", "/ui/api/operations:succeed", body, {"Content-Type": "application/json"}),
        raw(emu, "POST", "/ui/api/operations:succeed", body, {**good, TOKEN_HEADER: token[:-1] + "x"}),
        raw(emu, "POST", "/ui/api/operations:succeed", body, {**good, "Content-Type": "text/plain"}),
        raw(emu, "POST", "/ui/api/operations:succeed", body, {**good, "Origin": "http://evil.example"}),
        raw(emu, "POST", "/ui/api/operations:succeed", body, {**good, "Host": "evil.example"}),
    ]
    assert [status for status, _ in refused] == [403] * 5
    assert all(reply["error"]["status"] == "PERMISSION_DENIED" for _, reply in refused)
    status, reply = raw(emu, "GET", "/ui/api/operations:succeed")
    assert (status, reply["error"]["code"]) == (405, 405)
    with OperationsClient(emu.target) as client:
        assert not client.get(name).done  # nothing refused did anything
        status, _ = raw(emu, "POST", "/ui/api/operations:succeed", body, {**good, "Origin": emu.rest_url})
        assert status == 200
        assert client.get(name).done


def test_page_headers_allow_only_the_origin(emu: Emulator) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", emu.rest_port, timeout=10)
    connection.request("GET", "/ui/")
    response = connection.getresponse()
    response.read()
    policy = response.getheader("Content-Security-Policy") or ""
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy and "script-src 'self'" in policy
    assert response.getheader("X-Frame-Options") == "DENY"
    connection.close()
    assert raw(emu, "GET", "/ui")[0] == 308


def test_operations_api_filters_and_pages_newest_first(emu: Emulator) -> None:
    fs_names = [emu.start_operation(PARENT, duration=0 if index else 600) for index in range(7)]
    other = emu.start_operation(OTHER_PARENT)
    rollout = emu.start_operation(f"services/{SERVICE}")
    emu.fail(fs_names[0], "ABORTED", "no")

    def listing(query: str) -> dict[str, Any]:
        reply = call(emu.rest_url, "GET", f"/ui/api/operations?{query}")
        assert reply.status == 200, reply.text
        result: dict[str, Any] = reply.body
        return result

    first = listing("pageSize=4")
    assert [op["name"] for op in first["operations"]] == [rollout, other, *reversed(fs_names[-2:])]
    assert first["total"] == 9
    second = listing(f"pageSize=4&pageToken={first['nextPageToken']}")
    assert [op["name"] for op in second["operations"]] == list(reversed(fs_names[1:5]))
    third = listing(f"pageSize=4&pageToken={second['nextPageToken']}")
    assert [op["name"] for op in third["operations"]] == [fs_names[0]] and third["nextPageToken"] == ""
    assert [op["name"] for op in listing("api=servicemanagement")["operations"]] == [rollout]
    assert [op["name"] for op in listing(f"service={SERVICE}")["operations"]] == [rollout]
    assert [op["name"] for op in listing("location=europe-west1")["operations"]] == [other]
    assert {op["name"] for op in listing("state=RUNNING")["operations"]} == {other, rollout}
    failed = listing("state=FAILED")["operations"]
    assert [(op["name"], op["errorCode"]) for op in failed] == [(fs_names[0], "ABORTED")]
    assert [op["name"] for op in listing(f"q={fs_names[3][-12:]}")["operations"]] == [fs_names[3]]
    assert call(emu.rest_url, "GET", "/ui/api/operations?state=DONE").status == 400


def test_no_ui_turns_the_page_off() -> None:
    with Emulator(rest_port=0, ui=False) as emu:
        assert call(emu.rest_url, "GET", "/ui/api/state").status == 404
        with pytest.raises(RuntimeError, match="off"):
            _ = emu.ui_url


@pytest.mark.parametrize("no_ui", [False, True])
def test_the_command_line_serves_the_page_unless_no_ui(no_ui: bool) -> None:
    import subprocess
    import sys

    arguments = [sys.executable, "-m", "lro_grpc.emulator", "--port", "0", "--rest-port", "0"]
    process = subprocess.Popen([*arguments, *(["--no-ui"] if no_ui else [])], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        process.stdout.readline()  # the gRPC target
        base_url = process.stdout.readline().strip()
        connection = http.client.HTTPConnection("127.0.0.1", int(base_url.rsplit(":", 1)[1]), timeout=10)
        connection.request("GET", "/ui/")
        response = connection.getresponse()
        assert (response.status, response.getheader("Content-Type")) == (
            (404, "application/json; charset=UTF-8") if no_ui else (200, "text/html; charset=utf-8")
        )
        connection.close()
    finally:
        process.terminate()
        process.communicate(timeout=10)
