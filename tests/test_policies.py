"""Policies, deadlines and the I/O-free core (retry decision, polling state machine) on a simulated clock."""

from __future__ import annotations

import random
import urllib.parse
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import grpc
import pytest
from google.longrunning import operations_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2

from lro_grpc import _core
from lro_grpc.errors import OperationNotFoundError, RpcError, WaitTimeoutError
from lro_grpc.policies import (
    FINANCIAL_SERVICES_POLL_POLICY,
    SERVICE_MANAGEMENT_POLL_POLICY,
    Deadline,
    PollPolicy,
    RetryPolicy,
)

NAME = "projects/p/locations/us-central1/operations/op-1"

# -- PollPolicy / RetryPolicy / Deadline ------------------------------------------------------------------


def test_poll_policy_growth_cap_and_timedelta() -> None:
    policy = PollPolicy(initial=timedelta(seconds=1), multiplier=2, maximum=5, jitter=0)
    assert [policy.delay(attempt) for attempt in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert policy.delay(10**9) == 5.0  # no overflow, no long loop


def test_poll_policy_constant_interval_is_cheap_for_huge_attempts() -> None:
    assert SERVICE_MANAGEMENT_POLL_POLICY.delay(10**12, rng=random.Random(0)) <= 10.0


def test_poll_policy_jitter_only_shortens() -> None:
    policy = PollPolicy(initial=2, multiplier=1, maximum=2, jitter=0.5)
    rng = random.Random(7)
    delays = [policy.delay(0, rng=rng) for _ in range(200)]
    assert all(1.0 <= delay <= 2.0 for delay in delays)
    assert len(set(delays)) > 100


def test_presets() -> None:
    assert (FINANCIAL_SERVICES_POLL_POLICY.initial, FINANCIAL_SERVICES_POLL_POLICY.maximum) == (5.0, 45.0)
    assert FINANCIAL_SERVICES_POLL_POLICY.multiplier == 2.0
    assert SERVICE_MANAGEMENT_POLL_POLICY.initial == SERVICE_MANAGEMENT_POLL_POLICY.maximum == 10.0


@pytest.mark.parametrize(
    ("kwargs", "error", "fragment"),
    [
        ({"initial": 0}, ValueError, "initial"),
        ({"initial": -1}, ValueError, "-1"),
        ({"initial": "1"}, TypeError, "'1'"),
        ({"multiplier": 0.5}, ValueError, "0.5"),
        ({"maximum": 0.5, "initial": 1}, ValueError, "0.5"),
        ({"jitter": 1}, ValueError, "jitter"),
        ({"jitter": True}, TypeError, "True"),
        ({"initial": float("nan")}, ValueError, "nan"),
    ],
)
def test_poll_policy_rejects_bad_values(kwargs: dict[str, Any], error: type[Exception], fragment: str) -> None:
    with pytest.raises(error, match=fragment):
        PollPolicy(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [({"max_attempts": 0}, "max_attempts"), ({"jitter": 2}, "jitter"), ({"timeout": -1}, "-1")],
)
def test_retry_policy_rejects_bad_values(kwargs: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        RetryPolicy(**kwargs)


def test_retry_policy_codes() -> None:
    policy = RetryPolicy()
    assert policy.is_retryable(grpc.StatusCode.UNAVAILABLE, idempotent_read=False)
    assert policy.is_retryable(grpc.StatusCode.RESOURCE_EXHAUSTED, idempotent_read=False)
    assert policy.is_retryable(grpc.StatusCode.DEADLINE_EXCEEDED, idempotent_read=True)
    assert not policy.is_retryable(grpc.StatusCode.DEADLINE_EXCEEDED, idempotent_read=False)
    assert not policy.is_retryable(grpc.StatusCode.NOT_FOUND, idempotent_read=True)


def test_deadline_arithmetic() -> None:
    deadline = Deadline.after(10, now=100.0)
    assert deadline.remaining(104.0) == 6.0 and deadline.remaining(200.0) == 0.0
    assert deadline.clip(3.0, 104.0) == 3.0 and deadline.clip(8.0, 104.0) == 6.0 and deadline.clip(None, 104.0) == 6.0
    assert not deadline.expired(109.9) and deadline.expired(110.0)
    forever = Deadline.after(None, now=100.0)
    assert forever.remaining(1e9) is None and forever.clip(None, 0) is None and not forever.expired(1e12)
    assert forever.earliest(deadline) is deadline and deadline.earliest(Deadline(105.0)).expires_at == 105.0
    with pytest.raises(ValueError, match="-1"):
        Deadline.after(-1, now=0)


# -- headers and retry decision -------------------------------------------------------------------------


def test_routing_header_is_url_encoded() -> None:
    headers = dict(_core.request_metadata("operations/rollouts.svc.example.com:2016-07-16r2"))
    assert headers["x-goog-request-params"] == "name=operations/rollouts.svc.example.com%3A2016-07-16r2"
    assert headers["x-goog-api-client"] == _core.api_client_header()
    assert "x-goog-request-params" not in dict(_core.request_metadata(""))


def status_details(retry_delay: float) -> tuple[tuple[str, bytes], ...]:
    info = error_details_pb2.RetryInfo()
    info.retry_delay.FromNanoseconds(round(retry_delay * 1e9))
    status = status_pb2.Status(code=8, message="quota")
    status.details.add().Pack(info)
    return (("grpc-status-details-bin", status.SerializeToString()),)


def failure(code: grpc.StatusCode, trailers: tuple[tuple[str, bytes], ...] = ()) -> _core.RpcFailure:
    return _core.RpcFailure(code=code, details="injected", trailing_metadata=trailers, exception=RuntimeError("x"))


def test_retry_info_delay_parsing() -> None:
    assert _core.retry_info_delay(status_details(2.5)) == 2.5
    assert _core.retry_info_delay((("grpc-status-details-bin", b"\xff\xff"),)) is None
    assert _core.retry_info_delay((("other", b""),)) is None


def test_retry_delay_decision() -> None:
    policy = RetryPolicy(initial=0.1, multiplier=2, maximum=1, jitter=0, max_attempts=3)
    forever = Deadline(None)

    def decide(fail: _core.RpcFailure, method: _core.Method = "GetOperation", **kwargs: Any) -> float | None:
        settings: dict[str, Any] = {"attempt": 0, "now": 0.0, "deadline": forever}
        settings.update(kwargs)
        return _core.backoff_delay(fail, method=method, policy=policy, **settings)

    assert decide(failure(grpc.StatusCode.UNAVAILABLE)) == 0.1
    assert decide(failure(grpc.StatusCode.UNAVAILABLE), attempt=1) == 0.2
    assert decide(failure(grpc.StatusCode.UNAVAILABLE), attempt=2) is None  # third attempt was the last
    assert decide(failure(grpc.StatusCode.NOT_FOUND)) is None
    assert decide(failure(grpc.StatusCode.DEADLINE_EXCEEDED)) == 0.1
    assert decide(failure(grpc.StatusCode.DEADLINE_EXCEEDED), method="CancelOperation") is None
    assert decide(failure(grpc.StatusCode.RESOURCE_EXHAUSTED, status_details(3.0))) == 3.0
    # Never past the caller's deadline.
    assert decide(failure(grpc.StatusCode.RESOURCE_EXHAUSTED, status_details(3.0)), deadline=Deadline(2.0)) is None
    assert decide(failure(grpc.StatusCode.UNAVAILABLE), now=1.95, deadline=Deadline(2.0)) is None


# -- plans on a simulated clock ---------------------------------------------------------------------------


class SimulatedServer:
    """Drives a plan: a fake clock that sleeps advance, and RPC answers from ``answer``."""

    def __init__(self, answer: Callable[[_core.RpcCall, float], Message | _core.RpcFailure], latency: float = 0.01):
        self.now = 1000.0
        self.answer = answer
        self.latency = latency
        self.calls: list[tuple[float, _core.RpcCall]] = []
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def invoke(self, call: _core.RpcCall) -> Message | _core.RpcFailure:
        self.calls.append((self.now, call))
        reply = self.answer(call, self.now)
        if isinstance(reply, _core.RpcFailure) and reply.code is grpc.StatusCode.DEADLINE_EXCEEDED:
            assert call.timeout is not None
            self.now += call.timeout  # a hung server: the RPC runs until its deadline
        else:
            self.now += self.latency
        return reply

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds

    def run(self, plan: _core.Plan[Any]) -> Any:
        return _core.run_sync(plan, self.invoke, self.sleep)


def running(_: _core.RpcCall, __: float) -> operations_pb2.Operation:
    return operations_pb2.Operation(name=NAME, done=False)


def poll_settings(
    server: SimulatedServer, poll: PollPolicy, *, retry: RetryPolicy | None = None, use_wait: bool = False
) -> _core.PollSettings:
    call = _core.CallSettings(retry or RetryPolicy(jitter=0), 10.0, clock=server.clock)
    return _core.PollSettings(poll_policy=poll, call=call, use_wait_rpc=use_wait)


@pytest.mark.parametrize(
    ("latency", "reserve"),
    [
        (0.0005, _core.MIN_FINAL_POLL_RESERVE),  # a fast link: the least reserve
        (0.01, 0.04),  # four round trips
        (0.03, _core.FINAL_POLL_RESERVE),  # a slow link: at most FINAL_POLL_RESERVE
    ],
)
def test_poll_plan_final_poll_just_before_deadline(latency: float, reserve: float) -> None:
    server = SimulatedServer(running, latency=latency)
    deadline = Deadline.after(100, now=server.now)
    settings = poll_settings(server, PollPolicy(initial=30, multiplier=1, maximum=30, jitter=0))
    with pytest.raises(WaitTimeoutError) as caught:
        server.run(_core.poll_plan(NAME, settings=settings, deadline=deadline, timeout=100))
    assert deadline.expires_at is not None
    times = [at - (deadline.expires_at - 100) for at, _ in server.calls]
    # 0, 30, 60, 90 and then a last look at 100 - reserve, not giving up at 90.
    assert times[:4] == pytest.approx([0, 30 + latency, 60 + 2 * latency, 90 + 3 * latency])
    assert times[-1] == pytest.approx(100 - reserve)
    for at, call in server.calls:
        assert call.timeout is not None and at + call.timeout <= deadline.expires_at + 1e-9
    assert server.now <= deadline.expires_at
    assert isinstance(caught.value.operation, operations_pb2.Operation) and caught.value.timeout == 100


def test_poll_plan_hung_rpc_ends_at_the_deadline() -> None:
    def hang(call: _core.RpcCall, now: float) -> Message | _core.RpcFailure:
        return failure(grpc.StatusCode.DEADLINE_EXCEEDED)

    server = SimulatedServer(hang)
    deadline = Deadline.after(5, now=server.now)
    settings = poll_settings(server, PollPolicy(initial=1, jitter=0))
    with pytest.raises(WaitTimeoutError) as caught:
        server.run(_core.poll_plan(NAME, settings=settings, deadline=deadline, timeout=5))
    assert server.now == pytest.approx(deadline.expires_at)
    assert isinstance(caught.value.__cause__, RuntimeError)


def test_poll_plan_resource_exhausted_slows_down_without_failing() -> None:
    answers = iter(
        [failure(grpc.StatusCode.RESOURCE_EXHAUSTED, status_details(7.0))] * 5
        + [operations_pb2.Operation(name=NAME, done=True)]
    )
    server = SimulatedServer(lambda call, now: next(answers))
    settings = poll_settings(
        server, PollPolicy(initial=1, multiplier=1, maximum=1, jitter=0), retry=RetryPolicy(max_attempts=1)
    )
    done = server.run(_core.poll_plan(NAME, settings=settings, deadline=Deadline(None), timeout=None))
    assert done.done and server.sleeps == [7.0] * 5


def test_poll_plan_unavailable_uses_retry_policy_then_fails() -> None:
    server = SimulatedServer(lambda call, now: failure(grpc.StatusCode.UNAVAILABLE))
    retry = RetryPolicy(initial=0.5, multiplier=2, maximum=10, jitter=0, max_attempts=3)
    settings = poll_settings(server, PollPolicy(jitter=0), retry=retry)
    with pytest.raises(RpcError) as caught:
        server.run(_core.poll_plan(NAME, settings=settings, deadline=Deadline(None), timeout=None))
    assert caught.value.code is grpc.StatusCode.UNAVAILABLE and server.sleeps == [0.5, 1.0]


def test_poll_plan_not_found_is_final() -> None:
    server = SimulatedServer(lambda call, now: failure(grpc.StatusCode.NOT_FOUND))
    settings = poll_settings(server, PollPolicy(jitter=0))
    with pytest.raises(OperationNotFoundError):
        server.run(_core.poll_plan(NAME, settings=settings, deadline=Deadline(None), timeout=None))
    assert len(server.calls) == 1


def test_poll_plan_wait_rpc_asks_for_remaining_time_and_falls_back() -> None:
    def answer(call: _core.RpcCall, now: float) -> Message | _core.RpcFailure:
        if call.method == "WaitOperation":
            return failure(grpc.StatusCode.UNIMPLEMENTED)
        return operations_pb2.Operation(name=NAME, done=True)

    fallbacks: list[bool] = []
    server = SimulatedServer(answer)
    deadline = Deadline.after(30, now=server.now)
    settings = poll_settings(server, PollPolicy(jitter=0), use_wait=True)
    plan = _core.poll_plan(
        NAME, settings=settings, deadline=deadline, timeout=30, on_wait_unimplemented=lambda: fallbacks.append(True)
    )
    assert server.run(plan).done
    (_, wait_call), (_, get_call) = server.calls
    assert isinstance(wait_call.request, operations_pb2.WaitOperationRequest)
    asked = wait_call.request.timeout.ToTimedelta().total_seconds()
    assert asked == pytest.approx(30 - _core.FINAL_POLL_RESERVE)
    assert wait_call.timeout is not None and wait_call.timeout <= 30
    assert get_call.method == "GetOperation" and fallbacks == [True]


def test_unary_plan_retries_within_policy() -> None:
    answers = iter([failure(grpc.StatusCode.UNAVAILABLE), operations_pb2.Operation(name=NAME)])
    server = SimulatedServer(lambda call, now: next(answers))
    settings = _core.CallSettings(RetryPolicy(initial=0.25, jitter=0), 10.0, clock=server.clock)
    plan = _core.unary_plan("GetOperation", _core.get_request(NAME), routing_name=NAME, settings=settings)
    assert server.run(plan).name == NAME
    assert server.sleeps == [0.25]
    assert all(call.timeout == 10.0 for _, call in server.calls)


def test_unary_plan_clips_attempts_to_deadline() -> None:
    server = SimulatedServer(lambda call, now: operations_pb2.Operation(name=NAME))
    settings = _core.CallSettings(RetryPolicy(), 10.0, clock=server.clock)
    deadline = Deadline.after(2, now=server.now)
    plan = _core.unary_plan(
        "GetOperation", _core.get_request(NAME), routing_name=NAME, settings=settings, deadline=deadline
    )
    server.run(plan)
    assert server.calls[0][1].timeout == pytest.approx(2.0)
    expired = _core.unary_plan(
        "GetOperation", _core.get_request(NAME), routing_name=NAME, settings=settings, deadline=Deadline(0.0)
    )
    with pytest.raises(RpcError, match="DEADLINE_EXCEEDED"):
        server.run(expired)


def test_routing_header_matches_url_encoding_for_any_name() -> None:
    rng = random.Random(3)
    alphabet = "abcXYZ019/._~-:%+ &=?#\u00fc\u4e2d"
    for _ in range(2000):
        name = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 30)))
        headers = dict(_core.request_metadata(name))
        assert headers["x-goog-request-params"] == urllib.parse.urlencode({"name": name}, safe="/"), name


