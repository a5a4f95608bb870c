"""A batch journal in one SQLite file (the standard library's ``sqlite3``, WAL mode).

Layout (format 1)::

    meta(key, value)                 format, endpoint, api
    names(id, name)                  operation names, in the order recorded
    outcomes(id, name, code, operation)   final operations (serialized), in the order recorded
    delivered(id)                    ids of the outcomes delivered to a consumer

Every table only grows, so each commit appends a row or a few at the end of
a B-tree. The file is opened in WAL mode with ``synchronous=NORMAL``: a
commit is one write to the WAL, not an fsync, which survives the process
being killed at any instant; after a power loss the file stays consistent
but may lack the last commits (those outcomes are then polled, or handed
out, again).

A delivery mark on its own (the common case: one per outcome handed out,
each durable before the next is handed out) is appended to ``REAL.delivered``
instead (``REAL``: the journal's resolved path), eight bytes (the outcome's
id) in one ``write``: a SQLite commit costs some 8 us of CPU, this 1 us. The
marks are folded into the ``delivered`` table, and the file removed, when the
journal is opened and closed; a mark for an outcome the database does not
hold (lost to a power failure) is dropped, and a cut last mark is ignored
(that outcome is handed out again).
``locking_mode=EXCLUSIVE`` keeps the WAL index in the process's memory; one
process holds a journal at a time anyway (see :mod:`._journal_file`: the
lock is an ``flock`` on the file itself, creation is atomic, files are
``0600``, a symlink is resolved and a hard-linked file refused).

Integrity is SQLite's to judge: the file is opened, passes ``PRAGMA
quick_check`` and holds this layout, or it is reported and never written to.
Its length is not compared with its header's page count: in WAL mode the
main file is legitimately shorter while a checkpoint runs, or after one
failed (a kill, a full disk), the WAL holding the pages. A reader
(``read_only=True``) takes a shared lock and changes nothing: it opens the
file ``immutable``, or, when a WAL is left over from a killed writer, a
private copy of the two files, so it works in a read-only directory.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterator, Sequence
from typing import Final

from lro_grpc._batch._journal import JournalContents, JournalIdentity, StoredOutcome
from lro_grpc._batch._journal_file import FILE_MODE, JournalLock, create_whole
from lro_grpc.errors import JournalError

__all__ = ["FORMAT", "SqliteJournalStore"]

FORMAT: Final = "lro-grpc-journal/1"
"""The ``meta.format`` value of the layout this module reads and writes."""

_HEADER: Final = b"SQLite format 3\x00"
_TABLES: Final = frozenset({"meta", "names", "outcomes", "delivered"})
_SCHEMA: Final = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE names (id INTEGER PRIMARY KEY, name TEXT NOT NULL)",
    "CREATE TABLE outcomes (id INTEGER PRIMARY KEY, name TEXT NOT NULL, code INTEGER NOT NULL,"
    " operation BLOB NOT NULL)",
    "CREATE TABLE delivered (id INTEGER PRIMARY KEY)",
)


class SqliteJournalStore:
    """A :class:`~lro_grpc._batch._journal.JournalStore` in one SQLite file.

    Opening it creates a missing file (whole, ``0600``), takes the journal's
    lock, then checks the file (SQLite header, ``quick_check``, the tables
    and format) before anything is written. A symlink is the file it names:
    its lock and side files are the file's own; a file with several hard
    links is refused.

    Args:
        path: the journal file.
        read_only: read it without changing anything (a shared lock; no file
            is created, so a read-only directory or file system will do);
            the write methods then raise :class:`~lro_grpc.errors.JournalError`.

    Raises:
        JournalError: another process holds the journal (named by pid), or
            the file is missing (``read_only``), or not a readable journal of
            this format.
    """

    def __init__(self, path: str | os.PathLike[str], *, read_only: bool = False) -> None:
        if not isinstance(path, str | os.PathLike):
            raise TypeError(f"journal must be a file path, got {path!r}")
        self._path = os.fspath(path)
        self._read_only = read_only
        self._real = os.path.realpath(self._path)
        self._marks_path = self._real + ".delivered"
        self._connection: sqlite3.Connection | None = None
        self._marks_fd = -1
        self._copy: str | None = None  # a reader's private copy (directory), removed on close
        if not read_only and not os.path.exists(self._real):
            try:
                create_whole(self._real, _empty_journal())
            except OSError as error:
                raise self._error(f"cannot be created: {error}") from error
        elif read_only and not os.path.exists(self._real):
            raise JournalError(f"journal {self._path!r} does not exist", self._path)
        self._lock = JournalLock(self._real, shared=read_only, shown=self._path)
        try:
            self._check_header()
            self._connection = self._open_read_only() if read_only else self._open()
            if not read_only:
                self._fold_marks()
                self._marks_fd = os.open(self._marks_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
        except OSError as error:
            self.close()
            raise self._error(f"cannot be opened: {error}") from error
        except BaseException:
            self.close()
            raise

    @property
    def path(self) -> str:
        """The journal file."""
        return self._path

    def _error(self, problem: str) -> JournalError:
        return JournalError(f"journal {self._path!r} {problem}; nothing was changed", self._path)

    def _check_header(self) -> None:
        """The file starts like a SQLite database, or is empty (a new one); read through the lock's descriptor."""
        try:
            header = os.pread(self._lock.fd, 100, 0)
        except OSError as error:
            raise self._error(f"cannot be read: {error}") from error
        if 0 < len(header) < 100:
            raise self._error(f"is {len(header)} bytes long: too short to be a journal (truncated?)")
        if header and not header.startswith(_HEADER):
            raise self._error("is not an lro-grpc journal (not a SQLite database)")

    def _open(self) -> sqlite3.Connection:
        return self._connect(pathlib.Path(self._real).as_uri(), self._prepare)

    def _prepare(self, connection: sqlite3.Connection) -> None:
        # Before the first read: a WAL left by a killed writer is then replayed without a -shm file.
        connection.execute("PRAGMA locking_mode=EXCLUSIVE")
        tables = self._check_contents(connection)
        # Only now that the file is known to be ours is anything written.
        mode = connection.execute("PRAGMA journal_mode=WAL").fetchone()
        if mode is None or str(mode[0]).lower() != "wal":
            raise self._error(f"cannot be put in WAL mode (got {mode!r})")
        connection.execute("PRAGMA synchronous=NORMAL")
        if not tables:  # an empty file: accepted as a new journal
            connection.execute("BEGIN IMMEDIATE")
            _create_tables(connection)
            connection.execute("COMMIT")

    def _open_read_only(self) -> sqlite3.Connection:
        wal = self._real + "-wal"
        if os.path.exists(wal) and os.path.getsize(wal) > 0:
            # A killed writer's WAL: only a connection that may write can replay it, so a copy is read.
            self._copy = tempfile.mkdtemp(prefix="lro-grpc-journal-")
            copy = os.path.join(self._copy, "journal")
            shutil.copyfile(self._real, copy)
            shutil.copyfile(wal, copy + "-wal")
            return self._connect(pathlib.Path(copy).as_uri(), self._check_not_empty)
        return self._connect(pathlib.Path(self._real).as_uri() + "?mode=ro&immutable=1", self._check_not_empty)

    def _check_not_empty(self, connection: sqlite3.Connection) -> None:
        if not self._check_contents(connection):
            raise self._error("is empty: no journal was written to it yet")

    def _connect(self, uri: str, prepare: Callable[[sqlite3.Connection], None]) -> sqlite3.Connection:
        """Connect to ``uri`` and ``prepare`` the connection; SQLite's errors become :class:`JournalError`."""
        try:
            connection = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as error:
            raise self._error(f"cannot be opened: {error}") from error
        try:
            prepare(connection)
        except sqlite3.Error as error:
            connection.close()
            raise self._error(f"is not a readable journal: {error}{self._length_note()}") from error
        except BaseException:
            connection.close()
            raise
        return connection

    def _check_contents(self, connection: sqlite3.Connection) -> set[str]:
        """The tables found (empty: a database with nothing in it yet); raises unless they are a journal's."""
        check = connection.execute("PRAGMA quick_check").fetchall()
        if check != [("ok",)]:
            raise self._error("is corrupt: " + "; ".join(str(row[0]) for row in check[:3]) + self._length_note())
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not tables:
            return tables
        if not tables >= _TABLES:
            raise self._error(f"is not an lro-grpc journal (tables: {', '.join(sorted(tables))})")
        row = connection.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
        if row is None or row[0] != FORMAT:
            raise self._error(f"has format {None if row is None else row[0]!r}, not {FORMAT!r}")
        return tables

    def _length_note(self) -> str:
        """For a corrupt file: its length against its header's, a likely cause (a clue, not a verdict)."""
        try:
            header = os.pread(self._lock.fd, 100, 0)
            size = os.fstat(self._lock.fd).st_size
        except OSError:
            return ""
        page_size = int.from_bytes(header[16:18], "big")
        pages = int.from_bytes(header[28:32], "big") * (65536 if page_size == 1 else page_size)
        if len(header) == 100 and header[24:28] == header[92:96] and size < pages:
            return f" ({size} bytes where its header says {pages}: truncated?)"
        return ""

    @property
    def _db(self) -> sqlite3.Connection:
        if self._connection is None:
            raise JournalError(f"journal {self._path!r} is closed", self._path)
        return self._connection

    def read_identity(self) -> JournalIdentity | None:
        """What the journal was made for; ``None`` for a journal just created."""
        values = dict(self._db.execute("SELECT key, value FROM meta WHERE key IN ('endpoint', 'api')").fetchall())
        if not values:
            return None
        return JournalIdentity(endpoint=values.get("endpoint", ""), api=values.get("api", ""))

    def write_identity(self, identity: JournalIdentity) -> None:
        """Record what the journal is for."""
        with self._transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                [("endpoint", identity.endpoint), ("api", identity.api)],
            )

    def load(self) -> JournalContents:
        """Every name, outcome and delivery mark (a reader counts those still in side files too)."""
        db = self._db
        try:
            names = [row[0] for row in db.execute("SELECT name FROM names ORDER BY id")]
            outcomes = [StoredOutcome(*row) for row in db.execute("SELECT * FROM outcomes ORDER BY id")]
            delivered = {row[0] for row in db.execute("SELECT id FROM delivered")}
        except sqlite3.Error as error:
            raise self._error(f"cannot be read: {error}") from error
        if self._read_only:
            held = {outcome.id for outcome in outcomes}
            delivered.update(mark for mark in _read_marks(self._marks_path) if mark in held)
        return JournalContents(names=names, outcomes=outcomes, delivered=delivered)

    def add_names(self, names: Sequence[str]) -> None:
        """Append operation names, in one commit."""
        with self._transaction() as db:
            db.executemany("INSERT INTO names (name) VALUES (?)", zip(names))

    def write(self, outcomes: Sequence[StoredOutcome], delivered: Sequence[int]) -> None:
        """Append outcomes and delivery marks: one commit, or for a delivery mark alone one ``write``."""
        if not outcomes and len(delivered) == 1 and self._marks_fd >= 0:
            try:
                written = os.write(self._marks_fd, delivered[0].to_bytes(8, "little"))
            except OSError as error:
                self._cut_marks()
                raise JournalError(f"journal {self._path!r} cannot be written: {error}", self._path) from error
            if written != 8:  # a full disk
                self._cut_marks()
                raise JournalError(
                    f"journal {self._path!r} cannot be written: short write to {self._marks_path}", self._path
                )
            return
        with self._transaction() as db:
            if outcomes:
                db.executemany("INSERT INTO outcomes VALUES (?, ?, ?, ?)", outcomes)
            if delivered:
                db.executemany("INSERT OR IGNORE INTO delivered VALUES (?)", zip(delivered))

    def _cut_marks(self) -> None:
        """Drop a partly written mark, so that the next one is not read across it."""
        with contextlib.suppress(OSError):
            size = os.fstat(self._marks_fd).st_size
            os.ftruncate(self._marks_fd, size - size % 8)

    def _fold_marks(self) -> None:
        """Move the delivery marks of ``REAL.delivered`` into the database, then remove that file."""
        ids = [(mark,) for mark in _read_marks(self._marks_path)]
        if ids:
            with self._transaction() as db:
                # Only marks of outcomes the database holds: ids are reused after a lost commit.
                db.executemany("INSERT OR IGNORE INTO delivered SELECT id FROM outcomes WHERE id = ?", ids)
        with contextlib.suppress(FileNotFoundError):
            os.remove(self._marks_path)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        if self._read_only:
            raise JournalError(f"journal {self._path!r} was opened read-only", self._path)
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        except sqlite3.Error as error:
            raise JournalError(f"journal {self._path!r} cannot be written: {error}", self._path) from error

    def close(self) -> None:
        """Fold the delivery marks in, close the file and release the lock. Idempotent."""
        try:
            if self._marks_fd >= 0:
                os.close(self._marks_fd)
                self._marks_fd = -1
                self._fold_marks()
        finally:
            connection, self._connection = self._connection, None
            try:
                if connection is not None:
                    connection.close()
            finally:
                copy, self._copy = self._copy, None
                if copy is not None:
                    shutil.rmtree(copy, ignore_errors=True)
                self._lock.release()


def _create_tables(connection: sqlite3.Connection) -> None:
    for statement in _SCHEMA:
        connection.execute(statement)
    connection.execute("INSERT INTO meta VALUES ('format', ?)", (FORMAT,))


def _empty_journal() -> bytes:
    """A new journal's bytes: the layout and its format, nothing else (built in memory)."""
    connection = sqlite3.connect(":memory:", isolation_level=None)
    try:
        _create_tables(connection)
        return connection.serialize()
    finally:
        connection.close()


def _read_marks(path: str) -> list[int]:
    """The outcome ids in a marks file (a cut last mark is ignored); none if it is missing."""
    try:
        with open(path, "rb") as marks:
            data = marks.read()
    except FileNotFoundError:
        return []
    return [int.from_bytes(data[at : at + 8], "little") for at in range(0, len(data) - 7, 8)]
