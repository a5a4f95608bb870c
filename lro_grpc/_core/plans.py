"""The plans: one logical call with retries, and a wait for one operation."""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from collections.abc import Callable
from typing import Any, Final

import grpc
from google.longrunning import operations_pb2
from google.protobuf.message import Message

from lro_grpc._core.failures import (
    DEADLINE_PASSED,
    backoff_delay,
    deadline_passed,
    is_throttling,
    log_give_up,
    log_retry,
    retry_info_delay,
    rpc_error,
    unreachable_for_good,
)
from lro_grpc._core.requests import Method, get_request, request_metadata, wait_request
from lro_grpc._core.steps import Plan, RpcCall, RpcFailure, Sleep, check_reply, near_deadline
from lro_grpc.errors import WaitTimeoutError
from lro_grpc.policies import Deadline, PollPolicy, RetryPolicy

__all__ = [
    "FINAL_POLL_RESERVE",
    "FINAL_POLL_RTT_FACTOR",
    "LOOK_ONCE_TIMEOUT",
    "MIN_FINAL_POLL_RESERVE",
    "WAIT_RPC_MAX",
    "CallSettings",
    "PollSettings",
    "attempt_plan",
    "first_attempt",
    "poll_plan",
    "unary_plan",
]

FINAL_POLL_RESERVE: Final = 0.05
"""Most seconds kept before the caller's deadline for the last poll to complete in.

Small on purpose: the wait must not give up early. If the last poll's RPC
needs longer than this, it fails with DEADLINE_EXCEEDED at the deadline and the
wait reports the timeout then, which is still on time.

When the next poll interval would cross the deadline, the last poll is made at
``deadline - reserve`` (or sooner, if the per-RPC timeout is shorter) rather
than skipped, and its RPC timeout is what remains. Once a GetOperation has
been answered, the reserve is :data:`FINAL_POLL_RTT_FACTOR` times that call's
round trip, between :data:`MIN_FINAL_POLL_RESERVE` and this value: on a fast
link the last look comes a few milliseconds before the deadline.
"""

MIN_FINAL_POLL_RESERVE: Final = 0.005
"""Fewest seconds kept before the deadline for the last poll (timer and scheduling slack)."""

FINAL_POLL_RTT_FACTOR: Final = 4.0
"""The last poll's reserve, in round trips of the latest answered GetOperation."""

LOOK_ONCE_TIMEOUT: Final = 0.05
"""Seconds the first look of a wait may take when the deadline leaves less than that.

A wait always looks at the operation once before it gives up: ``result(timeout=0)``
returns a done operation's result rather than timing out without asking. That
one GetOperation gets at least this long, so a wait with no time left ends at
most this much past its deadline.
"""

WAIT_RPC_MAX: Final = 60.0
"""Longest ``timeout`` one WaitOperation RPC asks the server for; longer waits are several RPCs."""

_wait_log = logging.getLogger("lro_grpc.wait")
"""Waits on one operation: quota slow-downs and deadlines (DEBUG), the WaitOperation fallback (INFO)."""


@dataclasses.dataclass(frozen=True)
class CallSettings:
    """How one logical call behaves.

    Attributes:
        retry_policy: retries of transient failures.
        rpc_timeout: timeout of each attempt in seconds (``None``: bounded by the deadline only).
        rng: randomness for jitter (``None``: a shared generator).
        clock: the monotonic clock.
        first_contact: the client has had no answer from its server yet: a loopback
            port that refuses the connection then fails the call at once (nothing
            listens there) instead of being retried until the retry policy's timeout.
    """

    retry_policy: RetryPolicy
    rpc_timeout: float | None
    rng: random.Random | None = None
    clock: Callable[[], float] = time.monotonic
    first_contact: bool = False