def test_attempts_ending_near_the_deadline_are_marked_for_the_clients_own_clock() -> None:
    server = SimulatedServer(running)
    deadline = Deadline.after(30, now=server.now)
    settings = poll_settings(server, PollPolicy(initial=5, multiplier=1, maximum=5, jitter=0))
    with pytest.raises(WaitTimeoutError):
        server.run(_core.poll_plan(NAME, settings=settings, deadline=deadline, timeout=30))
    assert deadline.expires_at is not None
    for at, call in server.calls:
        # The per-RPC timeout is 10 s: only attempts whose timeout ends within the margin of the deadline.
        assert call.timeout is not None
        assert call.near_deadline == (at + call.timeout + _core.OWN_CLOCK_MARGIN >= deadline.expires_at)
    flags = [call.near_deadline for _, call in server.calls]
    assert flags[0] is False and flags[-1] is True


def test_unary_attempts_near_the_overall_timeout_are_marked() -> None:
    answers = iter([failure(grpc.StatusCode.UNAVAILABLE)] * 3 + [operations_pb2.Operation(name=NAME)])
    server = SimulatedServer(lambda call, now: next(answers))
    settings = _core.CallSettings(RetryPolicy(initial=4, maximum=4, jitter=0, timeout=15), 10.0, clock=server.clock)
    server.run(_core.unary_plan("GetOperation", _core.get_request(NAME), routing_name=NAME, settings=settings))
    assert [call.near_deadline for _, call in server.calls] == [False, True, True, True]


