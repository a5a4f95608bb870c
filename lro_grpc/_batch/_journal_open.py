"""Opening a batch's journal for a client: the endpoint and API it records, checked on resume.

:class:`~lro_grpc.BatchWaiter`, :func:`~lro_grpc._batch.wait_all` and the
synchronous runner open journals here; :mod:`._journal` is what a journal
does once open, :mod:`._sqlite_journal` where it is kept.
"""

from __future__ import annotations

import os
from typing import Any

from lro_grpc._batch._journal import Journal, JournalIdentity, JournalSummary, summarize
from lro_grpc._batch._source import BatchClient, BatchSource, as_batch_source
from lro_grpc._batch._sqlite_journal import SqliteJournalStore
from lro_grpc.errors import JournalError
from lro_grpc.names import parse_operation_name

__all__ = ["JournalPath", "open_journal", "read_journal"]

JournalPath = str | os.PathLike[str]
"""A journal file's path (see :class:`BatchWaiter`'s ``journal``)."""


def open_journal(
    client: BatchSource[Any] | BatchClient[Any],
    path: JournalPath,
    names: list[str] | None,
    *,
    replay_delivered: bool = False,
    waiter_marks: bool = True,
) -> Journal:
    """Open (or create) the journal at ``path`` for ``client``'s batch of ``names``.

    The journal records the client's endpoint and API; resuming it with another
    is an error naming both.

    Raises:
        JournalError: the journal is in use, unreadable, or made for another endpoint or API.
    """
    identity = _identity_of(as_batch_source(client), names)
    store = SqliteJournalStore(path)
    try:
        recorded = store.read_identity()
        if recorded is None:
            store.write_identity(identity)
        elif recorded.conflicts_with(identity):
            raise JournalError(
                f"journal {store.path!r} was made for endpoint {recorded.endpoint or '(unknown)'!r}, "
                f"API {recorded.api or '(unknown)'!r}; this client is endpoint "
                f"{identity.endpoint or '(unknown)'!r}, API {identity.api or '(unknown)'!r}; nothing was changed",
                store.path,
            )
        return Journal(store, replay_delivered=replay_delivered, waiter_marks=waiter_marks)
    except BaseException:
        store.close()
        raise


def read_journal(path: JournalPath) -> JournalSummary:
    """What the journal at ``path`` holds: read under a shared lock, nothing changed or created.

    Works on a read-only file system: after a killed writer's run, a private
    copy of the file and its WAL is read instead.

    Raises:
        JournalError: the file is missing, being written, or not a readable journal.
    """
    store = SqliteJournalStore(path, read_only=True)
    try:
        identity = store.read_identity() or JournalIdentity(endpoint="", api="")
        return summarize(identity, store.load())
    finally:
        store.close()


def _identity_of(source: BatchSource[Any], names: list[str] | None) -> JournalIdentity:
    api = source.api
    if not api and names:
        api = parse_operation_name(names[0]).api
    return JournalIdentity(endpoint=source.endpoint, api=api)
