"""Packaging: pyproject.toml lists every package of the source tree, so the wheel holds them all.

``make wheel-check`` (tools/check_wheel.py, part of ``make test``) builds the wheel and
runs it from a fresh virtual environment; this test fails fast, without building, when
a new package directory is not listed.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import tomllib

import lro_grpc

ROOT = Path(__file__).resolve().parent.parent


def _check_wheel_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_wheel", ROOT / "tools" / "check_wheel.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("check_wheel", module)
    spec.loader.exec_module(module)
    return module


def _pyproject() -> dict[str, Any]:
    with open(ROOT / "pyproject.toml", "rb") as file:
        return tomllib.load(file)


def test_every_package_of_the_tree_is_listed() -> None:
    listed = set(_pyproject()["tool"]["setuptools"]["packages"])
    expected = _check_wheel_module().expected_packages(ROOT)
    assert "lro_grpc.emulator" in expected
    assert listed == expected, f"missing {sorted(expected - listed)}, extra {sorted(listed - expected)}"


def test_generated_code_is_installed_under_lro_grpc() -> None:
    assert _pyproject()["tool"]["setuptools"]["package-dir"]["lro_grpc._generated"] == "generated"


def test_version_is_the_package_metadata_version() -> None:
    import importlib.metadata

    assert lro_grpc.__version__ == importlib.metadata.version("lro-grpc")


def test_the_operations_page_is_package_data() -> None:
    import fnmatch

    patterns = _pyproject()["tool"]["setuptools"]["package-data"]["lro_grpc.emulator"]
    folder = ROOT / "lro_grpc" / "emulator"
    files = sorted(str(path.relative_to(folder)) for path in (folder / "ui").rglob("*") if path.is_file())
    assert {"ui/index.html", "ui/ui.css", "ui/ui.js"} <= set(files)
    unlisted = [name for name in files if not any(fnmatch.fnmatch(name, pattern) for pattern in patterns)]
    assert not unlisted, f"add to [tool.setuptools.package-data] lro_grpc.emulator: {unlisted}"