def unary_plan(
    method: Method,
    request: Message,
    *,
    routing_name: str,
    settings: CallSettings,
    deadline: Deadline | None = None,
    operation_name: str | None = None,
    retry_resource_exhausted: bool = True,
    started: float | None = None,
) -> Plan[Any]:
    """One logical call: attempts, retries with backoff, all within the deadline.

    Args:
        method: the RPC.
        request: its request.
        routing_name: the value of the routing header.
        settings: retry policy and per-attempt timeout.
        deadline: the caller's deadline; combined with the retry policy's timeout.
        operation_name: named in errors.
        retry_resource_exhausted: retry ``RESOURCE_EXHAUSTED`` here; ``False``
            raises it at once for the caller to slow down as a whole (the
            batch scheduler pauses every operation, not just this call).
        started: when the call started on ``settings.clock`` (default: now); a
            client that made the first attempt itself (see
            :func:`first_attempt`) passes when it did, so the retry policy's
            timeout counts from there.

    Returns:
        The response message (via ``StopIteration``).

    Raises:
        RpcError: the last attempt failed and no retry is allowed.
    """
    clock = settings.clock
    metadata = request_metadata(routing_name)
    start = clock() if started is None else started
    policy_timeout = settings.retry_policy.timeout  # seconds or None: RetryPolicy checked it
    overall = Deadline(None if policy_timeout is None else start + policy_timeout)
    if deadline is not None:
        overall = overall.earliest(deadline)
    attempt = 0
    while True:
        now = clock()
        timeout = overall.clip(settings.rpc_timeout, now)
        if timeout is not None and timeout <= 0:
            raise deadline_passed(method, operation_name)
        step = RpcCall(method, request, timeout, metadata, near_deadline(overall, timeout, now))
        reply = check_reply(method, request, (yield step))
        if not isinstance(reply, RpcFailure):
            return reply
        if not retry_resource_exhausted and is_throttling(reply):
            raise rpc_error(reply, method=method, operation_name=operation_name)
        if unreachable_for_good(reply, first_contact=settings.first_contact):
            raise rpc_error(reply, method=method, operation_name=operation_name)
        delay = backoff_delay(
            reply,
            method=method,
            policy=settings.retry_policy,
            attempt=attempt,
            now=clock(),
            deadline=overall,
            rng=settings.rng,
        )
        if delay is None:
            log_give_up(
                reply,
                method=method,
                name=operation_name or routing_name,
                attempts=attempt + 1,
                policy=settings.retry_policy,
            )
            raise rpc_error(reply, method=method, operation_name=operation_name)
        log_retry(reply, method=method, name=operation_name or routing_name, attempt=attempt + 1, delay=delay)
        yield Sleep(delay)
        attempt += 1


def first_attempt(settings: CallSettings) -> tuple[bool, float | None]:
    """The first attempt of a :func:`unary_plan` with ``settings`` and no caller's deadline.

    What a client needs to make that attempt itself, straight on the stub, and
    hand the plan its reply (started at the same time) only if it failed.

    Returns:
        ``(plain, timeout)``: whether the plan would make it as a plain
        blocking call (``False``: it is near the retry policy's deadline, or
        has no time at all, and the plan must make it), and its timeout
        (``None``: unbounded).
    """
    policy_timeout = settings.retry_policy.timeout
    overall = Deadline(policy_timeout)  # counted from 0, the call's start
    timeout = overall.clip(settings.rpc_timeout, 0.0)
    if timeout is not None and timeout <= 0:
        return False, timeout
    return not near_deadline(overall, timeout, 0.0), timeout


