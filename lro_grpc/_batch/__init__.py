"""The batch waiter: one scheduler looking after many operations over one channel.

A :class:`BatchWaiter` tracks any number of operations by name and reports
each one as soon as it is seen done. The looking is done by a
:class:`BatchScheduler`; an :class:`~lro_grpc.AsyncOperationsClient` owns one,
shared by all of its waiters, so their limits hold for the client as a whole.
No task, thread or polling loop exists per operation.

The parts, each readable alone:

* :mod:`._settings`: defaults, argument checks, progress counts; no I/O;
* :mod:`._ports`: the tracked entry (a few slots per operation) and the named
  ports the parts call each other through: ``Subscriber`` (what the scheduler
  calls on a waiter), ``Scheduling`` (what a strategy calls on the scheduler),
  ``Fetch`` and ``ListPage`` (one RPC attempt, failures as values);
* :mod:`._source`: :class:`BatchSource`, a client's side of a batch as one
  frozen value (an :class:`~lro_grpc.AsyncOperationsClient` builds it);
* :mod:`._limits` and :mod:`._timing`: the calls-per-second budget, the
  ``RESOURCE_EXHAUSTED`` throttle, the poll and retry arithmetic; no I/O;
* :mod:`._scheduler`: *when* each operation is looked at: a heap of due
  times (earliest first, so nothing starves), one dispatcher, at most
  ``max_in_flight`` worker coroutines, next-look times rounded onto a coarse
  grid so that looks due together start together, each waiter's deadline;
* two strategies for *how*: :mod:`._per_operation` (its own GetOperation)
  and :mod:`._sweep` (one ListOperations listing of the operation's list
  scope, :mod:`._scopes`, answers for every tracked operation in it, when
  that is cheaper: the scope is then one heap item, its next round, and its
  operations wait in its table, :mod:`._scope_table`; those that left it
  are looked for in the scope's listing of finished operations when that is
  cheaper still, :mod:`._done_listing`;
  page budgets and spot checks keep listings honest, :mod:`._trust`);
* :mod:`._waiter`: :class:`BatchWaiter`, :func:`as_completed`, :func:`wait_all`
  (:mod:`._journal_open` opens their journal for a client);
* :mod:`._sync`: :class:`SyncBatchRunner`, the same scheduler on one
  background event loop thread for synchronous code;
* the journal, which makes a batch durable: :mod:`._journal` (what a
  resumed batch polls, replays or skips; group commits; delivery marks)
  over one small storage interface, :class:`~._journal.JournalStore`, whose
  one implementation is a SQLite file (:mod:`._sqlite_journal`). The
  scheduler knows nothing of it: the waiter records what the scheduler
  reports and what its consumer takes.

Outcomes, not exceptions: an operation that finished with an error (failed,
cancelled) is reported like any other; so is one whose GetOperation failed for
good (its error's ``google.rpc.ErrorInfo`` has domain
:data:`SYNTHETIC_ERROR_DOMAIN`). Deadline: each waiter has its own; at it,
everything finished before it is reported first, then
:class:`~lro_grpc.BatchTimeoutError` carries every operation still running
with its last seen state. Memory: until an operation completes the scheduler
keeps only its name, a few numbers and the serialized bytes of its last seen
state, never a handle or a message object.
"""

from typing import TYPE_CHECKING, Any

from lro_grpc._batch._settings import (
    DEFAULT_BATCH_RPC_TIMEOUT,
    DEFAULT_MAX_IN_FLIGHT,
    SYNTHETIC_ERROR_DOMAIN,
    BatchProgress,
    check_limits,
)
from lro_grpc.errors import BatchTimeoutError

if TYPE_CHECKING:
    from lro_grpc._batch._journal import Journal, JournalIdentity, JournalStore, JournalSummary
    from lro_grpc._batch._journal_open import JournalPath, open_journal, read_journal
    from lro_grpc._batch._scheduler import BatchScheduler
    from lro_grpc._batch._scopes import ListScope, list_scope
    from lro_grpc._batch._source import BatchSource, as_batch_source
    from lro_grpc._batch._sqlite_journal import SqliteJournalStore
    from lro_grpc._batch._sync import SyncBatchRunner, SyncBatchWaiter
    from lro_grpc._batch._timing import coalesce
    from lro_grpc._batch._waiter import BatchWaiter, as_completed, wait_all

# The parts that need asyncio load on first use: a synchronous program that
# never waits on a batch does not pay for them (importing _settings alone is cheap),
# nor does `import lro_grpc`, whose clients need only _settings.
_LAZY = {
    "BatchSource": "_source",
    "as_batch_source": "_source",
    "coalesce": "_timing",
    "BatchScheduler": "_scheduler",
    "ListScope": "_scopes",
    "list_scope": "_scopes",
    "SyncBatchRunner": "_sync",
    "SyncBatchWaiter": "_sync",
    "BatchWaiter": "_waiter",
    "as_completed": "_waiter",
    "wait_all": "_waiter",
    "open_journal": "_journal_open",
    "read_journal": "_journal_open",
    "JournalPath": "_journal_open",
    "Journal": "_journal",
    "JournalIdentity": "_journal",
    "JournalStore": "_journal",
    "JournalSummary": "_journal",
    "SqliteJournalStore": "_sqlite_journal",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "DEFAULT_BATCH_RPC_TIMEOUT",
    "DEFAULT_MAX_IN_FLIGHT",
    "SYNTHETIC_ERROR_DOMAIN",
    "BatchProgress",
    "BatchScheduler",
    "BatchSource",
    "BatchTimeoutError",
    "BatchWaiter",
    "Journal",
    "JournalIdentity",
    "JournalPath",
    "JournalStore",
    "JournalSummary",
    "ListScope",
    "SqliteJournalStore",
    "SyncBatchRunner",
    "SyncBatchWaiter",
    "as_batch_source",
    "as_completed",
    "check_limits",
    "coalesce",
    "list_scope",
    "open_journal",
    "read_journal",
    "wait_all",
]
