"""The operations page's speed in a real headless Chromium, measured by the page's own Performance API.

Starts an emulator, creates ``--operations`` operations over gRPC, opens ``/ui/``
and reads, from the browser: first contentful paint, the moment the first rows are
in the table (``lro-first-rows`` mark), and the duration of each live refresh
(``lro-refresh`` measures: both API reads, JSON and the table update). The baseline
is the same page over an empty emulator, measured in the same run: the ratio is
what the operations cost. Every resource the page loaded must be same-origin.

    .venv/bin/python benchmarks/bench_ui.py [--operations 10000] [--rounds 3]

Needs ``chromium`` and ``chromium-driver`` (``apt-get install -y chromium chromium-driver``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from browser import chromium, missing_browser

from lro_grpc._generated import financialservices_v1_pb2 as fs
from lro_grpc._generated import financialservices_v1_pb2_grpc as fs_grpc
from lro_grpc.emulator import Emulator

LOCATIONS = ("us-central1", "europe-west1", "asia-east1", "us-east4")


def create(emu: Emulator, count: int) -> float:
    """Create ``count`` Financial Services operations over gRPC, 200 in flight; seconds taken."""
    started = time.perf_counter()
    with grpc.insecure_channel(emu.target) as channel:
        stub = fs_grpc.AMLStub(channel)
        for first in range(0, count, 200):
            futures: list[Future[Any]] = []
            for index in range(first, min(count, first + 200)):
                parent = f"projects/bench/locations/{LOCATIONS[index % len(LOCATIONS)]}"
                request = fs.CreateInstanceRequest(parent=parent, instance_id=f"instance-{index}")
                duration = str(30 + index % 3000)
                futures.append(
                    stub.CreateInstance.future(request, metadata=[("x-emulator-duration-seconds", duration)])
                )
            for future in futures:
                future.result(timeout=60)
    return time.perf_counter() - started


def measure(driver: Any, emu: Emulator, refreshes: int) -> dict[str, Any]:
    """Open the page in a fresh tab state and read its timings after ``refreshes`` live refreshes."""
    driver.get("about:blank")
    driver.get(emu.ui_url)
    deadline = time.monotonic() + 60
    while driver.execute_script("return window.lroUi ? window.lroUi.refreshes : 0") < refreshes + 1:
        if time.monotonic() > deadline:
            raise SystemExit("bench_ui: the page did not refresh in 60 s")
        time.sleep(0.1)
    return dict(
        driver.execute_script(
            """
            const paint = performance.getEntriesByName('first-contentful-paint')[0];
            const rows = performance.getEntriesByName('lro-first-rows')[0];
            return {
              fcp: paint ? paint.startTime : null,
              firstRows: rows ? rows.startTime : null,
              refreshes: performance.getEntriesByName('lro-refresh').map(e => e.duration),
              rowCount: document.querySelectorAll('tr[data-operation-name]').length,
              resources: performance.getEntriesByType('resource').map(e => e.name),
              origin: location.origin,
            };
            """
        )
    )


def summary(values: list[float]) -> str:
    return f"min {min(values):7.1f} ms  median {statistics.median(values):7.1f} ms  max {max(values):7.1f} ms"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--operations", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3, help="page loads measured per emulator")
    parser.add_argument("--refreshes", type=int, default=8, help="live refreshes measured per page load")
    args = parser.parse_args(argv)
    missing = missing_browser()
    if missing:
        print(f"bench_ui: {missing}", file=sys.stderr)
        return 2
    results: dict[int, dict[str, list[float]]] = {}
    with chromium() as driver:
        for count in (0, args.operations):
            with Emulator(speed=1, rest_port=0) as emu:
                if count:
                    seconds = create(emu, count)
                    print(f"created {count} operations over gRPC in {seconds:.1f} s")
                runs: dict[str, list[float]] = {"fcp": [], "firstRows": [], "refresh": []}
                for _ in range(args.rounds):
                    timings = measure(driver, emu, args.refreshes)
                    foreign = [url for url in timings["resources"] if not url.startswith(timings["origin"] + "/")]
                    if foreign:
                        raise SystemExit(f"bench_ui: requests left the origin: {foreign}")
                    runs["fcp"].append(timings["fcp"])
                    runs["firstRows"].append(timings["firstRows"])
                    runs["refresh"].extend(timings["refreshes"][1:])  # the first one is the first paint's
                results[count] = runs
                print(f"{count:>7} operations ({timings['rowCount']} rows on the page):")
                print(f"  first contentful paint  {summary(runs['fcp'])}")
                print(f"  first rows in the table {summary(runs['firstRows'])}")
                print(f"  live refresh            {summary(runs['refresh'])}")
                print(f"  resources: {len(timings['resources'])}, all from {timings['origin']}")
    base, loaded = results[0], results[args.operations]
    for key, label in (("firstRows", "first rows"), ("refresh", "refresh")):
        ratio = statistics.median(loaded[key]) / statistics.median(base[key])
        print(f"{label}: median with {args.operations} operations / empty emulator = {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
