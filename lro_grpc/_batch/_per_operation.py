"""Looking at one operation with its own GetOperation.

The fallback for every operation that no sweep covers, and the one call that
decides about an operation a listing left out.

Outcomes, not exceptions: an operation that finished with an error (failed,
cancelled) is reported like any other; so is one whose GetOperation failed for
good (``NOT_FOUND``: the name is wrong or the record expired; or another
non-transient code such as ``PERMISSION_DENIED``): it is reported done, with an
error of that code whose ``google.rpc.ErrorInfo`` detail has domain
:data:`~lro_grpc._batch.SYNTHETIC_ERROR_DOMAIN`. Transient failures left over
(``UNAVAILABLE``, ``DEADLINE_EXCEEDED``, ...) are tried again after a backoff
the scheduler keeps (no worker sleeps); a broken answer (``INTERNAL``,
``UNKNOWN``, ``DATA_LOSS``) likewise, up to three times in a row, then the
operation is reported failed with that error. ``RESOURCE_EXHAUSTED`` pauses
the whole scheduler, unless it is a message over a size limit: that is no
quota signal, and the operation is reported failed at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import grpc
from google.longrunning import operations_pb2

from lro_grpc._batch._settings import (
    MAX_SUSPECT_FAILURES,
    MISSING,
    SUSPECT_CODES,
    TRANSIENT_CODES,
    Entry,
    is_message_size_failure,
    rpc_code,
    rpc_details,
    synthetic_failure,
)
from lro_grpc.errors import RpcError

if TYPE_CHECKING:
    from lro_grpc._batch._scheduler import BatchScheduler


class PerOperation:
    """Polls one operation at a time for a :class:`~lro_grpc.BatchScheduler`.

    Args:
        scheduler: the scheduler whose limits and queue it works with.
        fetch: one logical GetOperation (see :class:`~lro_grpc._batch.BatchSource`).
    """

    def __init__(self, scheduler: BatchScheduler, fetch: Callable[..., Awaitable[operations_pb2.Operation]]) -> None:
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
        try:
            pb = await self._fetch(entry.name, deadline=waiter._deadline, rpc_timeout=waiter._rpc_timeout)
        except asyncio.CancelledError:
            raise
        except (RpcError, grpc.RpcError) as error:
            if in_flight.pop(entry, MISSING) is not MISSING:  # else: its waiter went away meanwhile
                entry.last_error = error
                self._failed(entry, error, started)
            return
        except TimeoutError:  # a source that signals its deadline this way: the dispatcher reports it
            if in_flight.pop(entry, MISSING) is not MISSING:
                scheduler.retry_later(entry)
            return
        if in_flight.pop(entry, MISSING) is MISSING:
            return
        scheduler.throttle.succeeded()
        entry.confirm = False
        entry.failures = 0
        entry.last_error = None
        if pb.done:
            scheduler.finish(entry, pb)
        else:
            entry.last_seen = pb.SerializeToString()
            scheduler.requeue(entry, started)

    def _failed(self, entry: Entry, error: BaseException, started: float) -> None:
        scheduler = self._scheduler
        code = rpc_code(error) or grpc.StatusCode.UNKNOWN
        if code is grpc.StatusCode.RESOURCE_EXHAUSTED and not is_message_size_failure(error):
            scheduler.refused(error, started)
            # Same due time as before: it goes first once the pause is over.
            scheduler.push(entry, started)
        elif code in TRANSIENT_CODES or (code in SUSPECT_CODES and entry.failures + 1 < MAX_SUSPECT_FAILURES):
            scheduler.retry_later(entry)
        else:  # for good: not found, denied, too large an answer, an answer broken every time
            scheduler.finish(entry, synthetic_failure(entry.name, code, rpc_details(error)))
