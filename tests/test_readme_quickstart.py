"""The README's Install and Quickstart, as ``tools/check_wheel.py`` runs them (``make wheel-check``).

Running them needs a wheel, a fresh virtual environment and the package index, so
``check_wheel.py`` does it (part of ``make test``); these checks fail fast, without
building, when the README drifts from what that run expects.
"""

from __future__ import annotations

from test_packaging import _check_wheel_module

import lro_grpc
from lro_grpc.cli import build_parser

check_wheel = _check_wheel_module()


def test_install_names_this_version_and_the_placeholders_check_wheel_fills_in() -> None:
    blocks = check_wheel.readme_blocks("Install")
    install = next(code for language, code in blocks if language == "sh")
    assert f"dist/lro_grpc-{lro_grpc.__version__}-py3-none-any.whl" in install
    assert check_wheel.CHECKOUT_PLACEHOLDER in install and check_wheel.SERVICE_PLACEHOLDER in install
    assert install.splitlines()[0].startswith("make wheel")
    assert f"lro-grpc {lro_grpc.__version__}" in install  # what --version prints


def test_quickstart_starts_the_emulator_then_python_then_every_command() -> None:
    blocks = check_wheel.readme_blocks("Quickstart")
    languages = [language for language, _ in blocks]
    assert languages[:3] == ["sh", "python", "text"]
    setup, python_code = blocks[0][1], blocks[1][1]
    assert f"lro-grpc emulator --port {check_wheel.QUICKSTART_PORT} &" in setup
    assert f"LRO_GRPC_EMULATOR_HOST=127.0.0.1:{check_wheel.QUICKSTART_PORT}" in setup
    for call in ("AMLStub", "ServiceManagerStub", "x-emulator-duration-seconds", "x-emulator-outcome"):
        assert call in python_code
    for method in ("client.get(", "client.list(", "client.wait(", "client.cancel(", "client.delete("):
        assert method in python_code
    commands = next(code for language, code in blocks[2:] if language == "sh")
    used = {
        line.split()[1] if not line.startswith("lro-grpc --") else line.split()[3]
        for line in commands.splitlines()
        if line.startswith("lro-grpc")
    }
    assert {"get", "list", "wait", "cancel"} <= used and "delete" in commands
    # Every command word used exists.
    known = set(build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    assert used <= known
