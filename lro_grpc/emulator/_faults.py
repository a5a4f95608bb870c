"""Fault injection: which calls the emulator fails on purpose, and how.

Deciding is kept apart from acting: :meth:`Faults.decide` returns what to do
with one call and does no I/O; the server sleeps and aborts accordingly.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Collection, Iterable
from datetime import timedelta

import grpc
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2, status_pb2

from lro_grpc.emulator._clock import check_seconds

__all__ = ["STATUS_DETAILS_KEY", "FaultDecision", "Faults"]

STATUS_DETAILS_KEY = "grpc-status-details-bin"
"""Trailing metadata key carrying a serialized ``google.rpc.Status`` (as Google's servers send it)."""

_FRACTION_FIELDS = ("unavailable", "resource_exhausted")
_LIST_FILTER_MODES = ("obey", "ignore", "reject")


def _check_fraction(value: object, *, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"Faults.{what} must be a fraction (a number in [0, 1]), got {value!r}")
    if not math.isfinite(value) or not 0 <= value <= 1:
        raise ValueError(f"Faults.{what} must be in [0, 1], got {value!r}")
    return float(value)


@dataclasses.dataclass(frozen=True)
class FaultDecision:
    """What the server does to one call before handling it.

    Attributes:
        latency: real seconds to sleep first.
        code: the status to fail the call with, or ``None`` to handle it.
        message: the status message when failing.
        trailing_metadata: trailing metadata to send with the failure.
    """

    latency: float = 0.0
    code: grpc.StatusCode | None = None
    message: str = ""
    trailing_metadata: tuple[tuple[str, str | bytes], ...] = ()


@dataclasses.dataclass(eq=False)
class Faults:
    """Fault injection settings; everything is off by default.

    The object is mutable and read on every call, so a test can change it
    while the emulator runs (``emu.faults.unavailable = 0.5``). Assignments are
    validated.

    Args:
        unavailable: fraction of calls (0..1) failing with ``UNAVAILABLE``.
        resource_exhausted: fraction of calls (0..1) failing with
            ``RESOURCE_EXHAUSTED``, carrying a ``google.rpc.RetryInfo`` detail in
            the ``grpc-status-details-bin`` trailer. ``unavailable +
            resource_exhausted`` must not exceed 1.
        retry_delay: the ``RetryInfo.retry_delay`` to send, seconds or ``timedelta``.
        latency: real seconds (or ``timedelta``) added before every call.
        wait_unimplemented: ``WaitOperation`` answers ``UNIMPLEMENTED`` even on an
            emulator started with ``wait_rpc=True`` (it always does without).
        list_filter: how ``ListOperations`` treats its ``filter``: ``"obey"``;
            ``"ignore"`` (lists the parent's operations, done ones too, like a
            server that does not filter); ``"reject"`` (any non-empty filter
            fails with ``INVALID_ARGUMENT``).
        list_omit_running: fraction of running operations (0..1) left out of
            each ``ListOperations`` page at random, like a stale or
            inconsistent listing.
        methods: RPC short names (``"GetOperation"``, ``"CreateInstance"``, ...)
            the random failures and latency apply to, kept as a ``frozenset``;
            ``None`` means every RPC.
        seed: seed of the random draws, for reproducible tests; ``None``
            seeds from the system. Assigning a new seed restarts the sequence.
    """

    unavailable: float = 0.0
    resource_exhausted: float = 0.0
    retry_delay: float | timedelta = 1.0
    latency: float | timedelta = 0.0
    wait_unimplemented: bool = False
    list_filter: str = "obey"
    list_omit_running: float = 0.0
    methods: Collection[str] | None = None
    seed: int | None = None
    _rng: random.Random = dataclasses.field(init=False, repr=False, compare=False)

    def __setattr__(self, field: str, value: object) -> None:
        if field in _FRACTION_FIELDS:
            value = _check_fraction(value, what=field)
            other = self.resource_exhausted if field == "unavailable" else self.unavailable
            if hasattr(self, "_rng") and value + other > 1:
                raise ValueError(
                    f"Faults.unavailable + Faults.resource_exhausted must be <= 1, got {field}={value!r} with {other!r}"
                )
        elif field in ("retry_delay", "latency"):
            value = check_seconds(value, what=f"Faults.{field}")
        elif field == "wait_unimplemented":
            if not isinstance(value, bool):
                raise TypeError(f"Faults.wait_unimplemented must be a bool, got {value!r}")
        elif field == "list_filter":
            if value not in _LIST_FILTER_MODES:
                raise ValueError(f"Faults.list_filter must be one of {_LIST_FILTER_MODES}, got {value!r}")
        elif field == "list_omit_running":
            value = _check_fraction(value, what=field)
        elif field == "methods":
            value = _check_methods(value)
        elif field == "seed":
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise TypeError(f"Faults.seed must be an int or None, got {value!r}")
            object.__setattr__(self, "_rng", random.Random(value))
        object.__setattr__(self, field, value)

    def __post_init__(self) -> None:
        if self.unavailable + self.resource_exhausted > 1:
            raise ValueError(
                "Faults.unavailable + Faults.resource_exhausted must be <= 1, got "
                f"{self.unavailable!r} + {self.resource_exhausted!r}"
            )

    @property
    def enabled(self) -> bool:
        """Whether any fault is switched on."""
        return bool(self.unavailable or self.resource_exhausted or self.latency or self.wait_unimplemented)

    def decide(self, method: str) -> FaultDecision | None:
        """Decide what happens to one call of ``method`` (an RPC short name).

        Returns ``None`` when the call proceeds untouched (the common case,
        so the hot path allocates nothing).
        """
        if not self.enabled:
            return None
        if method == "WaitOperation" and self.wait_unimplemented:
            return FaultDecision(code=grpc.StatusCode.UNIMPLEMENTED, message="WaitOperation is not implemented")
        if self.methods is not None and method not in self.methods:
            return None
        latency = _as_seconds(self.latency)
        draw = self._rng.random() if (self.unavailable or self.resource_exhausted) else 1.0
        if draw < self.unavailable:
            return FaultDecision(
                latency=latency,
                code=grpc.StatusCode.UNAVAILABLE,
                message=f"{method}: the service is temporarily unavailable (injected fault)",
            )
        if draw < self.unavailable + self.resource_exhausted:
            message = f"{method}: quota exceeded (injected fault)"
            return FaultDecision(
                latency=latency,
                code=grpc.StatusCode.RESOURCE_EXHAUSTED,
                message=message,
                trailing_metadata=((STATUS_DETAILS_KEY, self.retry_status(message).SerializeToString()),),
            )
        return FaultDecision(latency=latency) if latency else None

    def omit_from_listing(self) -> bool:
        """Whether to leave one running operation out of a listing (a draw at ``list_omit_running``)."""
        return bool(self.list_omit_running) and self._rng.random() < self.list_omit_running

    def retry_status(self, message: str) -> status_pb2.Status:
        """The ``google.rpc.Status`` sent with an injected ``RESOURCE_EXHAUSTED``."""
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(round(_as_seconds(self.retry_delay) * 1e9))
        status = status_pb2.Status(code=grpc.StatusCode.RESOURCE_EXHAUSTED.value[0], message=message)
        status.details.add().Pack(error_details_pb2.RetryInfo(retry_delay=delay))
        return status


def _as_seconds(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else value


def _check_methods(value: object) -> frozenset[str] | None:
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise TypeError(f"Faults.methods must be a collection of RPC names or None, got {value!r}")
    methods = frozenset(value)
    for method in methods:
        if not isinstance(method, str) or not method:
            raise TypeError(f"Faults.methods must hold RPC short names, got {method!r}")
    return methods
