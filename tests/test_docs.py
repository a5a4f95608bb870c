"""Every Python block of README.md and docs/*.md runs as written (against the emulator).

A block is a fenced ``python`` code block. One that cannot run here (it needs real
credentials or hosts) is preceded by a line ``<!-- no-run: REASON -->``; there may be
at most ``MAX_NOT_RUN`` of those, each with its reason.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MAX_NOT_RUN = 2

_FENCE = re.compile(r"^(?P<indent> *)```python\s*$")
_NO_RUN = re.compile(r"^<!-- no-run: (?P<reason>\S.*?) -->\s*$")


class Block:
    """One fenced Python block: where it is, its code, and why it is not run (if so)."""

    def __init__(self, path: Path, line: int, code: str, no_run: str | None) -> None:
        self.path = path
        self.line = line
        self.code = code
        self.no_run = no_run

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


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
            blocks.append(Block(path, start + 1, code, marker and marker["reason"]))
            index = end
        index += 1
    return blocks


ALL_BLOCKS = [block for document in DOCUMENTS for block in python_blocks(document)]


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


@pytest.mark.timeout(120)
@pytest.mark.parametrize("block", ALL_BLOCKS, ids=[block.id for block in ALL_BLOCKS])
@pytest.mark.slow  # a subprocess
def test_block_runs(block: Block, tmp_path: Path) -> None:
    if block.no_run:
        pytest.skip(block.no_run)
    script = tmp_path / "block.py"
    script.write_text(block.code, encoding="utf-8")
    env = {key: value for key, value in os.environ.items() if key != "LRO_GRPC_EMULATOR_HOST"}
    completed = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=110, check=False
    )
    assert completed.returncode == 0, f"{block.id} failed:\n{block.code}\n--- stderr:\n{completed.stderr}"
