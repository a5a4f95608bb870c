"""The caller's side of a cluster waiter's call, without Ray: checked arguments, typed handles, input order."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

from google.longrunning import operations_pb2
from google.protobuf.message import Message

from lro_grpc._batch._settings import check_names, check_settings
from lro_grpc._batch._waiter import with_results
from lro_grpc._handle import check_expected_types
from lro_grpc.errors import BatchTimeoutError
from lro_grpc.operation import Operation
from lro_grpc.policies import Duration, PollPolicy

__all__ = ["CallPlan", "drive", "in_order", "in_order_async", "timed_out"]


@dataclasses.dataclass(frozen=True)
class CallPlan:
    """One call's checked arguments (see :meth:`check`)."""

    names: list[str]
    timeout: float | None
    poll_policy: PollPolicy | None
    response_type: type[Message] | None
    metadata_type: type[Message] | None

    @classmethod
    def check(
        cls,
        names: Iterable[str],
        timeout: Duration | None,
        poll_policy: PollPolicy | None,
        response_type: type[Message] | None,
        metadata_type: type[Message] | None,
    ) -> CallPlan:
        """The call's arguments, every one checked here, before anything reaches Ray.

        Raises:
            InvalidNameError: a malformed name.
            TypeError, ValueError: another argument of the wrong type or out of range.
        """
        ordered = list(check_names(names))
        timeout_s, _, _ = check_settings(timeout, poll_policy, None, None)
        check_expected_types(response_type, metadata_type)
        return cls(ordered, timeout_s, poll_policy, response_type, metadata_type)

    def handle(self, serialized: bytes) -> Operation[Any, Any]:
        """A handle on an operation as it crossed the cluster, decoding into the call's types."""
        return self._typed(operations_pb2.Operation.FromString(serialized))

    def _typed(self, pb: operations_pb2.Operation) -> Operation[Any, Any]:
        return Operation(pb)._expect_types(self.response_type, self.metadata_type)


def timed_out(plan: CallPlan, names: list[str]) -> BatchTimeoutError:
    """The error of a call whose deadline passed with ``names`` still running (handles carry names only)."""
    pending = [plan._typed(operations_pb2.Operation(name=name)) for name in names]
    return BatchTimeoutError(
        f"{len(pending)} operation(s) still running after the batch timeout of {plan.timeout} s",
        pending=pending,
        pending_names=list(names),
        timeout=plan.timeout,
    )


def in_order(plan: CallPlan, handles: Iterable[Operation[Any, Any]]) -> list[Operation[Any, Any]]:
    """Every handle, in the order of the call's names (a name given twice: its handle twice).

    Raises:
        BatchTimeoutError: with ``results`` in order (finished, or the pending handle).
    """
    finished: dict[str, Operation[Any, Any]] = {}
    try:
        for handle in handles:
            finished[handle.name] = handle
    except BatchTimeoutError as error:
        raise with_results(error, plan.names, finished) from None
    return [finished[name] for name in plan.names]


async def in_order_async(plan: CallPlan, handles: AsyncIterator[Operation[Any, Any]]) -> list[Operation[Any, Any]]:
    """:func:`in_order` of an async iterator."""
    finished: dict[str, Operation[Any, Any]] = {}
    try:
        async for handle in handles:
            finished[handle.name] = handle
    except BatchTimeoutError as error:
        raise with_results(error, plan.names, finished) from None
    return [finished[name] for name in plan.names]


def drive(handles: AsyncIterator[Operation[Any, Any]]) -> Iterator[Operation[Any, Any]]:
    """Iterate an async generator from blocking code, on an event loop of its own.

    Raises:
        RuntimeError: called from a running event loop (there, use the async twins).
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError("ClusterWaiter's blocking methods cannot run in an event loop: use the _async twins")
    return _drive(handles)


def _drive(handles: AsyncIterator[Operation[Any, Any]]) -> Iterator[Operation[Any, Any]]:
    loop = asyncio.new_event_loop()
    try:
        while True:
            try:
                yield loop.run_until_complete(anext(handles))
            except StopAsyncIteration:
                return
    finally:
        try:
            loop.run_until_complete(handles.aclose())  # type: ignore[attr-defined]  # an async generator
        finally:
            loop.close()
