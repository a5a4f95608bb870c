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
    deadline_passed,
    is_throttling,
    log_give_up,
    log_retry,
    retry_delay,
    retry_info_delay,
    rpc_error,
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
    """

    retry_policy: RetryPolicy
    rpc_timeout: float | None
    rng: random.Random | None = None
    clock: Callable[[], float] = time.monotonic


def unary_plan(
    method: Method,
    request: Message,
    *,
    routing_name: str,
    settings: CallSettings,
    deadline: Deadline | None = None,
    operation_name: str | None = None,
    retry_resource_exhausted: bool = True,
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

    Returns:
        The response message (via ``StopIteration``).

    Raises:
        RpcError: the last attempt failed and no retry is allowed.
    """
    clock = settings.clock
    metadata = request_metadata(routing_name)
    start = clock()
    overall = Deadline.after(settings.retry_policy.timeout, now=start).earliest(deadline or Deadline(None))
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
        delay = retry_delay(
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
    call = settings.call
    clock = call.clock
    retry = call.retry_policy
    metadata = request_metadata(name)
    if last_seen is not None and last_seen.done:
        return last_seen
    most_reserve = settings.final_poll_reserve
    if call.rpc_timeout is not None:
        most_reserve = min(most_reserve, call.rpc_timeout)
    reserve = most_reserve
    use_wait = settings.use_wait_rpc
    polls = 0  # answered looks at a running operation (drives the poll interval)
    failures = 0  # consecutive transient failures (drives the retry backoff)
    failing_since: float | None = None
    last_failure: RpcFailure | None = None
    looked = False

    def timed_out() -> WaitTimeoutError:
        if _wait_log.isEnabledFor(logging.DEBUG):
            _wait_log.debug(
                "operation %r not done at the deadline (%r s)", name, timeout, extra={"lro_operation": name}
            )
        shown: object = last_seen
        if wrap is not None and last_seen is not None:
            shown = wrap(last_seen)
        error = WaitTimeoutError(
            f"operation {name!r} was not done within {timeout!r} s", operation=shown, timeout=timeout
        )
        if last_failure is not None:
            error.__cause__ = last_failure.exception
        return error

    while True:
        started = clock()
        remaining = deadline.remaining(started)
        rpc_timeout = deadline.clip(call.rpc_timeout, started)
        if remaining is not None and remaining < LOOK_ONCE_TIMEOUT and not looked:
            # No time left, but a wait never gives up without asking once.
            rpc_timeout = LOOK_ONCE_TIMEOUT if call.rpc_timeout is None else min(call.rpc_timeout, LOOK_ONCE_TIMEOUT)
        elif remaining is not None and remaining <= 0:
            raise timed_out()
        looked = True
        method: Method
        if use_wait and (remaining is None or remaining - reserve > reserve):
            method = "WaitOperation"
            asked = WAIT_RPC_MAX if remaining is None else min(WAIT_RPC_MAX, remaining - reserve)
            request: Message = wait_request(name, asked)
            # The server answers after `asked`; the RPC may take the per-RPC timeout beyond that.
            rpc_timeout = deadline.clip(asked + (call.rpc_timeout or reserve), started)
        else:
            method = "GetOperation"
            request = get_request(name)
        step = RpcCall(method, request, rpc_timeout, metadata, near_deadline(deadline, rpc_timeout, started))
        reply = check_reply(method, request, (yield step))
        now = clock()
        if not isinstance(reply, RpcFailure):
            assert isinstance(reply, operations_pb2.Operation)  # check_reply made sure of it
            last_seen = reply
            if method == "GetOperation":
                # Keep for the last look what this link's round trip needs, no more.
                round_trip = FINAL_POLL_RTT_FACTOR * (now - started)
                reserve = min(most_reserve, max(MIN_FINAL_POLL_RESERVE, round_trip))
            last_failure = None
            failures = 0
            failing_since = None
            if on_update is not None:
                on_update(reply)
            if reply.done:
                return reply
            delay = settings.poll_policy.delay(polls, rng=call.rng)
            polls += 1
            if method == "WaitOperation":
                # The server already waited; poll no more often than the policy says.
                delay = max(0.0, delay - (now - started))
        else:
            last_failure = reply
            code = reply.code
            if method == "WaitOperation" and code is grpc.StatusCode.UNIMPLEMENTED:
                use_wait = False
                if _wait_log.isEnabledFor(logging.INFO):
                    _wait_log.info(
                        "WaitOperation for %r is UNIMPLEMENTED on this server: polling with GetOperation instead",
                        name,
                        extra={"lro_method": method, "lro_operation": name, "lro_code": code.name},
                    )
                if on_wait_unimplemented is not None:
                    on_wait_unimplemented()
                continue
            if code is grpc.StatusCode.DEADLINE_EXCEEDED and deadline.expired(now):
                raise timed_out()
            if is_throttling(reply):
                # Quota: slow down rather than fail.
                delay = max(
                    settings.poll_policy.delay(polls, rng=call.rng), retry_info_delay(reply.trailing_metadata) or 0
                )
                polls += 1
                if _wait_log.isEnabledFor(logging.DEBUG):
                    _wait_log.debug(
                        "%s for %r: RESOURCE_EXHAUSTED, polling more slowly: next look in %.3f s",
                        method,
                        name,
                        delay,
                        extra={"lro_method": method, "lro_operation": name, "lro_code": code.name, "lro_delay": delay},
                    )
            else:
                if failing_since is None:
                    failing_since = started
                retry_deadline = Deadline.after(retry.timeout, now=failing_since)
                next_delay = retry_delay(
                    reply,
                    method=method,
                    policy=retry,
                    attempt=failures,
                    now=now,
                    deadline=retry_deadline,
                    rng=call.rng,
                )
                if next_delay is None:
                    log_give_up(reply, method=method, name=name, attempts=failures + 1, policy=retry)
                    raise rpc_error(reply, method=method, operation_name=name)
                delay = next_delay
                failures += 1
                log_retry(reply, method=method, name=name, attempt=failures, delay=delay)
        remaining = deadline.remaining(now)
        if remaining is not None:
            if remaining <= reserve:
                raise timed_out()
            delay = min(delay, remaining - reserve)
        if delay > 0:
            yield Sleep(delay)
