"""The seeds' curl commands as docs/emulator-rest.md shows them (``https`` -> ``http``) run against the emulator."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from rest_http import call
from test_emulator_rest_seeds import ROLLOUT, run, seed_commands

from lro_grpc.emulator import Emulator

DOC = Path(__file__).resolve().parent.parent / "docs" / "emulator-rest.md"
PARENT = "projects/PROJECT_ID/locations/LOCATION"


def documented_commands() -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("## The API documents' curl commands") :]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert block is not None
    joined = block.group(1).replace("\\\n", " ")
    return [line.strip() for line in joined.splitlines() if line.strip()]


def test_the_doc_shows_each_seed_command_with_only_scheme_host_and_token_changed() -> None:
    shown = documented_commands()
    seeds = seed_commands()
    assert len(shown) == len(seeds) == 5
    for seed, command in zip(seeds, shown, strict=True):
        expected = seed.replace("$(gcloud auth print-access-token)", "any")
        if expected.startswith("gcurl "):
            expected = 'curl -H "Authorization: Bearer any" ' + expected.removeprefix("gcurl ")
        for host in ("https://financialservices.googleapis.com", "https://servicemanagement.googleapis.com"):
            expected = expected.replace(host, "http://127.0.0.1:8081")
        assert shlex.split(command) == shlex.split(expected)
    assert "https://" not in "\n".join(shown)


def test_the_documented_commands_run_against_the_emulator() -> None:
    with Emulator(speed=0, rest_port=0) as emu:
        created = call(emu.rest_url, "POST", f"/v1/{PARENT}/instances?instanceId=INSTANCE_ID", {}).body
        operation_id = created["name"].rsplit("/", 1)[1]
        rollout = call(
            emu.rest_url, "POST", "/v1/services/endpointsapis.appspot.com/rollouts", {"rolloutId": "2016-07-16r2"}
        )
        assert rollout.body["name"] == ROLLOUT
        get, list_, cancel, delete, sm_get = (
            shlex.split(command.replace("http://127.0.0.1:8081", emu.rest_url).replace("OPERATION_ID", operation_id))
            for command in documented_commands()
        )
        assert run(get) == (200, created)
        assert run(list_) == (200, {"operations": [created]})
        assert run(cancel) == (200, {})
        assert run(delete) == (200, {})
        assert run(get)[0] == 404
        status, pending = run(sm_get)
        assert status == 200 and pending["name"] == ROLLOUT