def attempt_plan(
    method: Method,
    request: Message,
    *,
    routing_name: str,
    deadline: Deadline,
    rpc_timeout: float | None,
    clock: Callable[[], float] = time.monotonic,
) -> Plan[Message | RpcFailure]:
    """One attempt of ``method``, no retry and no sleep: its answer, or its failure as a value.

    For callers that own retry timing themselves (the batch scheduler reschedules
    a failed look instead of waiting out a backoff). The answer is read by
    :func:`~lro_grpc._core.steps.check_reply`, the one reading of single calls too;
    a deadline already passed gives :data:`~lro_grpc._core.failures.DEADLINE_PASSED`
    without an attempt.

    Args:
        method: the RPC.
        request: its request.
        routing_name: the value of the routing header.
        deadline: the absolute deadline the attempt may not outlive.
        rpc_timeout: the attempt's timeout (``None``: bounded by the deadline only).
        clock: the monotonic clock.

    Returns:
        The response message or the :class:`RpcFailure` (via ``StopIteration``).
    """
    timeout = deadline.clip(rpc_timeout, clock())
    if timeout is not None and timeout <= 0:
        return DEADLINE_PASSED
    reply = yield RpcCall(method, request, timeout, request_metadata(routing_name))
    return check_reply(method, request, reply)


@dataclasses.dataclass(frozen=True)
class PollSettings:
    """How a wait for an operation behaves.

    Attributes:
        poll_policy: interval between looks at a running operation.
        call: retry policy, per-RPC timeout, randomness and clock.
        use_wait_rpc: try the WaitOperation RPC (falling back to polling on ``UNIMPLEMENTED``).
        final_poll_reserve: see :data:`FINAL_POLL_RESERVE`.
    """

    poll_policy: PollPolicy
    call: CallSettings
    use_wait_rpc: bool = False
    final_poll_reserve: float = FINAL_POLL_RESERVE


def poll_plan(
    name: str,
    *,
    settings: PollSettings,
    deadline: Deadline,
    timeout: float | None,
    on_update: Callable[[operations_pb2.Operation], None] | None = None,
    on_wait_unimplemented: Callable[[], None] | None = None,
    wrap: Callable[[operations_pb2.Operation], object] | None = None,
    last_seen: operations_pb2.Operation | None = None,
) -> Plan[operations_pb2.Operation]:
    """Look at operation ``name`` until it is done or the deadline comes.

    Behaviour:

    * the operation is looked at at least once, even with no time left (that
      look gets :data:`LOOK_ONCE_TIMEOUT`), so a done operation is never
      reported as timed out;
    * not done: sleep ``min(poll delay, time left - reserve)``, then look
      again; the last look is made just before the deadline with its RPC
      clipped to what remains, so no RPC outlives the deadline;
    * ``RESOURCE_EXHAUSTED``: slow down (the next poll interval, at least the
      server's RetryInfo delay), never fatal; except a size limit
      (:func:`is_message_size_failure`), which fails at once;
    * ``UNAVAILABLE`` / ``DEADLINE_EXCEEDED``: retried with the retry policy's
      jittered backoff, within its attempts and timeout;
    * WaitOperation ``UNIMPLEMENTED``: switch to GetOperation at once and call
      ``on_wait_unimplemented``;
    * other failures: :class:`RpcError` (``NOT_FOUND``: :class:`OperationNotFoundError`).

    Args:
        name: the validated operation name.
        settings: polling, retry and timeout settings.
        deadline: the absolute deadline of the whole wait.
        timeout: the caller's timeout, reported in :class:`WaitTimeoutError`.
        on_update: called with every operation state received.
        on_wait_unimplemented: called once if the server lacks WaitOperation.
        wrap: turns the last seen state into what :class:`WaitTimeoutError` carries.
        last_seen: the state known before the wait, if any.

    Returns:
        The done operation (via ``StopIteration``).

    Raises:
        WaitTimeoutError: the deadline came first.
        RpcError: an RPC failed for good.
    """
    if last_seen is not None and last_seen.done:
        return last_seen
    clock = settings.call.clock
    wait = _Wait(
        name,
        settings=settings,
        deadline=deadline,
        timeout=timeout,
        on_update=on_update,
        on_wait_unimplemented=on_wait_unimplemented,
        wrap=wrap,
        last_seen=last_seen,
    )
    while True:
        started = clock()
        call = wait.next_call(started)
        reply = check_reply(call.method, call.request, (yield call))
        now = clock()
        if isinstance(reply, RpcFailure):
            delay = wait.failed(call.method, reply, started, now)
            if delay is None:
                continue
        else:
            assert isinstance(reply, operations_pb2.Operation)  # check_reply made sure of it
            wait.answered(call.method, reply, started, now)
            if reply.done:
                return reply
            delay = wait.poll_delay(call.method, started, now)
        delay = wait.before_deadline(delay, now)
        if delay > 0:
            yield Sleep(delay)