@pytest.mark.parametrize(
    ("details", "size", "limit"),
    [
        ("Stream removed (CLIENT: Received message larger than max (200000 vs. 100000))", 200000, 100000),
        ("grpc: trying to send message larger than max (5 vs. 4)", 5, 4),
        ("received metadata size exceeds hard limit (value length 20000 vs. 16384)", 20000, 16384),
        ("received metadata size exceeds soft limit (9600 vs. 8192);  :path:80B", 9600, 8192),
        ("gRPC message exceeds maximum size 4194304: 5000000", 5000000, 4194304),
    ],
)
def test_size_failures_are_not_throttling(details: str, size: int, limit: int) -> None:
    failed = _core.RpcFailure(grpc.StatusCode.RESOURCE_EXHAUSTED, details, (), None)
    assert _core.message_size_failure(failed) == _core.SizeLimit(
        "headers" if "metadata" in details else "message", size, limit
    )
    error = _core.rpc_error(failed, method="GetOperation", operation_name=NAME)
    assert _core.is_message_size_failure(error) and not _core.is_throttling(error)  # an RpcError reads the same
    assert f"of {size} bytes, over the limit of {limit} bytes" in str(error)
    retry = RetryPolicy(jitter=0)
    assert (
        _core.backoff_delay(failed, method="GetOperation", policy=retry, attempt=0, now=0, deadline=Deadline(None))
        is None
    )


def test_quota_is_throttling() -> None:
    quota = _core.RpcFailure(
        grpc.StatusCode.RESOURCE_EXHAUSTED, "Quota exceeded for quota metric 'Read requests'", (), None
    )
    assert _core.is_throttling(quota) and not _core.is_message_size_failure(quota)
    assert not _core.is_throttling(_core.RpcFailure(grpc.StatusCode.UNAVAILABLE, "larger than max", (), None))
