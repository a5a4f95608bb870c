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
each durable before the next is handed out) is appended to ``PATH.delivered``
instead, eight bytes (the outcome's id) in one ``write``: a SQLite commit
costs some 8 us of CPU, this 1 us. The marks are folded into the
``delivered`` table, and the file removed, when the journal is opened and
closed; a mark for an outcome the database does not hold (lost to a power
failure) is dropped, and a cut last mark is ignored (that outcome is handed
out again). ``locking_mode=EXCLUSIVE`` keeps the WAL index in the process's
memory; one process holds a journal at a time anyway, through an
``fcntl.flock`` on ``PATH.lock``, which also records the holder's pid so
that a second opener's error names it. A file that is not such a journal,
or that is truncated or corrupt, is reported and never written to.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator, Sequence
from typing import Final

from lro_grpc._batch._journal import JournalContents, JournalIdentity, StoredOutcome
from lro_grpc.errors import JournalError

try:
    import fcntl
except ImportError:  # pragma: no cover - not a POSIX system
    fcntl = None  # type: ignore[assignment]

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

    Opening it takes the journal's lock, then checks an existing file
    (SQLite header, size against the header's page count, ``quick_check``,
    the tables and format) before anything is written; a missing file is
    created.

    Args:
        path: the journal file.

    Raises:
        JournalError: another process holds the journal (named by pid), or
            the file is not a readable journal of this format.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        if not isinstance(path, str | os.PathLike):
            raise TypeError(f"journal must be a file path, got {path!r}")
        self._path = os.fspath(path)
        self._marks_path = self._path + ".delivered"
        self._lock_fd = _take_lock(self._path)
        self._connection: sqlite3.Connection | None = None
        self._marks_fd = -1
        try:
            self._connection = self._open()
            self._fold_marks()
            self._marks_fd = os.open(self._marks_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
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

    def _open(self) -> sqlite3.Connection:
        existed = os.path.exists(self._path)
        if existed:
            self._check_file()
        try:
            connection = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as error:
            raise self._error(f"cannot be opened: {error}") from error
        try:
            tables = self._check_contents(connection) if existed else set()
            # Only now that the file is known to be ours is anything written.
            connection.execute("PRAGMA locking_mode=EXCLUSIVE")
            mode = connection.execute("PRAGMA journal_mode=WAL").fetchone()
            if mode is None or str(mode[0]).lower() != "wal":
                raise self._error(f"cannot be put in WAL mode (got {mode!r})")
            connection.execute("PRAGMA synchronous=NORMAL")
            if not tables:
                connection.execute("BEGIN IMMEDIATE")
                for statement in _SCHEMA:
                    connection.execute(statement)
                connection.execute("INSERT INTO meta VALUES ('format', ?)", (FORMAT,))
                connection.execute("COMMIT")
        except sqlite3.Error as error:
            connection.close()
            raise self._error(f"is not a readable journal: {error}") from error
        except BaseException:
            connection.close()
            raise
        return connection

    def _check_file(self) -> None:
        """The file looks like a whole SQLite database (checked before SQLite touches it)."""
        try:
            with open(self._path, "rb") as file:
                header = file.read(100)
                size = os.fstat(file.fileno()).st_size
        except OSError as error:
            raise self._error(f"cannot be read: {error}") from error
        if len(header) < 100:
            raise self._error(f"is {size} bytes long: too short to be a journal (truncated?)")
        if not header.startswith(_HEADER):
            raise self._error("is not an lro-grpc journal (not a SQLite database)")
        page_size = int.from_bytes(header[16:18], "big")
        page_size = 65536 if page_size == 1 else page_size
        pages = int.from_bytes(header[28:32], "big")
        header_size_valid = header[24:28] == header[92:96]
        if header_size_valid and pages and size < pages * page_size:
            raise self._error(f"is truncated: {size} bytes where its header says {pages * page_size}")

    def _check_contents(self, connection: sqlite3.Connection) -> set[str]:
        """The tables found (empty: a database with nothing in it yet); raises unless they are a journal's."""
        check = connection.execute("PRAGMA quick_check").fetchall()
        if check != [("ok",)]:
            raise self._error("is corrupt: " + "; ".join(str(row[0]) for row in check[:3]))
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not tables:
            return tables
        if not tables >= _TABLES:
            raise self._error(f"is not an lro-grpc journal (tables: {', '.join(sorted(tables))})")
        row = connection.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
        if row is None or row[0] != FORMAT:
            raise self._error(f"has format {None if row is None else row[0]!r}, not {FORMAT!r}")
        return tables

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
        """Every name, outcome and delivery mark."""
        db = self._db
        try:
            names = [row[0] for row in db.execute("SELECT name FROM names ORDER BY id")]
            outcomes = [StoredOutcome(*row) for row in db.execute("SELECT * FROM outcomes ORDER BY id")]
            delivered = {row[0] for row in db.execute("SELECT id FROM delivered")}
        except sqlite3.Error as error:
            raise self._error(f"cannot be read: {error}") from error
        return JournalContents(names=names, outcomes=outcomes, delivered=delivered)

    def add_names(self, names: Sequence[str]) -> None:
        """Append operation names, in one commit."""
        with self._transaction() as db:
            db.executemany("INSERT INTO names (name) VALUES (?)", zip(names))

    def write(self, outcomes: Sequence[StoredOutcome], delivered: Sequence[int]) -> None:
        """Append outcomes and delivery marks: one commit, or for a delivery mark alone one ``write``."""
        if not outcomes and len(delivered) == 1:
            try:
                written = os.write(self._marks_fd, delivered[0].to_bytes(8, "little"))
            except OSError as error:
                raise JournalError(f"journal {self._path!r} cannot be written: {error}", self._path) from error
            if written != 8:  # a full disk: the cut mark is ignored when read back
                raise JournalError(
                    f"journal {self._path!r} cannot be written: short write to {self._marks_path}", self._path
                )
            return
        with self._transaction() as db:
            if outcomes:
                db.executemany("INSERT INTO outcomes VALUES (?, ?, ?, ?)", outcomes)
            if delivered:
                db.executemany("INSERT OR IGNORE INTO delivered VALUES (?)", zip(delivered))

    def _fold_marks(self) -> None:
        """Move the delivery marks of ``PATH.delivered`` into the database, then remove that file."""
        try:
            with open(self._marks_path, "rb") as marks:
                data = marks.read()
        except FileNotFoundError:
            return
        ids = [(int.from_bytes(data[at : at + 8], "little"),) for at in range(0, len(data) - 7, 8)]
        if ids:
            with self._transaction() as db:
                # Only marks of outcomes the database holds: ids are reused after a lost commit.
                db.executemany("INSERT OR IGNORE INTO delivered SELECT id FROM outcomes WHERE id = ?", ids)
        os.remove(self._marks_path)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
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
                self._release()

    def _release(self) -> None:
        fd, self._lock_fd = self._lock_fd, -1
        if fd >= 0:
            os.close(fd)  # closing the descriptor releases the flock


def _take_lock(path: str) -> int:
    """Take ``PATH.lock`` (an exclusive ``flock``, released when the process ends) and write our pid in it."""
    lock_path = path + ".lock"
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        raise JournalError(f"journal {path!r}: cannot open its lock file {lock_path!r}: {error}", path) from error
    if fcntl is None:  # pragma: no cover - not a POSIX system: no lock to take
        return fd
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        raise JournalError(
            f"journal {path!r} is in use by process {holder} (one process per journal)",
            path,
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
    return fd
