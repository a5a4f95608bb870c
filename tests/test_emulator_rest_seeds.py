"""The seed documents' curl commands, run against the emulator's REST gateway.

Each command in ``tests/data/seed_curl_commands.txt`` runs as the page shows
it, with only the host, the access token and ``OPERATION_ID`` filled in (see
``tests/data/README.md``). The ``curl`` binary runs it when it is installed;
otherwise the same request (method, headers, body, URL) is replayed with
``http.client``.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from rest_http import call

from lro_grpc.emulator import Emulator

COMMANDS = Path(__file__).parent / "data" / "seed_curl_commands.txt"
TOKEN = "seed-test-token"
PARENT = "projects/PROJECT_ID/locations/LOCATION"
ROLLOUT = "operations/rollouts.endpointsapis.appspot.com:2016-07-16r2"


def seed_commands() -> list[str]:
    """The commands in the file, continuation lines joined, comments dropped."""
    text = COMMANDS.read_text(encoding="utf-8").replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def fill_in(command: str, base_url: str, operation_id: str) -> list[str]:
    """The argv of a seed command with what the page leaves to the reader filled in."""
    command = command.replace("$(gcloud auth print-access-token)", TOKEN)
    if command.startswith("gcurl "):
        command = f'curl -H "Authorization: Bearer {TOKEN}" ' + command.removeprefix("gcurl ")
    for host in ("https://financialservices.googleapis.com", "https://servicemanagement.googleapis.com"):
        command = command.replace(host, base_url)
    return shlex.split(command.replace("OPERATION_ID", operation_id))


def run(argv: list[str]) -> tuple[int, Any]:
    """Run a curl argv and return the HTTP status and the parsed JSON body."""
    if shutil.which("curl") is not None:
        finished = subprocess.run(
            [argv[0], "--silent", "--show-error", "--write-out", "\n%{http_code}", *argv[1:]],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        body, _, status = finished.stdout.rpartition("\n")
        return int(status), json.loads(body)
    return replay(argv)


def replay(argv: list[str]) -> tuple[int, Any]:
    """Send the request a curl argv describes (-X, -H, -d, URL) with http.client."""
    method, headers, data, url = "GET", {}, None, ""
    arguments = iter(argv[1:])
    for argument in arguments:
        if argument == "-X":
            method = next(arguments)
        elif argument == "-H":
            key, _, value = next(arguments).partition(":")
            headers[key.strip()] = value.strip()
        elif argument == "-d":
            data = next(arguments)
            method = method if method != "GET" else "POST"
        else:
            url = argument
    where = urlsplit(url)
    reply = call(f"{where.scheme}://{where.netloc}", method, where.path, data, headers)
    return reply.status, reply.body


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(speed=0, rest_port=0) as emulator:
        yield emulator


def test_the_file_holds_the_five_seed_commands() -> None:
    commands = seed_commands()
    assert len(commands) == 5
    assert [command.split()[0] for command in commands] == ["curl"] * 4 + ["gcurl"]


@pytest.mark.slow  # a subprocess
def test_seed_commands_work_against_the_gateway(emu: Emulator) -> None:
    created = call(emu.rest_url, "POST", f"/v1/{PARENT}/instances?instanceId=INSTANCE_ID", {}).body
    operation_name = created["name"]
    operation_id = operation_name.rsplit("/", 1)[1]
    rollout = call(
        emu.rest_url, "POST", "/v1/services/endpointsapis.appspot.com/rollouts", {"rolloutId": "2016-07-16r2"}
    )
    assert rollout.body["name"] == ROLLOUT
    get, list_, cancel, delete, sm_get = (fill_in(command, emu.rest_url, operation_id) for command in seed_commands())

    assert run(get) == (200, created)

    status, listed = run(list_)
    assert status == 200
    assert listed == {"operations": [created]}

    assert run(cancel) == (200, {})
    status, cancelled = run(get)
    assert cancelled["done"] is True
    assert cancelled["error"]["code"] == 1
    assert cancelled["metadata"]["requestedCancellation"] is True

    assert run(delete) == (200, {})
    status, missing = run(get)
    assert status == 404
    assert missing["error"]["status"] == "NOT_FOUND"
    assert operation_name in missing["error"]["message"]

    status, pending = run(sm_get)
    assert status == 200
    assert pending["name"] == ROLLOUT
    assert pending["done"] is False
    assert pending["metadata"]["@type"] == "type.googleapis.com/google.api.servicemanagement.v1.OperationMetadata"
    assert pending["metadata"]["resourceNames"] == ["services/endpointsapis.appspot.com/rollouts/2016-07-16r2"]
    emu.advance(60)
    status, done = run(sm_get)
    assert (done["done"], done["metadata"]["progressPercentage"]) == (True, 100)
    assert done["response"]["rolloutId"] == "2016-07-16r2"


def test_replay_sends_the_same_request_as_curl(emu: Emulator) -> None:
    # The fallback for machines without curl, checked against the same gateway.
    created = call(emu.rest_url, "POST", f"/v1/{PARENT}/instances?instanceId=INSTANCE_ID", {}).body
    get, _, cancel, _, _ = (
        fill_in(command, emu.rest_url, created["name"].rsplit("/", 1)[1]) for command in seed_commands()
    )
    assert replay(get) == (200, created)
    assert replay(cancel) == (200, {})
