"""The emulator's I/O-free core: filters, page tokens, cancellation, the simulated clock."""

from __future__ import annotations

import math
from datetime import timedelta

import grpc
import pytest
from google.longrunning import operations_pb2

from lro_grpc._generated import financialservices_v1_pb2 as fs
from lro_grpc.emulator import SimulatedClock
from lro_grpc.emulator import _financial_services as financial_services
from lro_grpc.emulator import _listing as listing
from lro_grpc.emulator import _model as model

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def test_page_token_round_trip() -> None:
    query = listing.parse_list_request(
        operations_pb2.ListOperationsRequest(name="operations", filter="serviceName=a.example.com", page_size=5)
    )
    assert (query.collection, query.page_size, query.after_seq) == ("operations", 5, 0)
    token = query.next_page_token(41)
    assert "41" not in token
    following = listing.parse_list_request(
        # Spacing and quoting aside, the same filter: the token still applies.
        operations_pb2.ListOperationsRequest(name="", filter='serviceName = "a.example.com"', page_token=token)
    )
    assert following.after_seq == 41
    with pytest.raises(model.RequestError, match="page_token"):
        listing.parse_list_request(
            operations_pb2.ListOperationsRequest(
                name="operations", filter="serviceName=a.example.com AND status=done", page_token=token
            )
        )


def test_page_tokens_are_signed_per_secret() -> None:
    request = operations_pb2.ListOperationsRequest(name="projects/p/locations/l", filter="done=false")
    secret = listing.new_page_token_secret()
    token = listing.parse_list_request(request, page_token_secret=secret).next_page_token(7)
    request.page_token = token
    assert listing.parse_list_request(request, page_token_secret=secret).after_seq == 7
    with pytest.raises(model.RequestError, match="page_token") as caught:
        listing.parse_list_request(request, page_token_secret=listing.new_page_token_secret())
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_page_size_default_and_cap() -> None:
    def page_size(name: str, size: int, filter_text: str = "") -> int:
        request = operations_pb2.ListOperationsRequest(name=name, page_size=size, filter=filter_text)
        return listing.parse_list_request(request).page_size

    fs_parent = "projects/p/locations/l"
    assert page_size(fs_parent, 0) == listing.DEFAULT_PAGE_SIZE == 100
    assert page_size(fs_parent, 10**6) == listing.MAX_PAGE_SIZE == 1000
    assert page_size("operations", 0, "serviceName=a") == listing.SM_DEFAULT_PAGE_SIZE == 50
    assert page_size("operations", 101, "serviceName=a") == listing.SM_MAX_PAGE_SIZE == 100
    assert page_size("operations", 7, "serviceName=a") == 7


def make_record(duration: float = 60) -> model.OperationRecord:
    request = fs.CreateInstanceRequest(parent="projects/p/locations/l", instance_id="i")
    return financial_services.create_instance(request, now=T0, duration=duration, controls=model.CallControls())


def test_cancel_is_best_effort() -> None:
    record = make_record()
    stopped = model.cancelled(record, T0 + 10, grace=2)
    assert (stopped.outcome, stopped.end_at, stopped.cancel_requested_at) == ("cancel", T0 + 10, T0 + 10)
    late = model.cancelled(record, T0 + 58.5, grace=2)
    assert (late.outcome, late.end_at, late.cancel_requested_at) == ("success", T0 + 60, T0 + 58.5)
    finished = model.cancelled(record, T0 + 61, grace=2)
    assert finished is record
    assert model.cancelled(stopped, T0 + 11, grace=2) is stopped


def test_done_and_expiry_boundaries() -> None:
    record = make_record()
    assert not record.is_done(T0 + 59.999)
    assert record.is_done(T0 + 60)
    assert not record.is_expired(T0 + 60 + 99.9, retention=100)
    assert record.is_expired(T0 + 60 + 100, retention=100)


def test_call_controls_from_metadata() -> None:
    controls = model.CallControls.from_metadata(
        [("x-other", "1"), (model.DURATION_HEADER, "2.5"), (model.OUTCOME_HEADER, " FAIL ")]
    )
    assert (controls.duration, controls.outcome) == (2.5, "fail")
    assert model.CallControls.from_metadata(None) == model.CallControls()


def test_clock_speed_freeze_and_advance() -> None:
    changes: list[None] = []
    clock = SimulatedClock(speed=0, start=T0, on_change=lambda: changes.append(None))
    assert clock.now() == T0
    assert clock.real_seconds_until(T0 + 5) == math.inf
    assert clock.advance(timedelta(minutes=1)) == T0 + 60
    assert clock.now() == T0 + 60
    clock.set_speed(2)
    assert 0 < clock.real_seconds_until(T0 + 70) <= 5
    assert clock.real_seconds_until(T0) == 0
    assert len(changes) == 2
    with pytest.raises(ValueError, match="speed"):
        clock.set_speed(-1)
    with pytest.raises(TypeError, match="speed"):
        SimulatedClock(speed="fast")  # type: ignore[arg-type]
