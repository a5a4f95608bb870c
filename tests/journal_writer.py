"""A process that writes a journal, for tests that kill it at chosen instants.

Usage:

* ``python journal_writer.py append JOURNAL SIZE``: opens the journal and
  appends outcomes of SIZE bytes, four per commit, for ever, printing the
  number of outcomes committed after each commit (flushed at once).
* ``python journal_writer.py create JOURNAL``: prints ``ready`` once
  everything is imported, then creates the journal as a batch does (opens it,
  records its identity, closes it) and prints ``done``.

Only the journal store is imported (no gRPC), so the process starts quickly.
"""

from __future__ import annotations

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
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    store = SqliteJournalStore(journal)
    try:
        if store.read_identity() is None:
            store.write_identity(JournalIdentity(endpoint="writer", api="financialservices"))
    finally:
        store.close()
    sys.stdout.write("done\n")
    sys.stdout.flush()


def main() -> None:
    mode, journal = sys.argv[1:3]
    if mode == "append":
        append(journal, int(sys.argv[3]))
    else:
        create(journal)


if __name__ == "__main__":
    main()
