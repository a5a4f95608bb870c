"""A process that writes a journal, for tests that kill it at chosen instants.

Usage:

* ``python journal_writer.py append JOURNAL SIZE``: opens the journal and
  appends outcomes of SIZE bytes, four per commit, for ever, printing the
  number of outcomes committed after each commit (flushed at once).
* ``python journal_writer.py create``: a fork server, so that a test can
  kill many creations without paying for a Python start-up each time. For
  each journal path read from stdin, it forks a creator, which prints
  ``ready PID`` and creates the journal as a batch does (opens it, records its
  identity, closes it), then prints ``done`` and exits. The server reaps the
  creator when it reads ``reap`` (so that its pid cannot be reused before the
  test is through with it), then prints ``end killed`` or ``end done``.
"""

from __future__ import annotations

import os
import sys

from lro_grpc._batch._journal import JournalIdentity, StoredOutcome
from lro_grpc._batch._sqlite_journal import SqliteJournalStore

PER_COMMIT = 4


def outcome_bytes(outcome_id: int, size: int) -> bytes:
    """What outcome ``outcome_id`` holds: recognisable, so that a test can check every one."""
    return outcome_id.to_bytes(8, "little") * (size // 8)


def append(journal: str, size: int) -> None:
    store = SqliteJournalStore(journal)
    store.write_identity(JournalIdentity(endpoint="writer", api="financialservices"))
    committed = 0
    while True:
        batch = [
            StoredOutcome(outcome_id, f"operations/o{outcome_id}", 0, outcome_bytes(outcome_id, size))
            for outcome_id in range(committed + 1, committed + 1 + PER_COMMIT)
        ]
        store.add_names([outcome.name for outcome in batch])
        store.write(batch, ())
        committed += PER_COMMIT
        sys.stdout.write(f"{committed}\n")
        sys.stdout.flush()


def create(journal: str) -> None:
    sys.stdout.write(f"ready {os.getpid()}\n")
    sys.stdout.flush()
    store = SqliteJournalStore(journal)
    try:
        if store.read_identity() is None:
            store.write_identity(JournalIdentity(endpoint="writer", api="financialservices"))
    finally:
        store.close()
    sys.stdout.write("done\n")
    sys.stdout.flush()


def serve_creations() -> None:
    for line in sys.stdin:
        journal = line.strip()
        if not journal:
            continue
        pid = os.fork()
        if pid == 0:
            try:
                create(journal)
            finally:
                os._exit(0)
        assert sys.stdin.readline().strip() == "reap"
        _, status = os.waitpid(pid, 0)
        sys.stdout.write("end killed\n" if os.WIFSIGNALED(status) else "end done\n")
        sys.stdout.flush()


def main() -> None:
    if sys.argv[1] == "append":
        append(sys.argv[2], int(sys.argv[3]))
    else:
        serve_creations()


if __name__ == "__main__":
    main()
