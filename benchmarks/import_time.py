"""How long ``import lro_grpc`` takes: the minimum over N fresh interpreters.

Each statement runs in a new ``python -X importtime -c STATEMENT`` process, N times,
interleaved with the others so load on the machine spreads evenly. Two figures per
statement, both the minimum over the runs (the least disturbed run):

* ``imports``: the sum of the top-level imports' cumulative times that ``-X importtime``
  reports, i.e. the import cost alone, without interpreter start-up;
* ``wall``: the process's wall time minus that of ``python -c pass``.

Imports are from bytecode caches, as from an installed wheel (pip compiles its
modules): ``PYTHONDONTWRITEBYTECODE`` is dropped for the measured processes, so
the first run writes the caches a checkout lacks.

Usage::

    .venv/bin/python benchmarks/import_time.py [-n 20] [--python PATH] [STATEMENT ...]

``--python`` measures another environment (e.g. a virtualenv with the wheel installed,
which has no editable-install finder to pay for); give it more than once to compare
environments (before/after a change) with their runs interleaved, so load on the
machine falls on each alike. The default statements are what a
synchronous user runs (``import lro_grpc``, ``from lro_grpc import OperationsClient``),
the batch and asynchronous entry points, and ``import grpc`` (the floor: any gRPC client
pays it).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence

DEFAULT_STATEMENTS = (
    "import grpc",
    "import lro_grpc",
    "from lro_grpc import OperationsClient",
    "from lro_grpc import AsyncOperationsClient, BatchWaiter",
)

# Bytecode caches may be written: an installed wheel has its modules compiled at install, so an
# import from source (with PYTHONDONTWRITEBYTECODE set, every run compiles every module again)
# would measure the compiler, not the import. The first run writes them; the minimum is over runs.
_CHILD_ENV = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}

_IMPORTTIME_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)$")


def _top_level_microseconds(stderr: str) -> int:
    """Sum of the cumulative times of the imports made directly by the statement."""
    total = 0
    for line in stderr.splitlines():
        match = _IMPORTTIME_LINE.match(line)
        if match and match.group(3) == "":
            total += int(match.group(2))
    return total


def _run_once(python: str, statement: str, cwd: str) -> tuple[float, float]:
    started = time.perf_counter()
    completed = subprocess.run(
        [python, "-X", "importtime", "-c", statement],
        cwd=cwd,
        env=_CHILD_ENV,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    if completed.returncode != 0:
        raise SystemExit(f"{statement!r} failed:\n{completed.stderr}")
    return wall, _top_level_microseconds(completed.stderr) / 1e6


def measure(pythons: Sequence[str], statements: Sequence[str], runs: int) -> dict[str, dict[str, tuple[float, float]]]:
    """``{python: {statement: (min import seconds, min wall seconds above a bare interpreter)}}``."""
    best_wall = {python: dict.fromkeys(["pass", *statements], float("inf")) for python in pythons}
    best_imports = {python: dict.fromkeys(statements, float("inf")) for python in pythons}
    with tempfile.TemporaryDirectory() as cwd:  # never import from a checkout by accident
        for _ in range(runs):
            for python in pythons:
                for statement in best_wall[python]:
                    wall, imports = _run_once(python, statement, cwd)
                    best_wall[python][statement] = min(best_wall[python][statement], wall)
                    if statement in best_imports[python]:
                        best_imports[python][statement] = min(best_imports[python][statement], imports)
    return {
        python: {
            statement: (best_imports[python][statement], best_wall[python][statement] - best_wall[python]["pass"])
            for statement in statements
        }
        for python in pythons
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Print the table of import times."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("statements", nargs="*", default=list(DEFAULT_STATEMENTS), metavar="STATEMENT")
    parser.add_argument("-n", "--runs", type=int, default=20, help="runs per statement (default 20)")
    parser.add_argument(
        "--python", action="append", help="interpreter to measure (default: this one); repeat to compare"
    )
    args = parser.parse_args(argv)
    pythons = [os.path.abspath(python) if os.sep in python else python for python in args.python or [sys.executable]]
    results = measure(pythons, args.statements, args.runs)
    for python, table in results.items():
        print(f"{python}: minimum of {args.runs} runs each")
        print(f"{'imports':>9} {'wall':>9}  statement")
        for statement, (imports, wall) in table.items():
            print(f"{imports * 1000:6.1f} ms {wall * 1000:6.1f} ms  {statement}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
