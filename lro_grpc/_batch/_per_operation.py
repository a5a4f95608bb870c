"""Looking at one operation with its own GetOperation.

The fallback for every operation that no sweep covers, and the one call that
decides about an operation a listing left out.

Outcomes, not exceptions: an operation that finished with an error (failed,
cancelled) is reported like any other; so is one whose GetOperation failed for
good (``NOT_FOUND``: the name is wrong or the record expired; or another
non-transient code such as ``PERMISSION_DENIED``): it is reported done, with an
error of that code whose ``google.rpc.ErrorInfo`` detail has domain
:data:`~lro_grpc._batch.SYNTHETIC_ERROR_DOMAIN`. Failures that say nothing
about the operation (:data:`~lro_grpc._core.LOOK_AGAIN_CODES`: ``UNAVAILABLE``,
``DEADLINE_EXCEEDED``, ...) are tried again after a backoff the scheduler keeps
(no worker sleeps); a broken answer (:data:`~lro_grpc._core.SUSPECT_CODES`:
``INTERNAL``, ``UNKNOWN``, ``DATA_LOSS``) likewise, up to three times in a row,
then the operation is reported failed with that error. ``RESOURCE_EXHAUSTED`` pauses
the whole scheduler, unless it is a message over a size limit: that is no
quota signal, and the operation is reported failed at once.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Final

import grpc
from google.longrunning import operations_pb2
from google.rpc import error_details_pb2, status_pb2

from lro_grpc._batch._ports import Entry, Fetch, Scheduling
from lro_grpc._batch._settings import SYNTHETIC_ERROR_DOMAIN
from lro_grpc._core import LOOK_AGAIN_CODES, SUSPECT_CODES, RpcFailure, is_throttling, rpc_error

__all__ = ["MAX_SUSPECT_FAILURES", "PerOperation", "synthetic_failure"]

MAX_SUSPECT_FAILURES: Final = 3
"""Failed looks in a row with a :data:`~lro_grpc._core.SUSPECT_CODES` code before the operation is reported failed."""

_MISSING: Any = object()


class PerOperation:
    """Polls one operation at a time for a :class:`~lro_grpc.BatchScheduler`.

    Args:
        scheduler: the scheduler whose limits and queue it works with.
        fetch: one GetOperation attempt (see :class:`~lro_grpc._batch._ports.Fetch`).
    """

    def __init__(self, scheduler: Scheduling, fetch: Fetch) -> None:
        self._scheduler = scheduler
        self._fetch = fetch

    async def poll(self, entry: Entry) -> None:
        """One GetOperation of ``entry`` (taken by the scheduler), and what follows from the answer."""
        scheduler = self._scheduler
        in_flight = scheduler.in_flight
        if entry not in in_flight:  # its waiter went away before this worker started
            return
        in_flight[entry] = asyncio.current_task()
        waiter = entry.waiter
        scheduler.count_call("GetOperation", waiter)
        started = time.monotonic()
        reply = await self._fetch(entry.name, deadline=waiter.deadline, rpc_timeout=waiter.rpc_timeout)
        if in_flight.pop(entry, _MISSING) is _MISSING:  # its waiter went away meanwhile
            return
        if isinstance(reply, RpcFailure):
            entry.last_error = reply
            self._failed(entry, reply, started)
            return
        scheduler.throttle.succeeded()
        entry.confirm = False
        entry.failures = 0
        entry.last_error = None
        if reply.done:
            scheduler.finish(entry, reply, answered_at=time.monotonic())
        else:
            entry.last_seen = reply.SerializeToString()
            scheduler.requeue(entry, started)

    def _failed(self, entry: Entry, failure: RpcFailure, started: float) -> None:
        scheduler = self._scheduler
        code = failure.code
        if is_throttling(failure):
            scheduler.refused(failure, started)
            # Same due time as before: it goes first once the pause is over.
            scheduler.push(entry, started)
        elif code in LOOK_AGAIN_CODES or (code in SUSPECT_CODES and entry.failures + 1 < MAX_SUSPECT_FAILURES):
            # The look it was owed (left out of a listing, spot checked) was tried: a listing that names it
            # may answer for it again meanwhile, or it waits on a GetOperation that may fail for as long.
            entry.confirm = False
            scheduler.retry_later(entry)
        else:  # for good: not found, denied, too large an answer, an answer broken every time
            error = rpc_error(failure, method="GetOperation", operation_name=entry.name)
            scheduler.finish(entry, synthetic_failure(entry.name, code, error.details))


def synthetic_failure(name: str, code: grpc.StatusCode, details: str) -> operations_pb2.Operation:
    """A done operation whose error says why GetOperation failed for good."""
    info = error_details_pb2.ErrorInfo(
        reason=code.name, domain=SYNTHETIC_ERROR_DOMAIN, metadata={"method": "GetOperation"}
    )
    message = f"GetOperation failed: {code.name}: {details}"
    if code is grpc.StatusCode.NOT_FOUND:
        message += " (the operation does not exist, or its record expired)"
    status = status_pb2.Status(code=code.value[0], message=message)
    status.details.add().Pack(info)
    return operations_pb2.Operation(name=name, done=True, error=status)
