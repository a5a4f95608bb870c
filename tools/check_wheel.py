"""Build the wheel, install it in a fresh virtual environment and use it as a user would.

Run by ``make wheel-check`` (part of ``make test``). Steps, each failing loudly:

1. build the wheel from this checkout (``pip wheel --no-deps --no-build-isolation``);
2. check it holds every package of the source tree (each ``lro_grpc/**/__init__.py``
   and ``generated/`` as ``lro_grpc._generated``) and nothing outside ``lro_grpc``;
3. create a virtual environment in a temporary directory outside the checkout and
   install the wheel there with its runtime dependencies only (from the package
   index or pip's cache);
4. from that directory, check ``lro_grpc`` is imported from the environment, then run
   ``lro-grpc --version`` and ``lro-grpc demo``;
5. type-check ``tests/typing/*.py`` with ``mypy --strict`` against the installed
   wheel (mypy of the development environment, pointed at the new environment's
   interpreter, where ``types-protobuf`` is then added, as a strict user would).

Usage: ``python tools/check_wheel.py [--keep]`` (``--keep`` leaves the temporary
directory for inspection and prints its path).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
USER_SCRIPTS = sorted((ROOT / "tests" / "typing").glob("*.py"))


def expected_packages(root: Path = ROOT) -> set[str]:
    """The importable packages the wheel must contain, from the source tree."""
    packages = {"lro_grpc._generated"}
    for init in (root / "lro_grpc").rglob("__init__.py"):
        relative = init.parent.relative_to(root)
        if "__pycache__" not in relative.parts:
            packages.add(".".join(relative.parts))
    return packages


def wheel_packages(wheel: Path) -> set[str]:
    """The packages (directories holding an ``__init__.py``) inside a wheel."""
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    return {name.rsplit("/", 1)[0].replace("/", ".") for name in names if name.endswith("/__init__.py")}


def _run(command: Sequence[str | Path], *, cwd: Path, env: dict[str, str] | None = None) -> str:
    started = time.monotonic()
    shown = " ".join(str(part) for part in command)
    print(f"$ {shown}", flush=True)
    completed = subprocess.run(
        [str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        sys.stderr.write(completed.stdout + completed.stderr)
        raise SystemExit(f"check_wheel: {shown!r} exited {completed.returncode}")
    print(f"  ({time.monotonic() - started:.1f} s)", flush=True)
    return completed.stdout


def _clean_env(venv: Path) -> dict[str, str]:
    """The environment of a user's shell with only the new virtual environment on PATH."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.pop("LRO_GRPC_EMULATOR_HOST", None)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv)
    return env


_PAGE_CHECK = """
import urllib.request
from lro_grpc.emulator import Emulator
with Emulator(rest_port=0) as emu:
    sizes = [len(urllib.request.urlopen(emu.ui_url + part, timeout=10).read()) for part in ("", "ui.css", "ui.js")]
print("operations page served:", sizes, "bytes")
"""


def check(work: Path) -> None:
    """Run every step in ``work`` (an empty directory outside the checkout)."""
    dist = work / "dist"
    # setuptools reuses build/lib: a module deleted from the tree would otherwise stay in the wheel.
    shutil.rmtree(ROOT / "build", ignore_errors=True)
    _run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", dist, ROOT],
        cwd=ROOT,
    )
    (wheel,) = dist.glob("lro_grpc-*.whl")
    found, expected = wheel_packages(wheel), expected_packages()
    if found != expected:
        raise SystemExit(
            f"check_wheel: {wheel.name} packages differ from the source tree: "
            f"missing {sorted(expected - found)}, unexpected {sorted(found - expected)} "
            "(update [tool.setuptools] packages in pyproject.toml)"
        )
    print(f"  {wheel.name}: {len(found)} packages, as in the source tree")

    venv = work / "venv"
    base_python = getattr(sys, "_base_executable", sys.executable)
    _run([base_python, "-m", "venv", "--without-pip", venv], cwd=work)
    python = venv / "bin" / "python"
    # The development environment's pip installs into the new one: runtime dependencies only.
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--quiet", wheel], cwd=work)

    env = _clean_env(venv)
    location = _run([python, "-c", "import lro_grpc; print(lro_grpc.__file__)"], cwd=work, env=env).strip()
    if not Path(location).is_relative_to(venv):
        raise SystemExit(f"check_wheel: lro_grpc was imported from {location}, not from {venv}")
    version = _run([venv / "bin" / "lro-grpc", "--version"], cwd=work, env=env).strip()
    print(f"  {version}")
    demo = _run(
        [venv / "bin" / "lro-grpc", "demo", "--instances", "20", "--rollouts", "2", "--seed", "1"], cwd=work, env=env
    )
    print("  " + "\n  ".join(demo.splitlines()[:12]))
    # The operations page is package data: the installed emulator must serve it.
    page = _run([python, "-c", _PAGE_CHECK], cwd=work, env=env).strip()
    print(f"  {page}")

    # A strict user also has protobuf's type stubs (mypy asks for them): without them every
    # message class is Any and a misspelt field would pass. Installed only for this step.
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "types-protobuf"], cwd=work)
    for script in USER_SCRIPTS:
        copy = work / script.name
        shutil.copy(script, copy)
        _run(
            [
                sys.executable,
                "-m",
                "mypy",
                "--strict",
                "--no-incremental",
                "--config-file",
                os.devnull,
                "--python-executable",
                python,
                copy.name,
            ],
            cwd=work,
            env={**env, "PATH": os.environ.get("PATH", "")},
        )
    print("check_wheel: ok")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run :func:`check` in a temporary directory."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory and print its path")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="lro-grpc-wheel-"))
    try:
        check(work)
    finally:
        if args.keep:
            print(f"check_wheel: kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
