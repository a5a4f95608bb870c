"""What a client sends and when: client interceptors (``grpc.aio`` and ``grpc``), and a calls-per-second check.

A calls-per-second budget is a promise about what the client *sends*. Arrival
times at a server that shares the client's event loop (or merely its two CPU
cores) are not that: a loaded machine delivers calls late and then several
at once, so a window counted at the server sees bursts the client never sent.
The interceptor below notes each call the moment the client starts it, on
the client's own loop, before any transport delay.

Between the scheduler granting a call and the interceptor seeing it, the loop
may stall once; the call granted before the stall then starts right beside
the first call granted after it. So in any window of ``w`` seconds, a budget
of ``qps`` with no burst (``1 + qps * w`` grants) shows at most one more start.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NamedTuple

import grpc

__all__ = ["SentCall", "SentCalls", "SyncSentCalls", "assert_calls_per_second", "most_in_any_window"]


class SentCall(NamedTuple):
    """One call as the client started it.

    Attributes:
        at: ``time.monotonic()`` when the interceptor saw it (just after the client chose its timeout).
        method: RPC short name, e.g. ``"GetOperation"``.
        timeout: the timeout the client gave the call, in seconds (``None``: none).
        name: the request's ``name`` field (the operation, or the listing's parent).
    """

    at: float
    method: str
    timeout: float | None
    name: str


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[SentCall] = []

    def _record(self, details: Any, request: Any) -> None:
        at = time.monotonic()
        method = details.method
        if isinstance(method, bytes):
            method = method.decode()
        name = str(getattr(request, "name", ""))
        self.calls.append(SentCall(at, method.rsplit("/", 1)[-1], details.timeout, name))

    def sent(self, method: str | None = None, *, name: str | None = None) -> list[SentCall]:
        """The calls sent (of ``method`` only, and about ``name`` only, if given), in order."""
        return [
            call
            for call in self.calls
            if (method is None or call.method == method) and (name is None or call.name == name)
        ]

    def times(self, method: str | None = None, *, name: str | None = None) -> list[float]:
        """Start times of the calls sent (of ``method`` only, and about ``name`` only, if given), in order."""
        return [call.at for call in self.sent(method, name=name)]


class SentCalls(_Recorder, grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    """Records every unary call a ``grpc.aio`` channel starts."""

    async def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Awaitable[Any]],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        self._record(client_call_details, request)
        return await continuation(client_call_details, request)


class SyncSentCalls(_Recorder, grpc.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    """Records every unary call a synchronous ``grpc`` channel starts."""

    def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.ClientCallDetails, Any], Any],
        client_call_details: grpc.ClientCallDetails,
        request: Any,
    ) -> Any:
        self._record(client_call_details, request)
        return continuation(client_call_details, request)


def most_in_any_window(times: Sequence[float], window: float) -> int:
    """The largest number of ``times`` within any closed interval of ``window`` seconds."""
    ordered = sorted(times)
    most = 0
    end = 0
    for start_index, start in enumerate(ordered):
        end = max(end, start_index)
        while end < len(ordered) and ordered[end] <= start + window:
            end += 1
        most = max(most, end - start_index)
    return most


def assert_calls_per_second(times: Sequence[float], qps: float, windows: Sequence[float]) -> None:
    """No burst: at most ``1 + qps * w`` calls granted in any window ``w``, plus one for a loop stall (see above)."""
    for window in windows:
        most = most_in_any_window(times, window)
        assert most <= 2 + qps * window, f"{most} calls sent within {window} s at {qps} calls per second"
