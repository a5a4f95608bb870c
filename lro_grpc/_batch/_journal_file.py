"""A journal file's life on disk: created whole, held by one process whatever its name, private.

What a journal store needs from the file system, apart from the database
itself (:mod:`._sqlite_journal`):

* Creation is atomic: the new journal is written in full to a file with no
  name yet (Linux ``O_TMPFILE``; elsewhere a hidden temporary file in the same
  directory) and then linked to its name, never over an existing file. A
  process killed while creating leaves either no journal or a whole one.
* The lock is the journal file itself: an ``fcntl.flock`` on its inode,
  exclusive for a writer and shared for a reader, so two names of one file
  (a symlink, a hard link) are one journal. A refused opener is told the
  holder's pid, read from ``/proc/locks`` (Linux; elsewhere the pid is not
  known). Within one process a table of held files refuses a second opener
  before it opens a descriptor: closing a descriptor of a file drops every
  POSIX lock the process holds on it, SQLite's included.
* Side files are named from the resolved path (``os.path.realpath``), not
  from the name the caller used; SQLite opens that path too, so its WAL is
  always found. A file with several hard links is refused: SQLite names the
  WAL from the path it opens, and no path of a hard-linked file is the true
  one, so a journal killed under one name and reopened under another would
  miss its last commits.
* Every file is created ``0600``: outcomes are the caller's private data.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
from typing import Final

from lro_grpc.errors import JournalError

try:
    import fcntl
except ImportError:  # pragma: no cover - not a POSIX system
    fcntl = None  # type: ignore[assignment]

__all__ = ["FILE_MODE", "JournalLock", "create_whole"]

FILE_MODE: Final = 0o600
"""Permissions of every file a journal creates (before the umask, which can only narrow them)."""

_HELD_GUARD = threading.Lock()
_HELD: dict[tuple[int, int], int] = {}  # (st_dev, st_ino) -> -1: held by a writer, n > 0: by n readers


def create_whole(path: str, content: bytes) -> bool:
    """Create ``path`` holding ``content``, atomically; ``False`` if it exists already (left alone).

    Raises:
        OSError: the directory cannot be written (or the disk is full); nothing is left behind.
    """
    directory = os.path.dirname(path) or "."
    try:
        fd = os.open(directory, os.O_TMPFILE | os.O_WRONLY, FILE_MODE)
    except (AttributeError, OSError):  # no O_TMPFILE here, or not on this file system
        return _create_through_temporary(path, directory, content)
    try:
        _write_all(fd, content)
        directory_fd = os.open(directory, os.O_RDONLY)
        try:
            # A directory descriptor makes os.link call linkat(), which can follow /proc's link to the new file.
            os.link(f"/proc/self/fd/{fd}", os.path.basename(path), dst_dir_fd=directory_fd, follow_symlinks=True)
        except FileExistsError:
            return False
        except OSError:  # no /proc: name a temporary file instead
            return _create_through_temporary(path, directory, content)
        else:
            with contextlib.suppress(OSError):  # not every file system lets a directory be synced
                os.fsync(directory_fd)
        finally:
            os.close(directory_fd)
    finally:
        os.close(fd)
    return True


def _create_through_temporary(path: str, directory: str, content: bytes) -> bool:
    temporary = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.new")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        try:
            _write_all(fd, content)
        finally:
            os.close(fd)
        try:
            os.link(temporary, path)  # unlike rename, never replaces a journal made meanwhile
        except FileExistsError:
            return False
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temporary)
    _sync_directory(directory)
    return True


def _write_all(fd: int, content: bytes) -> None:
    """Write all of ``content`` to ``fd`` and make it durable."""
    view = memoryview(content)
    while view:
        view = view[os.write(fd, view) :]
    os.fsync(fd)


def _sync_directory(directory: str) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a directory be synced
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class JournalLock:
    """The lock on a journal file: an ``flock`` on its inode, held until :meth:`release`.

    Args:
        path: the journal file (resolved); it must exist.
        shared: a reader's lock (several may read at once) instead of a writer's.
        shown: the name to use in error messages (the one the caller gave).

    Raises:
        JournalError: the file is held by another opener (naming its pid), or cannot be opened.
    """

    def __init__(self, path: str, *, shared: bool, shown: str) -> None:
        self.shared = shared
        self.fd = -1
        try:
            status = os.stat(path)
        except OSError as error:
            raise JournalError(f"journal {shown!r} cannot be opened: {error}", shown) from error
        self.key = (status.st_dev, status.st_ino)
        with _HELD_GUARD:
            held = _HELD.get(self.key, 0)
            if held < 0 or (held > 0 and not shared):
                raise _in_use(shown, [os.getpid()])
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError as error:
                raise JournalError(f"journal {shown!r} cannot be opened: {error}", shown) from error
            if fcntl is not None:
                try:
                    fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
                except OSError:
                    holders = _flock_holders(fd)
                    os.close(fd)  # no lock of this process is on the file: closing drops nothing
                    raise _in_use(shown, holders) from None
            links = os.fstat(fd).st_nlink
            if links > 1:
                os.close(fd)  # the lock, if taken, goes with it
                raise JournalError(
                    f"journal {shown!r} has {links} names (hard links): SQLite keeps a journal's WAL beside the"
                    " name it was opened by, so a journal reopened by another name could miss its last commits;"
                    " use one name (a symlink is fine); nothing was changed",
                    shown,
                )
            _HELD[self.key] = held + 1 if shared else -1
            self.fd = fd

    def release(self) -> None:
        """Release the lock (closing the descriptor releases the ``flock``). Idempotent."""
        fd, self.fd = self.fd, -1
        if fd < 0:
            return
        with _HELD_GUARD:
            held = _HELD.pop(self.key, 0)
            if self.shared and held > 1:
                _HELD[self.key] = held - 1
            os.close(fd)


def _in_use(shown: str, holders: list[int]) -> JournalError:
    who = f"process {', '.join(map(str, holders))}" if holders else "another process (pid unknown)"
    return JournalError(f"journal {shown!r} is in use by {who} (one process per journal)", shown)


def _flock_holders(fd: int) -> list[int]:
    """The pids holding an ``flock`` on ``fd``'s file, from ``/proc/locks`` (empty where there is none)."""
    status = os.fstat(fd)
    device = (os.major(status.st_dev), os.minor(status.st_dev))
    exact: list[int] = []
    same_inode: list[int] = []
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as locks:
            lines = locks.read().splitlines()
    except OSError:
        return []
    for line in lines:
        # "1: FLOCK  ADVISORY  WRITE 1234 fe:00:2154135 0 EOF"; "1: -> FLOCK ..." is a waiter.
        fields = line.split()
        if len(fields) < 6 or fields[1] != "FLOCK":
            continue
        major, minor, inode = [*fields[5].split(":"), "", "", ""][:3]
        try:
            if int(inode) != status.st_ino:
                continue
            pid = int(fields[4])
            # Stacked file systems (overlayfs) report the lower device: the inode alone is kept as a fallback.
            (exact if (int(major, 16), int(minor, 16)) == device else same_inode).append(pid)
        except ValueError:
            continue
    return sorted(set(exact or same_inode))
