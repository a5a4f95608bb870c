"""The I/O-free core shared by the sync and asyncio clients.

Everything that decides something lives here: request building for the five
``google.longrunning.Operations`` RPCs, request headers, the retry decision,
deadline arithmetic and the polling state machine. The clients only perform
the steps these plans yield.

A *plan* is a generator. It yields :class:`RpcCall` (perform one RPC attempt)
or :class:`Sleep` (wait that long) and is sent back, for an :class:`RpcCall`,
the response message or an :class:`RpcFailure`; for a :class:`Sleep`,
``None``. Its return value is the outcome; its exceptions are the errors the
caller sees. :func:`run_sync` drives a plan with blocking calls and
:func:`run_async` with ``await``: the only two loops over a plan.

Modules, each importing only those above it:

* :mod:`~lro_grpc._core.requests`: RPC names, headers, request builders, ``ListPageState``;
* :mod:`~lro_grpc._core.steps`: ``RpcCall``, ``Sleep``, ``RpcFailure``, ``check_reply``, the drivers;
* :mod:`~lro_grpc._core.failures`: size limits, throttling, RetryInfo, backoff, ``rpc_error``;
* :mod:`~lro_grpc._core.outcome`: how a done operation ended;
* :mod:`~lro_grpc._core.plans`: call and poll settings, ``unary_plan``, ``attempt_plan``, ``poll_plan``.

This package re-exports their public names: ``from lro_grpc._core import RpcCall``.
"""

from __future__ import annotations

from lro_grpc._core.failures import (
    DEADLINE_PASSED,
    LIST_REJECTED_CODES,
    LOOK_AGAIN_CODES,
    SUSPECT_CODES,
    SizeLimit,
    backoff_delay,
    deadline_passed,
    is_message_size_failure,
    is_throttling,
    message_size_failure,
    retry_info_delay,
    rpc_error,
)
from lro_grpc._core.outcome import failure_status, operation_error, operation_failed
from lro_grpc._core.plans import (
    FINAL_POLL_RESERVE,
    FINAL_POLL_RTT_FACTOR,
    LOOK_ONCE_TIMEOUT,
    MIN_FINAL_POLL_RESERVE,
    WAIT_RPC_MAX,
    CallSettings,
    PollSettings,
    attempt_plan,
    first_attempt,
    poll_plan,
    unary_plan,
)
from lro_grpc._core.requests import (
    MAX_EMPTY_PAGES,
    METHODS,
    USE_CLIENT_DEFAULT,
    ListPageState,
    Method,
    UseClientDefault,
    api_client_header,
    cancel_request,
    check_rpc_timeout,
    delete_request,
    get_request,
    request_metadata,
    wait_request,
)
from lro_grpc._core.steps import (
    OWN_CLOCK_MARGIN,
    RESPONSE_TYPES,
    Observe,
    Plan,
    Reply,
    RpcCall,
    RpcFailure,
    Sleep,
    Step,
    check_reply,
    own_deadline_failure,
    run_async,
    run_sync,
)

__all__ = [
    "DEADLINE_PASSED",
    "FINAL_POLL_RESERVE",
    "FINAL_POLL_RTT_FACTOR",
    "LIST_REJECTED_CODES",
    "LOOK_AGAIN_CODES",
    "LOOK_ONCE_TIMEOUT",
    "MAX_EMPTY_PAGES",
    "METHODS",
    "MIN_FINAL_POLL_RESERVE",
    "OWN_CLOCK_MARGIN",
    "RESPONSE_TYPES",
    "SUSPECT_CODES",
    "USE_CLIENT_DEFAULT",
    "WAIT_RPC_MAX",
    "CallSettings",
    "ListPageState",
    "Method",
    "Observe",
    "Plan",
    "PollSettings",
    "Reply",
    "RpcCall",
    "RpcFailure",
    "SizeLimit",
    "Sleep",
    "Step",
    "UseClientDefault",
    "api_client_header",
    "attempt_plan",
    "backoff_delay",
    "cancel_request",
    "check_reply",
    "check_rpc_timeout",
    "deadline_passed",
    "delete_request",
    "failure_status",
    "first_attempt",
    "get_request",
    "is_message_size_failure",
    "is_throttling",
    "message_size_failure",
    "operation_error",
    "operation_failed",
    "own_deadline_failure",
    "poll_plan",
    "request_metadata",
    "retry_info_delay",
    "rpc_error",
    "run_async",
    "run_sync",
    "unary_plan",
    "wait_request",
]
