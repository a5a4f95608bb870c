"""The house's size rules, measured on the source: files of at most 600 lines, functions of radon grade C at most.

A file past ~600 lines usually holds more than one idea; a function past grade C
(cyclomatic complexity over 20) wants its decisions named. The exceptions left
are listed with their reason, and one that no longer breaks the rule fails the
test, so the list only shrinks.
"""

from __future__ import annotations

from pathlib import Path

from radon.complexity import cc_rank, cc_visit

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "lro_grpc"
MAX_LINES = 600

LONG_FILES_LEFT: set[str] = set()

COMPLEX_FUNCTIONS_LEFT: set[str] = set()


def _sources() -> list[Path]:
    return sorted(path for path in PACKAGE.rglob("*.py") if "__pycache__" not in path.parts)


def long_files() -> set[str]:
    """Source files of more than :data:`MAX_LINES` lines."""
    found = set()
    for path in _sources():
        with path.open(encoding="utf-8") as file:
            if sum(1 for _ in file) > MAX_LINES:
                found.add(path.relative_to(ROOT).as_posix())
    return found


def complex_functions(paths: list[Path]) -> set[str]:
    """Functions and methods ranked D or worse by radon, as ``path:name``."""
    found = set()
    for path in paths:
        for block in cc_visit(path.read_text(encoding="utf-8")):
            if cc_rank(block.complexity) not in "ABC":
                found.add(f"{path.relative_to(ROOT).as_posix()}:{block.name}")
    return found


def test_no_file_is_over_600_lines() -> None:
    found = long_files()
    assert found - LONG_FILES_LEFT == set(), f"files over {MAX_LINES} lines: {sorted(found - LONG_FILES_LEFT)}"
    assert LONG_FILES_LEFT - found == set(), f"now short enough, take off the list: {sorted(LONG_FILES_LEFT - found)}"


def test_no_function_is_above_grade_c() -> None:
    found = complex_functions(_sources())
    assert found - COMPLEX_FUNCTIONS_LEFT == set(), f"grade D or worse: {sorted(found - COMPLEX_FUNCTIONS_LEFT)}"
    gone = COMPLEX_FUNCTIONS_LEFT - found
    assert gone == set(), f"now grade C or better, take off the list: {sorted(gone)}"


def test_a_complex_function_is_found(tmp_path: Path) -> None:
    branches = "\n".join(f"    if value == {index}:\n        return {index}" for index in range(21))
    probe = tmp_path / "probe.py"
    probe.write_text(f"def tangled(value):\n{branches}\n    return -1\n", encoding="utf-8")
    blocks = cc_visit(probe.read_text(encoding="utf-8"))
    assert [(block.name, cc_rank(block.complexity)) for block in blocks] == [("tangled", "D")]
