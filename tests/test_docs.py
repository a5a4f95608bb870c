"""Every Python block of README.md and docs/*.md runs as written (against the emulator), twice.

Each block runs twice in a row in an empty working directory, with ``TMPDIR`` an
empty directory too: both runs must pass (a reader runs an example again), and
neither may leave a file behind in either directory (except Ray's session logs,
which Ray keeps under ``$TMPDIR/ray`` by design; the directory's path is short,
as Ray's sockets live there too).

A block that starts a local Ray cluster gets more time (Ray starts a dozen
processes and a worker per task: 70-90 s a run at load 15 on two cores), and no
second chance. Ray's start-up timeouts (``Timed out waiting for file
.../gcs_server_port_...``, ``The current node timed out during startup``) were not
slowness: ``ray.init()`` forks its GCS server and raylet from the block's process,
and while the emulator's gRPC server runs there, grpcio restarts its threads in the
forked child, which then may abort (SIGABRT) before it execs Ray's program
(grpc/grpc#13998). The README starts Ray before the emulator; a block that does
not fails here in about half its runs with two CPU-bound processes beside it.

A block is a fenced ``python`` code block. One that cannot run here (it needs real
credentials or hosts) is preceded by a line ``<!-- no-run: REASON -->``; there may be
at most ``MAX_NOT_RUN`` of those, each with its reason. One preceded by
``<!-- runs-with: emulator -->`` expects an emulator started beforehand, as the
Quickstart's shell block starts it: each of its runs gets a fresh one, named by
``LRO_GRPC_EMULATOR_HOST``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from lro_grpc.emulator import Emulator

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MAX_NOT_RUN = 2
RUN_TIMEOUT = 110
"""Seconds one run of a block may take."""
RAY_RUN_TIMEOUT = 200
"""Seconds one run of a block that starts a local Ray cluster may take."""

_FENCE = re.compile(r"^(?P<indent> *)```python\s*$")
_NO_RUN = re.compile(r"^<!-- no-run: (?P<reason>\S.*?) -->\s*$")
_WITH_EMULATOR = "<!-- runs-with: emulator -->"


class Block:
    """One fenced Python block: where it is, its code, and why it is not run (if so)."""

    def __init__(self, path: Path, line: int, code: str, no_run: str | None, with_emulator: bool = False) -> None:
        self.path = path
        self.line = line
        self.code = code
        self.no_run = no_run
        self.with_emulator = with_emulator

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def starts_ray(self) -> bool:
        return "ray.init(" in self.code


def python_blocks(path: Path) -> list[Block]:
    """The fenced ``python`` blocks of a Markdown file, in order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        fence = _FENCE.match(lines[index])
        if fence:
            start = index
            end = start + 1
            while end < len(lines) and lines[end].strip() != "```":
                end += 1
            if end == len(lines):
                raise AssertionError(f"{path}:{start + 1}: unterminated ```python block")
            previous = next((lines[i] for i in range(start - 1, -1, -1) if lines[i].strip()), "").strip()
            marker = _NO_RUN.match(previous)
            indent = len(fence["indent"])  # a block inside a list item is indented as a whole
            code = "\n".join(line[indent:] for line in lines[start + 1 : end]) + "\n"
            blocks.append(Block(path, start + 1, code, marker and marker["reason"], previous == _WITH_EMULATOR))
            index = end
        index += 1
    return blocks


ALL_BLOCKS = [block for document in DOCUMENTS for block in python_blocks(document)]
BLOCK_PARAMS = [
    pytest.param(block, id=block.id, marks=[pytest.mark.timeout(3 * RAY_RUN_TIMEOUT)] if block.starts_ray else [])
    for block in ALL_BLOCKS
]


def test_documents_have_python_blocks_and_few_are_not_run() -> None:
    assert len(ALL_BLOCKS) >= 6
    not_run = [block.id for block in ALL_BLOCKS if block.no_run]
    assert len(not_run) <= MAX_NOT_RUN, not_run


def test_the_extractor_sees_markers_and_fences(tmp_path: Path) -> None:
    document = tmp_path / "x.md"
    document.write_text(
        "text\n```python\nprint(1)\n```\n<!-- no-run: needs a real host -->\n\n```python\nx\n```\n"
        "- item:\n\n  ```python\n  if y:\n      z\n  ```\n"
    )
    blocks = python_blocks(document)
    assert [(block.line, block.code, block.no_run) for block in blocks] == [
        (2, "print(1)\n", None),
        (7, "x\n", "needs a real host"),
        (12, "if y:\n    z\n", None),
    ]


@pytest.mark.timeout(3 * RUN_TIMEOUT)
@pytest.mark.parametrize("block", BLOCK_PARAMS)
@pytest.mark.slow  # a subprocess
def test_block_runs_twice_and_leaves_nothing_behind(
    block: Block, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if block.no_run:
        pytest.skip(block.no_run)
    script = tmp_path / "block.py"
    script.write_text(block.code, encoding="utf-8")
    work = tmp_path / "work"
    work.mkdir()
    env = {key: value for key, value in os.environ.items() if key != "LRO_GRPC_EMULATOR_HOST"}
    for run in ("first", "second"):
        # A TMPDIR of its own for each run; short, as AF_UNIX socket paths (Ray's) are limited to 107 bytes.
        temporary = Path(tempfile.mkdtemp(prefix="lro-docs-", dir="/tmp"))
        request.addfinalizer(lambda temporary=temporary: shutil.rmtree(temporary, ignore_errors=True))
        env["TMPDIR"] = str(temporary)
        with contextlib.ExitStack() as stack:
            if block.with_emulator:
                env["LRO_GRPC_EMULATOR_HOST"] = stack.enter_context(Emulator()).target
            completed = _run(script, work, env, block)
        assert completed.returncode == 0, (
            f"{block.id} failed on its {run} run:\n{block.code}\n--- stderr:\n{completed.stderr}"
        )
        left = sorted(
            [str(path.relative_to(tmp_path)) for path in work.rglob("*")]
            + [f"$TMPDIR/{path.relative_to(temporary)}" for path in temporary.iterdir() if path.name != "ray"]
        )
        assert not left, f"{block.id} left {left} behind after its {run} run"


def _run(script: Path, work: Path, env: dict[str, str], block: Block) -> subprocess.CompletedProcess[str]:
    """Run ``script`` once, within the time its kind of block gets."""
    return subprocess.run(
        [sys.executable, str(script)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=RAY_RUN_TIMEOUT if block.starts_ray else RUN_TIMEOUT,
        check=False,
    )
