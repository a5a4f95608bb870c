"""How long ``import lro_grpc`` takes: the minimum over N fresh interpreters.

Each statement runs in a new ``python -X importtime -c STATEMENT`` process, N times,
interleaved with the others so load on the machine spreads evenly. Two figures per
statement, both the minimum over the runs (the least disturbed run):

* ``imports``: the sum of the top-level imports' cumulative times that ``-X importtime``
  reports, i.e. the import cost alone, without interpreter start-up;
* ``wall``: the process's wall time minus that of ``python -c pass``.

Usage::

    .venv/bin/python benchmarks/import_time.py [-n 20] [--python PATH] [STATEMENT ...]

``--python`` measures another environment (e.g. a virtualenv with the wheel installed,
which has no editable-install finder to pay for). The default statements are what a
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
        [python, "-X", "importtime", "-c", statement], cwd=cwd, capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - started
    if completed.returncode != 0:
        raise SystemExit(f"{statement!r} failed:\n{completed.stderr}")
    return wall, _top_level_microseconds(completed.stderr) / 1e6


def measure(python: str, statements: Sequence[str], runs: int) -> dict[str, tuple[float, float]]:
    """``{statement: (min import seconds, min wall seconds above a bare interpreter)}``."""
    best_wall = dict.fromkeys(["pass", *statements], float("inf"))
    best_imports = dict.fromkeys(statements, float("inf"))
    with tempfile.TemporaryDirectory() as cwd:  # never import from a checkout by accident
        for _ in range(runs):
            for statement in best_wall:
                wall, imports = _run_once(python, statement, cwd)
                best_wall[statement] = min(best_wall[statement], wall)
                if statement in best_imports:
                    best_imports[statement] = min(best_imports[statement], imports)
    return {statement: (best_imports[statement], best_wall[statement] - best_wall["pass"]) for statement in statements}


def main(argv: Sequence[str] | None = None) -> int:
    """Print the table of import times."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("statements", nargs="*", default=list(DEFAULT_STATEMENTS), metavar="STATEMENT")
    parser.add_argument("-n", "--runs", type=int, default=20, help="runs per statement (default 20)")
    parser.add_argument("--python", default=sys.executable, help="interpreter to measure (default: this one)")
    args = parser.parse_args(argv)
    python = os.path.abspath(args.python) if os.sep in args.python else args.python
    results = measure(python, args.statements, args.runs)
    print(f"{python}: minimum of {args.runs} runs each")
    print(f"{'imports':>9} {'wall':>9}  statement")
    for statement, (imports, wall) in results.items():
        print(f"{imports * 1000:6.1f} ms {wall * 1000:6.1f} ms  {statement}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
