"""``lro-grpc demo`` end to end, against its in-process emulator."""

from __future__ import annotations

import io
import json
import re

import pytest

from lro_grpc import _demo
from lro_grpc.cli import ExitCode, main
from lro_grpc.names import FINANCIAL_SERVICES_LOCATIONS

# Small and fast: a 1000x clock, 60-300 simulated seconds per operation, 50 ms polls.
SMALL = ["--instances", "20", "--rollouts", "3", "--speed", "1000", "--poll-interval", "0.05", "--seed", "7"]


def test_demo_runs_end_to_end_and_its_summary_adds_up(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["demo", *SMALL])
    out, err = capsys.readouterr()
    assert code == ExitCode.OK, out + err
    assert err == ""  # no progress bar when not on a terminal

    assert "started 20 AML.CreateInstance operations over 8 locations and 3 ServiceManager" in out
    assert "  operations: 23 started, 21 succeeded, 1 failed, 1 cancelled, 0 timed out" in out
    assert re.search(r"the failure: operation '.+' failed: FAILED_PRECONDITION: ", out)
    assert "ended CANCELLED: " in out
    assert (
        "deleted 20 finished operation records (Service Management offers no delete); "
        "ListOperations over 8 locations and 3 services now returns 3" in out
    )

    rpcs = re.search(r"  RPCs issued: (\d+) \((.+)\)", out)
    assert rpcs is not None
    counts = {method: int(count) for method, count in (item.split() for item in rpcs.group(2).split(", "))}
    assert sum(counts.values()) == int(rpcs.group(1))
    assert counts["CreateInstance"] == 20
    assert counts["CreateServiceRollout"] == 3
    assert counts["CancelOperation"] == 1
    assert counts["DeleteOperation"] == 20
    # One per location and one per service at the end, besides the batch's listings while waiting.
    assert counts["ListOperations"] >= 8 + 3
    waiting = re.search(r"  GetOperation calls while waiting: (\d+) ", out)
    assert waiting is not None
    polls = int(waiting.group(1))
    # The GetOperations are the wait's and the sample's: cancel and delete do not look.
    assert counts["GetOperation"] == polls + 1
    # A listing of finished operations may answer for several operations at once, so
    # the wait need not GetOperation each one; but a rollout is alone in its service,
    # and a listing is never cheaper than one GetOperation: each rollout was polled.
    assert polls >= 3
    # Every one of the 11 scopes was looked at while waiting, by a GetOperation of one
    # of its operations or a listing of it (the 11 listings at the end are not the wait's).
    assert polls + counts["ListOperations"] - (8 + 3) >= 8 + 3

    # The sample: a done Financial Services operation, in the seed's JSON shape.
    sample = json.loads(out[out.index("{", out.index("one operation as JSON")) :])
    assert list(sample) == ["name", "metadata", "done", "response"]
    assert sample["metadata"]["@type"] == "type.googleapis.com/google.cloud.financialservices.v1.OperationMetadata"
    assert sample["metadata"]["verb"] == "create"
    assert sample["response"]["@type"] == "type.googleapis.com/google.cloud.financialservices.v1.Instance"
    assert sample["response"]["state"] == "ACTIVE"
    assert set(sample["response"]) == {"@type", "name", "createTime", "updateTime", "state", "kmsKey"}


def test_run_demo_reports_what_it_measured() -> None:
    config = _demo.DemoConfig(instances=10, rollouts=2, speed=1000, poll_interval=0.05, seed=3)
    out = io.StringIO()
    report = _demo.run_demo(config, out=out)
    assert report.created == {"financialservices": 10, "servicemanagement": 2}
    assert sum(report.created_per_location.values()) == 10
    assert set(report.created_per_location) == set(FINANCIAL_SERVICES_LOCATIONS)
    assert report.outcomes == {"succeeded": 10, "failed": 1, "cancelled": 1, "timed_out": 0}
    assert report.cancelled_name != report.failed_name
    assert report.failure is not None and report.failure["code"] == 9
    assert report.deleted == 10 and report.remaining_after_delete == 2  # the two rollouts
    assert report.rpcs["CreateInstance"] == 10 and report.rpcs["DeleteOperation"] == 10
    assert 0 < report.create_seconds < report.elapsed_seconds
    assert 0 < report.wait_seconds < report.elapsed_seconds
    # The emulator's clock ran 1000x: the simulated span is about elapsed x 1000.
    assert report.simulated_seconds > 0
    assert report.sample is not None and report.sample["done"] is True
    assert f"{report.elapsed_seconds:.2f} s real" in out.getvalue()
    # The sample's GetOperation came after the wait. Listings of finished operations may answer
    # for several at once, never for one alone: the six locations holding a single instance
    # and the two rollouts (each alone in its service) were each polled.
    assert 6 + 2 <= report.wait_polls == report.rpcs["GetOperation"] - 1


def test_demo_deadline_reports_the_operations_still_running(capsys: pytest.CaptureFixture[str]) -> None:
    # 100 simulated seconds per real second and 300-600 s durations: nothing finishes in 0.5 s
    # except the failure... which is planned at min_duration (300 s) too.
    code = main(
        [
            "demo",
            "--instances",
            "3",
            "--rollouts",
            "0",
            "--speed",
            "100",
            "--min-duration",
            "300",
            "--max-duration",
            "600",
            "--wait-timeout",
            "0.5",
            "--poll-interval",
            "0.05",
        ]
    )
    out, _ = capsys.readouterr()
    assert code == ExitCode.TIMEOUT
    assert "operations: 3 started, 0 succeeded, 0 failed, 1 cancelled, 2 timed out" in out
    assert "deleted 1 finished operation records" in out


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--instances", "2", "instances must be >= 3, got 2"),
        ("--rollouts", "-1", "rollouts must be >= 0, got -1"),
        ("--speed", "0", "speed must be a finite number > 0, got 0.0"),
        ("--min-duration", "500", "max_duration (300.0) must be >= min_duration (500.0)"),
    ],
)
def test_demo_bad_options_exit_2(capsys: pytest.CaptureFixture[str], option: str, value: str, message: str) -> None:
    assert main(["demo", option, value]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == f"lro-grpc: error: {message}"


def test_demo_config_checks_types() -> None:
    with pytest.raises(TypeError, match="instances must be an int, got '3'"):
        _demo.DemoConfig(instances="3")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="project must be a non-empty id without '/', got 'a/b'"):
        _demo.DemoConfig(project="a/b")
