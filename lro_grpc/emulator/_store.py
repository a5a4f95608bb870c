"""The emulator's operation records, in embedded SQLite.

One connection, guarded by a lock: the gRPC server (one event loop thread)
and the test-facing Python API (any thread) share it. In memory by default;
with a file, WAL journaling and an exclusive lock, so a second emulator cannot
open the same file while one runs.
"""

from __future__ import annotations

import builtins
import dataclasses
import json
import os
import sqlite3
import threading
from collections.abc import Sequence
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import status_pb2

from lro_grpc.emulator._clock import ClockAnchor
from lro_grpc.emulator._limits import shown
from lro_grpc.emulator._listing import ListQuery, new_page_token_secret
from lro_grpc.emulator._model import (
    CANCEL,
    FAIL,
    REQUEST_ID_WINDOW,
    SERVICE_MANAGEMENT,
    SUCCESS,
    OperationRecord,
    RequestError,
    cancelled,
)
from lro_grpc.emulator._pages import ListedHead

__all__ = ["OperationStore"]

_SCHEMA_VERSION = 2
_SEQS_PER_QUERY = 500  # under SQLite's oldest limit on parameters (999)
_COLUMNS = (
    "name, collection, api, method, service_name, start_at, natural_end, end_at, outcome, "
    "cancel_requested_at, metadata, response, request_key, seq, request_digest"
)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS operations (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    collection TEXT NOT NULL,
    api TEXT NOT NULL,
    method TEXT NOT NULL,
    service_name TEXT NOT NULL,
    start_at REAL NOT NULL,
    natural_end REAL NOT NULL,
    end_at REAL NOT NULL,
    outcome TEXT NOT NULL,
    cancel_requested_at REAL,
    metadata BLOB NOT NULL,
    response BLOB NOT NULL,
    request_key TEXT UNIQUE,
    request_digest TEXT
);
-- By list scope in listing order, covering a page's heads (list_heads): its scan reads no row it passes over.
CREATE INDEX IF NOT EXISTS operations_listed ON operations (collection, seq, end_at, cancel_requested_at);
CREATE INDEX IF NOT EXISTS operations_by_end ON operations (end_at);
CREATE INDEX IF NOT EXISTS operations_by_service ON operations (service_name, seq);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class OperationStore:
    """Stored operation records, safe to use from several threads.

    Args:
        path: SQLite file to keep records in (created if missing), or
            ``None`` to keep them in memory.

    Raises:
        ValueError: ``path`` is not an emulator database.
        RuntimeError: another process holds ``path`` open.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = None if path is None else os.fspath(path)
        self._lock = threading.Lock()
        self._connection = sqlite3.connect(
            ":memory:" if self.path is None else self.path,
            timeout=0.5,
            isolation_level=None,
            check_same_thread=False,
        )
        try:
            self._open()
        except BaseException:
            self._connection.close()
            raise

    def _open(self) -> None:
        connection = self._connection
        try:
            if self.path is not None:
                connection.execute("PRAGMA locking_mode = EXCLUSIVE")
                connection.execute("PRAGMA journal_mode = WAL")
                connection.execute("PRAGMA synchronous = NORMAL")
            version = connection.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, 1, _SCHEMA_VERSION):
                raise ValueError(f"db {self.path!r} has schema version {version}, expected {_SCHEMA_VERSION}")
            if version == 1:  # version 2 remembers what a request_id's request asked for
                connection.execute("ALTER TABLE operations ADD COLUMN request_digest TEXT")
            connection.executescript(_SCHEMA)
            connection.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
        except sqlite3.OperationalError as error:
            if "locked" in str(error):
                raise RuntimeError(f"db {self.path!r} is in use by another emulator") from error
            raise ValueError(f"db {self.path!r} cannot be used: {error}") from error
        except sqlite3.DatabaseError as error:
            raise ValueError(f"db {self.path!r} is not an emulator database: {error}") from error

    def close(self) -> None:
        """Close the database (idempotent)."""
        with self._lock:
            self._connection.close()

    def insert(self, record: OperationRecord) -> OperationRecord:
        """Store a new operation; returns it with its sequence number.

        A record whose ``request_key`` (a ``request_id``) was used within the
        last :data:`~lro_grpc.emulator._model.REQUEST_ID_WINDOW` simulated
        seconds is not stored: the same request gets the earlier operation back
        (an idempotent retry); a different request is refused. Older uses are
        forgotten.

        Raises:
            RequestError: ``ALREADY_EXISTS`` if an operation with that name exists;
                ``INVALID_ARGUMENT`` naming ``request_id`` if it was used for a
                different request.
        """
        with self._lock:
            if record.request_key is not None:
                earlier = self._remembered_request(record)
                if earlier is not None:
                    return earlier
            try:
                cursor = self._connection.execute(
                    "INSERT INTO operations (name, collection, api, method, service_name, start_at, natural_end, "
                    "end_at, outcome, cancel_requested_at, metadata, response, request_key, request_digest) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        record.name,
                        record.collection,
                        record.api,
                        record.method,
                        record.service_name,
                        record.start_at,
                        record.natural_end,
                        record.end_at,
                        record.outcome,
                        record.cancel_requested_at,
                        record.metadata,
                        record.response,
                        record.request_key,
                        record.request_digest,
                    ),
                )
            except sqlite3.IntegrityError:
                raise RequestError(
                    grpc.StatusCode.ALREADY_EXISTS, f"operation {shown(record.name)} already exists"
                ) from None
            seq = int(cursor.lastrowid or 0)
        return dataclasses.replace(record, seq=seq)

    def _remembered_request(self, record: OperationRecord) -> OperationRecord | None:
        """The operation an earlier use of ``record.request_key`` started, if it still counts (lock held)."""
        row = self._connection.execute(
            f"SELECT {_COLUMNS} FROM operations WHERE request_key = ?", (record.request_key,)
        ).fetchone()
        if row is None:
            return None
        earlier = OperationRecord(*row)
        if earlier.start_at <= record.start_at - REQUEST_ID_WINDOW:
            # Past the window the id is free again: the earlier operation keeps its record, not the id.
            self._connection.execute("UPDATE operations SET request_key = NULL WHERE seq = ?", (earlier.seq,))
            return None
        if earlier.request_digest != record.request_digest:
            raise RequestError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"request_id: {shown(str(record.request_key))} was used within the last "
                f"{REQUEST_ID_WINDOW / 60:.0f} minutes for a different request (operation {shown(earlier.name)})",
            )
        return earlier

    def supersede_rollouts(self, service_name: str, now: float, before_seq: int) -> int:
        """Cancel the service's rollouts inserted before ``before_seq`` that are still running at ``now``.

        Service Management cancels "any previous pending and running Rollouts
        and associated Operations" when a new rollout is created. Returns how
        many were cancelled.
        """
        with self._lock:
            cursor = self._connection.execute(
                "UPDATE operations SET end_at = ?, outcome = ?, cancel_requested_at = ? "
                "WHERE service_name = ? AND method = 'CreateServiceRollout' AND api = ? AND seq < ? AND end_at > ?",
                (now, CANCEL, now, service_name, SERVICE_MANAGEMENT, before_seq, now),
            )
        return cursor.rowcount

    def get(self, name: str) -> OperationRecord | None:
        """The record named ``name``, or ``None`` (expiry is the caller's business)."""
        with self._lock:
            row = self._connection.execute(f"SELECT {_COLUMNS} FROM operations WHERE name = ?", (name,)).fetchone()
        return None if row is None else OperationRecord(*row)

    def cancel(self, name: str, now: float, grace: float) -> OperationRecord | None:
        """Apply a cancel request at ``now`` (see ``_model.cancelled``); ``None`` if there is no such record."""
        with self._lock:
            row = self._connection.execute(f"SELECT {_COLUMNS} FROM operations WHERE name = ?", (name,)).fetchone()
            if row is None:
                return None
            record = OperationRecord(*row)
            updated = cancelled(record, now, grace)
            if updated is not record:
                self._connection.execute(
                    "UPDATE operations SET end_at = ?, outcome = ?, cancel_requested_at = ? WHERE seq = ?",
                    (updated.end_at, updated.outcome, updated.cancel_requested_at, updated.seq),
                )
        return updated

    def finish(self, name: str, now: float, error: status_pb2.Status | None = None) -> OperationRecord | None:
        """End the record named ``name`` at ``now`` if it is still running; ``None`` if it is not (or absent).

        Without ``error`` it succeeds with the response it was planned with; with
        one it fails with that status (kept, packed in an ``Any``, where the
        response was: see ``_model.render``).
        """
        with self._lock:
            row = self._connection.execute(
                f"SELECT {_COLUMNS} FROM operations WHERE name = ? AND end_at > ?", (name, now)
            ).fetchone()
            if row is None:
                return None
            record = OperationRecord(*row)
            if error is None:
                updated = dataclasses.replace(record, end_at=now, outcome=SUCCESS)
            else:
                packed = any_pb2.Any()
                packed.Pack(error)
                updated = dataclasses.replace(record, end_at=now, outcome=FAIL, response=packed.SerializeToString())
            self._connection.execute(
                "UPDATE operations SET end_at = ?, outcome = ?, response = ? WHERE seq = ?",
                (updated.end_at, updated.outcome, updated.response, updated.seq),
            )
        return updated

    def delete(self, name: str) -> bool:
        """Remove the record named ``name``; whether there was one."""
        with self._lock:
            cursor = self._connection.execute("DELETE FROM operations WHERE name = ?", (name,))
        return cursor.rowcount > 0

    def list(self, query: ListQuery, now: float, retention: float) -> tuple[list[OperationRecord], bool]:
        """One page of unexpired records matching ``query``, oldest first, and whether more follow.

        The query's filter runs in SQL (see ``ListFilter.where``), so a page costs
        one indexed scan however few records match.
        """
        rows, more = self._page_rows(_COLUMNS, query, now, retention)
        return [OperationRecord(*row) for row in rows], more

    def list_heads(self, query: ListQuery, now: float, retention: float) -> tuple[builtins.list[ListedHead], bool]:
        """As :meth:`list`, each record's head only: ``seq, end_at, cancel_requested_at``.

        What a page needs to tell which renderings it keeps are still valid
        (see :mod:`lro_grpc.emulator._pages`), at half the cost of whole rows.
        """
        return self._page_rows("seq, end_at, cancel_requested_at", query, now, retention)

    def _page_rows(
        self, columns: str, query: ListQuery, now: float, retention: float
    ) -> tuple[builtins.list[Any], bool]:
        condition, filter_parameters = query.filter.where(now)
        sql = [f"SELECT {columns} FROM operations WHERE collection = ? AND seq > ? AND end_at > ?"]
        parameters: builtins.list[object] = [query.collection, query.after_seq, now - retention]
        if query.service_name is not None:
            sql.append("AND service_name = ?")  # also in the filter; stated here so the index can serve it
            parameters.append(query.service_name)
        sql.append(f"AND {condition} ORDER BY seq LIMIT ?")
        parameters.extend(filter_parameters)
        parameters.append(query.page_size + 1)
        with self._lock:
            rows = self._connection.execute(" ".join(sql), parameters).fetchall()
        return rows[: query.page_size], len(rows) > query.page_size

    def records(self, seqs: Sequence[int]) -> dict[int, OperationRecord]:
        """The records of these sequence numbers that still exist, by sequence number."""
        found: dict[int, OperationRecord] = {}
        with self._lock:
            for start in range(0, len(seqs), _SEQS_PER_QUERY):
                chunk = seqs[start : start + _SEQS_PER_QUERY]
                marks = ", ".join("?" * len(chunk))
                rows = self._connection.execute(f"SELECT {_COLUMNS} FROM operations WHERE seq IN ({marks})", chunk)
                for row in rows:
                    record = OperationRecord(*row)
                    found[record.seq] = record
        return found

    def browse(
        self, condition: str, parameters: Sequence[object], *, before_seq: int, limit: int
    ) -> tuple[builtins.list[OperationRecord], bool, int]:
        """Newest first, the records matching an SQL ``condition`` (the operations page's filters).

        Args:
            condition: an SQL condition over the columns, with ``?`` placeholders.
            parameters: its parameters.
            before_seq: only records inserted before this sequence number (``0``: from the newest).
            limit: at most this many records.

        Returns:
            The records, whether more follow, and how many match in all.
        """
        page_condition = condition + (" AND seq < ?" if before_seq else "")
        page_parameters = [*parameters, before_seq] if before_seq else list(parameters)
        with self._lock:
            rows = self._connection.execute(
                f"SELECT {_COLUMNS} FROM operations WHERE {page_condition} ORDER BY seq DESC LIMIT ?",
                [*page_parameters, limit + 1],
            ).fetchall()
            total = self._connection.execute(f"SELECT COUNT(*) FROM operations WHERE {condition}", parameters)
            count = int(total.fetchone()[0])
        return [OperationRecord(*row) for row in rows[:limit]], len(rows) > limit, count

    def scopes(self, limit: int = 500) -> tuple[builtins.list[str], builtins.list[str]]:
        """Up to ``limit`` distinct Financial Services list parents and Service Management services stored."""
        with self._lock:
            collections = self._connection.execute(
                "SELECT DISTINCT collection FROM operations WHERE collection != 'operations' LIMIT ?", (limit,)
            ).fetchall()
            services = self._connection.execute(
                "SELECT DISTINCT service_name FROM operations WHERE service_name != '' LIMIT ?", (limit,)
            ).fetchall()
        return [row[0] for row in collections], [row[0] for row in services]

    def purge_expired(self, now: float, retention: float) -> int:
        """Physically remove records whose retention ran out; how many."""
        with self._lock:
            cursor = self._connection.execute("DELETE FROM operations WHERE end_at <= ?", (now - retention,))
        return cursor.rowcount

    def count(self) -> int:
        """How many records are stored (expired ones not yet purged included)."""
        with self._lock:
            return int(self._connection.execute("SELECT COUNT(*) FROM operations").fetchone()[0])

    def page_token_secret(self) -> bytes:
        """The key this database's page tokens are signed with, created on first use.

        Kept with the records, so an emulator restarted on the same file still
        accepts the tokens it gave out; an in-memory store gets a fresh one.
        """
        with self._lock:
            row = self._connection.execute("SELECT value FROM meta WHERE key = 'page_token_secret'").fetchone()
            if row is not None:
                return bytes.fromhex(row[0])
            secret = new_page_token_secret()
            self._connection.execute("INSERT INTO meta (key, value) VALUES ('page_token_secret', ?)", (secret.hex(),))
            return secret

    def load_anchor(self) -> ClockAnchor | None:
        """The clock anchor saved by :meth:`save_anchor`, if any."""
        with self._lock:
            row = self._connection.execute("SELECT value FROM meta WHERE key = 'clock'").fetchone()
        if row is None:
            return None
        data = json.loads(row[0])
        return ClockAnchor(float(data["simulated"]), float(data["wall"]), float(data["speed"]))

    def save_anchor(self, anchor: ClockAnchor) -> None:
        """Persist the clock, so a restarted emulator carries on from it."""
        value = json.dumps({"simulated": anchor.simulated, "wall": anchor.wall, "speed": anchor.speed})
        with self._lock:
            self._connection.execute(
                "INSERT INTO meta (key, value) VALUES ('clock', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (value,),
            )
