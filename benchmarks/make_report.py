"""Run every benchmark of ``make bench`` and write ``docs/benchmarks.md`` from what this run measured.

Each script runs in a process of its own, in turn; its output is shown as it
comes and kept in ``docs/benchmarks/<script>.txt``. The page then gives, for
each script, what it measures and how (its docstring's first paragraphs), the
output of this run, and for ``bench_scaling.py`` its table and the plots it drew.
Each output starts with when its script ran and the load average before and
after: figures from a shared machine mean little without them.

Usage: ``.venv/bin/python benchmarks/make_report.py [--only SCRIPT ...]``
(``--only`` runs the named scripts and keeps the others' last output).
"""

from __future__ import annotations

import argparse
import ast
import datetime
import json
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
DOCS = HERE.parent / "docs"
OUT = DOCS / "benchmarks"
SCRIPTS = (
    "bench_waiter.py",
    "bench_single_call.py",
    "bench_sweep.py",
    "bench_sweep_memory.py",
    "bench_sweep_rounds.py",
    "bench_journal.py",
    "bench_list_weights.py",
    "bench_ray.py",
    "bench_scaling.py",
)
ARGUMENTS = {"bench_sweep.py": ["--docs", ""]}
"""Arguments per script: bench_sweep.py would write this page itself; here its output goes into the page."""
TITLES = {
    "bench_waiter.py": "Polling one by one: client CPU per poll against the floor and google-api-core",
    "bench_single_call.py": "One call: client CPU of `get` against the raw stub, and import time against gRPC",
    "bench_sweep.py": "Sweeping with ListOperations against polling each operation",
    "bench_sweep_memory.py": "Memory per pending operation while sweeping",
    "bench_sweep_rounds.py": "A sweep round's own cost: client CPU per listed operation, and memory, without RPCs",
    "bench_journal.py": "What a batch journal costs per operation",
    "bench_list_weights.py": "What ListOperations pages weigh",
    "bench_ray.py": "Waiting from a Ray cluster",
    "bench_scaling.py": "How waiting scales with the number of operations (plots)",
}

NOTES = {
    "bench_waiter.py": (
        "Reading the figures: between rounds the b/a ratio moves by several percent on a shared "
        "machine, often about the whole gap to its target. The c/b target is out of reach of the "
        "measured floor: most of a poll's client CPU is gRPC's own per-call cost, which api-core and "
        "lro_grpc pay alike; per completed operation api-core costs more, since its full-jitter "
        "sleeps also poll more often."
    ),
    "bench_single_call.py": (
        "Reading the figures: a call's client CPU is mostly gRPC's own (the raw stub's). Every call of these "
        "APIs carries two headers and a deadline; a' and c' show what sending them costs any client on top of "
        "the bare stub, a0' and c0' the same on a channel with gRPC's retry layer off, as the clients' own "
        "channels are (they retry by their own policy). b/a0' and d/c0' are then what the clients add above "
        "that floor; b/a0 and d/c0 can be no lower than a0'/a0 and c0'/c0. On this shared machine a round's "
        "ratio moves by 5-15%; compare the medians, and the import figure only with a load average below the "
        "number of CPUs (its minimum over fresh interpreters is the least disturbed run, but a loaded machine "
        "disturbs all)."
    ),
    "bench_sweep.py": (
        'Reading the figures: "one by one" is what polling each operation every second until it is '
        "seen done costs (`sum(floor(d / 1 s) + 1)`, checked against the measured per-operation run). "
        "Other callers' running operations (20% of N) and finished ones (20% of N: 20,000 at 100,000, the "
        "issue's set-up) share our locations, so every done listing carries those finished ones: a walk is "
        "taken only when the cost model (a page of 1,000 finished operations weighs about 40 GetOperations of "
        "server work, bench_list_weights.py) finds it cheaper than a GetOperation for each operation that "
        "left the running listing. The crowded run puts the 100,000 run's 20,000 beside 10,000 of ours (2,500 "
        "per location, twice ours): walking them would cost the server more than the GetOperations, so the "
        "model chooses those and each finished operation costs about one RPC, by design. The emulator and "
        "the client share the machine's cores with whatever else runs: the time to report is bound by that "
        "capacity (see the "
        "load average of each run), the RPC counts much less so. A run whose common start came late "
        "(creating took longer than planned) has operations that ended before the wait began: they are "
        "listed done at once and their time to report counts from their end."
    ),
    "bench_scaling.py": (
        "Reading the plots: polling each operation costs about one GetOperation per poll interval of "
        "its life, whoever does it (api-core's full-jitter sleeps poll more often); sweeping costs one "
        "ListOperations page per location per interval plus the one GetOperation that confirms each "
        "end, so its RPCs per operation fall towards 1 as operations share the listings. Threads "
        "(api-core) and the machine's load show in the time to report."
    ),
}


