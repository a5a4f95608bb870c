"""Service Management sweep: this checkout's client against another commit's, alternating in one run.

Run with ``.venv/bin/python benchmarks/bench_sm_against.py --against COMMIT``
(from a git checkout; about a minute per run). The other commit is built into a
wheel of its own (``git archive``, then ``pip wheel``, no dependencies) and
unpacked in a temporary directory. Both clients then sweep the same set-up as
phase 5 of ``bench_sweep.py`` (``--count`` SubmitConfigSource operations over
four services, finishing 2-20 s after a common start, 1 s poll interval)
against one emulator of this checkout, each run in a fresh interpreter, the
two alternating (which goes first swaps every pair), so load on the shared
machine falls on both alike. Printed per pair: client CPU and RPCs per
operation of each, and this checkout's CPU as a share of the other's; then the
minimum and median of those shares.

Issue 19's target for this set-up is client CPU at most 0.5x what it was when
the issue was filed: ``--against fb380c1`` is the main of then (its last commit
before done listings).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench_waiter import EmulatorProcess

HERE = Path(__file__).resolve().parent
RUN = """
import json, sys, types
import lro_grpc
sys.path.insert(0, sys.argv[1])
import bench_sweep
result = bench_sweep.sm_run(types.SimpleNamespace(target=sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
print(json.dumps({**result, "package": lro_grpc.__path__[0]}))
"""


def build(commit: str, into: Path) -> Path:
    """``commit`` of this repository as an importable package tree under ``into``; its path."""
    source, wheels, tree = into / "source", into / "wheel", into / "tree"
    source.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(HERE.parent), "archive", "--format=tar", commit], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(source)], input=archive, check=True)
    pip = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    subprocess.run([*pip, str(source), "-w", str(wheels)], check=True)
    (wheel,) = wheels.glob("*.whl")
    with zipfile.ZipFile(wheel) as unpacked:
        unpacked.extractall(tree)
    return tree


def sweep(target: str, count: int, round_index: int, package: Path | None, cwd: Path) -> dict[str, Any]:
    """One phase-5 run in a fresh interpreter, with ``package`` first on its path (``None``: this checkout).

    It runs in ``cwd``, away from the checkout: ``python -c`` puts its working directory first on the path.
    """
    env = dict(os.environ)
    if package is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(package), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    finished = subprocess.run(
        [sys.executable, "-c", RUN, str(HERE), target, str(count), str(round_index)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
    )
    result: dict[str, Any] = json.loads(finished.stdout.strip().splitlines()[-1])
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", required=True, metavar="COMMIT", help="the commit to compare with")
    parser.add_argument("--pairs", type=int, default=4, help="runs of each (default: %(default)s)")
    parser.add_argument("--count", type=int, default=2000, help="operations per run (default: %(default)s)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-sm-against-") as scratch:
        other = build(args.against, Path(scratch))
        emulator = EmulatorProcess()
        shares: list[float] = []
        try:
            print(f"emulator at {emulator.target}; {args.count} operations per run, {args.pairs} pairs", flush=True)
            for pair in range(args.pairs):
                runs: dict[str, dict[str, Any]] = {}
                order = ("this", "other") if pair % 2 == 0 else ("other", "this")
                for offset, which in enumerate(order):
                    package = None if which == "this" else other
                    runs[which] = sweep(emulator.target, args.count, 1000 + 2 * pair + offset, package, Path(scratch))
                if pair == 0:
                    print(f"lro_grpc of this checkout: {runs['this']['package']}", flush=True)
                    print(f"lro_grpc of {args.against}: {runs['other']['package']}", flush=True)
                share = runs["this"]["cpu_per_operation_us"] / runs["other"]["cpu_per_operation_us"]
                shares.append(share)
                print(
                    f"pair {pair + 1}: this {runs['this']['cpu_per_operation_us']:.0f} us, "
                    f"{runs['this']['rpcs_per_operation']:.3f} RPCs per operation; {args.against} "
                    f"{runs['other']['cpu_per_operation_us']:.0f} us, {runs['other']['rpcs_per_operation']:.3f} RPCs; "
                    f"CPU share {share:.3f}; {runs['this']['verdict']} / {runs['other']['verdict']}",
                    flush=True,
                )
        finally:
            emulator.stop()
    print(
        f"client CPU per operation, this checkout / {args.against}: min {min(shares):.3f}, "
        f"median {statistics.median(shares):.3f}  target <= 0.50"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