class _Wait:
    """Where one :func:`poll_plan` stands, and its decisions; the plan only yields and sleeps."""

    def __init__(
        self,
        name: str,
        *,
        settings: PollSettings,
        deadline: Deadline,
        timeout: float | None,
        on_update: Callable[[operations_pb2.Operation], None] | None,
        on_wait_unimplemented: Callable[[], None] | None,
        wrap: Callable[[operations_pb2.Operation], object] | None,
        last_seen: operations_pb2.Operation | None,
    ) -> None:
        self.name = name
        self.settings = settings
        self.call = settings.call
        self.deadline = deadline
        self.timeout = timeout
        self.on_update = on_update
        self.on_wait_unimplemented = on_wait_unimplemented
        self.wrap = wrap
        self.last_seen = last_seen
        self.metadata = request_metadata(name)
        most_reserve = settings.final_poll_reserve
        if self.call.rpc_timeout is not None:
            most_reserve = min(most_reserve, self.call.rpc_timeout)
        self.most_reserve = most_reserve
        self.reserve = most_reserve
        self.use_wait = settings.use_wait_rpc
        self.polls = 0  # answered looks at a running operation (drives the poll interval)
        self.failures = 0  # consecutive transient failures (drives the retry backoff)
        self.failing_since: float | None = None
        self.last_failure: RpcFailure | None = None
        self.looked = False

    def timed_out(self) -> WaitTimeoutError:
        """The error for a wait whose deadline came first, carrying the last seen state."""
        name, timeout, last_seen = self.name, self.timeout, self.last_seen
        if _wait_log.isEnabledFor(logging.DEBUG):
            _wait_log.debug(
                "operation %r not done at the deadline (%r s)", name, timeout, extra={"lro_operation": name}
            )
        shown: object = last_seen
        if self.wrap is not None and last_seen is not None:
            shown = self.wrap(last_seen)
        error = WaitTimeoutError(
            f"operation {name!r} was not done within {timeout!r} s", operation=shown, timeout=timeout
        )
        if self.last_failure is not None:
            error.__cause__ = self.last_failure.exception
        return error

    def next_call(self, started: float) -> RpcCall:
        """The next look: a WaitOperation while there is room for one, else a GetOperation.

        Raises:
            WaitTimeoutError: no time is left, and the operation was looked at already.
        """
        call, deadline, reserve = self.call, self.deadline, self.reserve
        remaining = deadline.remaining(started)
        rpc_timeout = deadline.clip(call.rpc_timeout, started)
        if remaining is not None and remaining < LOOK_ONCE_TIMEOUT and not self.looked:
            # No time left, but a wait never gives up without asking once.
            rpc_timeout = LOOK_ONCE_TIMEOUT if call.rpc_timeout is None else min(call.rpc_timeout, LOOK_ONCE_TIMEOUT)
        elif remaining is not None and remaining <= 0:
            raise self.timed_out()
        self.looked = True
        method: Method
        if self.use_wait and (remaining is None or remaining - reserve > reserve):
            method = "WaitOperation"
            asked = WAIT_RPC_MAX if remaining is None else min(WAIT_RPC_MAX, remaining - reserve)
            request: Message = wait_request(self.name, asked)
            # The server answers after `asked`; the RPC may take the per-RPC timeout beyond that.
            rpc_timeout = deadline.clip(asked + (call.rpc_timeout or reserve), started)
        else:
            method = "GetOperation"
            request = get_request(self.name)
        return RpcCall(method, request, rpc_timeout, self.metadata, near_deadline(deadline, rpc_timeout, started))

    def answered(self, method: Method, reply: operations_pb2.Operation, started: float, now: float) -> None:
        """Take note of an answered look (``on_update`` is told)."""
        self.last_seen = reply
        if method == "GetOperation":
            # Keep for the last look what this link's round trip needs, no more.
            round_trip = FINAL_POLL_RTT_FACTOR * (now - started)
            self.reserve = min(self.most_reserve, max(MIN_FINAL_POLL_RESERVE, round_trip))
        self.last_failure = None
        self.failures = 0
        self.failing_since = None
        if self.on_update is not None:
            self.on_update(reply)

    def poll_delay(self, method: Method, started: float, now: float) -> float:
        """Seconds until the next look at a running operation."""
        delay = self.settings.poll_policy.delay(self.polls, rng=self.call.rng)
        self.polls += 1
        if method == "WaitOperation":
            # The server already waited; poll no more often than the policy says.
            delay = max(0.0, delay - (now - started))
        return delay

    def failed(self, method: Method, reply: RpcFailure, started: float, now: float) -> float | None:
        """Seconds until the next look after a failed one; ``None``: look again at once (with GetOperation).

        Raises:
            WaitTimeoutError: the attempt ran out of time at the deadline.
            RpcError: the failure is not retried, or the retries are used up.
        """
        self.last_failure = reply
        code = reply.code
        if method == "WaitOperation" and code is grpc.StatusCode.UNIMPLEMENTED:
            self._wait_unimplemented(method)
            return None
        if code is grpc.StatusCode.DEADLINE_EXCEEDED and self.deadline.expired(now):
            raise self.timed_out()
        if is_throttling(reply):
            return self._throttled(method, reply)
        return self._backoff(method, reply, started, now)

    def _wait_unimplemented(self, method: Method) -> None:
        self.use_wait = False
        name = self.name
        if _wait_log.isEnabledFor(logging.INFO):
            _wait_log.info(
                "WaitOperation for %r is UNIMPLEMENTED on this server: polling with GetOperation instead",
                name,
                extra={"lro_method": method, "lro_operation": name, "lro_code": "UNIMPLEMENTED"},
            )
        if self.on_wait_unimplemented is not None:
            self.on_wait_unimplemented()

    def _throttled(self, method: Method, reply: RpcFailure) -> float:
        # Quota: slow down rather than fail.
        delay = max(
            self.settings.poll_policy.delay(self.polls, rng=self.call.rng),
            retry_info_delay(reply.trailing_metadata) or 0,
        )
        self.polls += 1
        name = self.name
        if _wait_log.isEnabledFor(logging.DEBUG):
            _wait_log.debug(
                "%s for %r: RESOURCE_EXHAUSTED, polling more slowly: next look in %.3f s",
                method,
                name,
                delay,
                extra={"lro_method": method, "lro_operation": name, "lro_code": reply.code.name, "lro_delay": delay},
            )
        return delay

    def _backoff(self, method: Method, reply: RpcFailure, started: float, now: float) -> float:
        retry = self.call.retry_policy
        if self.failing_since is None:
            self.failing_since = started
        next_delay = backoff_delay(
            reply,
            method=method,
            policy=retry,
            attempt=self.failures,
            now=now,
            deadline=Deadline.after(retry.timeout, now=self.failing_since),
            rng=self.call.rng,
        )
        if next_delay is None:
            log_give_up(reply, method=method, name=self.name, attempts=self.failures + 1, policy=retry)
            raise rpc_error(reply, method=method, operation_name=self.name)
        self.failures += 1
        log_retry(reply, method=method, name=self.name, attempt=self.failures, delay=next_delay)
        return next_delay

    def before_deadline(self, delay: float, now: float) -> float:
        """``delay``, cut so that the next look comes before the deadline.

        Raises:
            WaitTimeoutError: less than the reserve for a last look is left.
        """
        remaining = self.deadline.remaining(now)
        if remaining is not None:
            if remaining <= self.reserve:
                raise self.timed_out()
            delay = min(delay, remaining - self.reserve)
        return delay