def run_script(script: str) -> str:
    """Run one benchmark, echoing its output; returns the output."""
    print(f"== {script}", flush=True)
    process = subprocess.Popen(
        [sys.executable, str(HERE / script), *ARGUMENTS.get(script, [])],
        cwd=HERE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    lines = []
    began, load = _now(), os.getloadavg()
    for line in process.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        lines.append(line)
    if process.wait() != 0:
        raise SystemExit(f"{script} exited with {process.returncode}")
    after = os.getloadavg()
    return (
        f"# run {began} to {_now()}; load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} before, "
        f"{after[0]:.2f} / {after[1]:.2f} / {after[2]:.2f} after (1, 5, 15 min)\n" + "".join(lines)
    )


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def description(script: str) -> str:
    """The script's docstring without its usage line."""
    docstring = ast.get_docstring(ast.parse((HERE / script).read_text())) or ""
    paragraphs = [p for p in docstring.split("\n\n") if not p.startswith("Run with")]
    return "\n\n".join(paragraphs)


def scaling_section() -> str:
    results = json.loads((OUT / "scaling.json").read_text())
    rows = [
        "| operations | strategy | RPCs per completed operation | report median / p99 (s) | client CPU per operation |",
        "|---:|---|---:|---:|---:|",
    ]
    for run in sorted(results["runs"], key=lambda run: (run["operations"], run["strategy"])):
        rows.append(
            f"| {run['operations']:,} | {run['strategy']} | {run['rpcs_per_operation']:.2f} | "
            f"{run['report_median_s']:.2f} / {run['report_p99_s']:.2f} | {run['cpu_per_operation_us']:,.0f} µs |"
        )
    plots = "\n\n".join(
        f"![{alt}](benchmarks/{name})"
        for name, alt in (
            ("scaling-rpcs.png", "RPCs per completed operation against the number of operations"),
            ("scaling-p99.png", "p99 time from an operation's end to its report against the number of operations"),
            ("scaling-cpu.png", "client CPU per completed operation against the number of operations"),
        )
    )
    return "\n".join(rows) + "\n\n" + plots


def write_page() -> Path:
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`benchmarks/make_report.py`); every figure in a section comes from the run "
        "of its script whose output is shown (its first line says when it ran and the machine's load). Client "
        "CPU is `time.process_time()` of the benchmark's process; the emulator runs in a process of its own; "
        "every ratio is taken against a baseline measured in the same run.",
        "",
        f"Page written {when} on {os.cpu_count()} CPUs, {platform.python_implementation()} "
        f"{platform.python_version()}. The machine is shared: expect noise of several percent between runs, "
        "much more under load (a load average above the number of CPUs means the benchmark shared them).",
        "",
    ]
    for script in SCRIPTS:
        output_path = OUT / f"{script.removesuffix('.py')}.txt"
        parts += [f"## {TITLES[script]}", "", f"`benchmarks/{script}`:", "", description(script), ""]
        if script == "bench_scaling.py" and (OUT / "scaling.json").exists():
            parts += [scaling_section(), ""]
        if script == "bench_sweep.py" and (OUT / "sweep-scaling.png").exists():
            alt = "RPCs per completed operation and p99 time to report against the number of operations, sweeping"
            parts += [f"![{alt}](benchmarks/sweep-scaling.png)", ""]
        if script in NOTES:
            parts += [NOTES[script], ""]
        if output_path.exists():
            parts += ["Output of this run:", "", "```text", output_path.read_text().rstrip(), "```", ""]
        else:
            parts += ["(not run)", ""]
    page = DOCS / "benchmarks.md"
    page.write_text("\n".join(parts))
    return page


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", choices=SCRIPTS, help="run only these scripts")
    parser.add_argument("--page-only", action="store_true", help="write the page from the last outputs")
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    if not args.page_only:
        for script in args.only or SCRIPTS:
            output = run_script(script)
            (OUT / f"{script.removesuffix('.py')}.txt").write_text(output)
    page = write_page()
    print(f"wrote {page.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
