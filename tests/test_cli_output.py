"""The installed ``lro-grpc`` on a terminal and in pipes: the terminal's width, whole names, outcomes as they come."""

from __future__ import annotations

import json
import os
import select
import shlex
import subprocess
import time
from collections.abc import Callable, Iterator

import pytest
from test_cli import ENTRY_POINT, FS_PARENT, run_on_terminal, start_instance, start_rollout

from lro_grpc.emulator import Emulator


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(speed=0) as emulator:
        yield emulator


def child_env() -> dict[str, str]:
    return {
        key: value for key, value in os.environ.items() if key not in ("COLUMNS", "LINES", "LRO_GRPC_EMULATOR_HOST")
    }


def on_terminal(argv: list[str], *, columns: int, on_output: Callable[[bytes], None] | None = None) -> tuple[int, str]:
    """Run the installed command on a pseudo-terminal ``columns`` wide; returns its exit code and screen."""
    code, screen = run_on_terminal(
        [str(ENTRY_POINT), *argv],
        lambda screen, _process: on_output(screen) if on_output is not None else None,
        columns=columns,
        env=child_env(),
    )
    return code, screen.decode().replace("\r\n", "\n")


def piped(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ENTRY_POINT), *argv], capture_output=True, text=True, timeout=60, env=child_env(), check=False
    )


def mixed_operations(emu: Emulator) -> list[str]:
    names = [start_instance(emu, duration=10), start_instance(emu, duration=10, fail=True), start_instance(emu)]
    emu.advance(20)
    return names


def test_list_on_a_wide_terminal_uses_its_width_whole_names_and_details(emu: Emulator) -> None:
    names = mixed_operations(emu)
    code, screen = on_terminal(["--endpoint", emu.target, "list", FS_PARENT], columns=200)
    assert code == 0, screen
    lines = screen.splitlines()
    assert lines[0].split() == ["NAME", "STATE", "PROGRESS", "CREATED", "DETAIL"]
    assert [line.split()[0] for line in lines[1:]] == names  # never cut
    assert all(len(line) <= 200 for line in lines)
    assert max(len(line) for line in lines) > 100  # not held to 100 columns any more
    detail = lines[0].index("DETAIL")
    assert lines[1][detail:].startswith("create instances/instance-")
    assert lines[2][detail:].startswith("CreateInstance failed: simulated")


def test_list_on_a_narrow_terminal_leaves_columns_out_not_names(emu: Emulator) -> None:
    names = mixed_operations(emu)
    code, screen = on_terminal(["--endpoint", emu.target, "list", FS_PARENT], columns=80)
    assert code == 0, screen
    lines = screen.splitlines()
    assert [line.split()[0] for line in lines[1:]] == names


def test_service_management_names_keep_their_service(emu: Emulator) -> None:
    name = start_rollout(emu, duration=100)
    emu.advance(50)
    service_filter = "serviceName=endpointsapis.appspot.com"
    code, screen = on_terminal(
        ["--endpoint", emu.target, "--api", "servicemanagement", "list", "--filter", service_filter], columns=120
    )
    assert code == 0, screen
    row = screen.splitlines()[1]
    assert row.split()[:3] == [name, "RUNNING", "50%"]
    assert "steps done" in row  # DETAIL: Service Management's progress


def test_piped_list_is_names_one_per_line_for_xargs(emu: Emulator) -> None:
    names = mixed_operations(emu)
    listed = piped("--endpoint", emu.target, "list", FS_PARENT)
    assert listed.returncode == 0 and listed.stdout.splitlines() == names
    # The pipe the issue asked for: every listed name fed to `get`.
    command = (
        f"{shlex.quote(str(ENTRY_POINT))} --endpoint {emu.target} list {FS_PARENT} "
        f"| xargs -n1 {shlex.quote(str(ENTRY_POINT))} --endpoint {emu.target} --json get"
    )
    shown = subprocess.run(
        ["sh", "-c", command], capture_output=True, text=True, timeout=60, env=child_env(), check=False
    )
    documents = json.loads("[" + shown.stdout.replace("}\n{", "},\n{") + "]")
    assert [document["name"] for document in documents] == names
    wide = piped("--endpoint", emu.target, "list", FS_PARENT, "--wide")
    assert wide.stdout.splitlines()[0].split()[0] == "NAME"
    assert [line.split()[0] for line in wide.stdout.splitlines()[1:]] == names


def read_lines_until(process: subprocess.Popen[str], count: int, timeout: float = 30) -> list[str]:
    """Read ``count`` lines from the process's stdout, failing if they do not come within ``timeout``."""
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while len(lines) < count:
        remaining = deadline - time.monotonic()
        ready, _, _ = select.select([process.stdout], [], [], max(0.0, remaining))
        assert ready, f"only {lines!r} within {timeout} s"
        line = process.stdout.readline()
        assert line, f"output ended after {lines!r}"
        lines.append(line.rstrip("\n"))
    return lines


@pytest.mark.parametrize("json_lines", [False, True])
def test_wait_prints_each_outcome_as_it_comes(emu: Emulator, json_lines: bool) -> None:
    first = start_instance(emu, duration=10)
    later = [start_instance(emu, duration=100), start_instance(emu, duration=100, fail=True)]
    emu.advance(11)  # only the first is done
    argv = [
        "--endpoint",
        emu.target,
        *(["--json"] if json_lines else []),
        "wait",
        first,
        *later,
        "--poll-interval",
        "0.05",
    ]
    process = subprocess.Popen(
        [str(ENTRY_POINT), *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env()
    )
    try:
        # The first outcome is printed while the others still run (they end only after it is read).
        (line,) = read_lines_until(process, 1)
        if json_lines:
            assert json.loads(line)["name"] == first and json.loads(line)["done"] is True
        else:
            assert line.split()[:2] == [first, "SUCCEEDED"]
            assert "create instances/" in line
        emu.advance(100)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 1, err  # one failed
    rest = out.splitlines()
    if json_lines:
        assert sorted(json.loads(line)["name"] for line in rest) == sorted(later)
    else:
        # The two other outcomes, then the table of all three in input order.
        assert sorted(line.split()[0] for line in rest[:2]) == sorted(later)
        assert rest[2].split()[0] == "NAME"
        assert [line.split()[0] for line in rest[3:]] == [first, *later]


def test_wait_on_a_terminal_prints_outcomes_above_the_bar(emu: Emulator) -> None:
    first = start_instance(emu, duration=10)
    later = start_instance(emu, duration=100)
    moved: list[str] = []

    def move_the_clock(screen: bytes) -> None:
        if not moved and b"0/2 done" in screen:
            emu.advance(11)
            moved.append("first")
        elif moved == ["first"] and f"{first}  SUCCEEDED".encode() in screen:
            emu.advance(100)
            moved.append("second")

    argv = ["--endpoint", emu.target, "wait", first, later, "--poll-interval", "0.05"]
    code, screen = on_terminal(argv, columns=200, on_output=move_the_clock)
    assert code == 0, screen
    assert moved == ["first", "second"], screen
    # The outcome line took the bar's place (wiped first), and the bar came back after it.
    outcome_at = screen.index(f"{first}  SUCCEEDED")
    assert screen.rfind("\x1b[K", 0, outcome_at) > screen.rfind("done", 0, outcome_at)
    assert "1/2 done" in screen[outcome_at:]
    assert "2/2 done" in screen
