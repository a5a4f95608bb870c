"""``ListOperations`` pages from operations' wire bytes, kept while they stay valid.

A sweeping client lists every running operation of its scopes about once a
second, and walks the finished ones as often: at 100,000 operations the
emulator renders well over 100,000 operations a second, nearly all of them
unchanged since the last listing. An operation's rendering depends on the
simulated time only through whether it is done, except a running Service
Management operation's (its progress moves): every other rendering is kept,
as the framed bytes of one ``operations`` entry of a ``ListOperationsResponse``,
stamped with what it was rendered from (``end_at``, ``cancel_requested_at``,
done). Everything that changes an operation's rendering (cancel, finish,
supersede) changes its ``end_at`` or ``cancel_requested_at``, and a deleted
operation's sequence number is never used again, so a stamp that matches the
record's is a rendering that is still right; one that does not is rendered
anew. A page is its entries' bytes joined, parsed once.

No I/O of its own: the caller reads a page's heads, and the records of the
renderings missing are read through :class:`RecordSource` (the store).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final, Protocol

from google.longrunning import operations_pb2

from lro_grpc.emulator._model import FINANCIAL_SERVICES, OperationRecord, render

__all__ = ["CAPACITY", "ListedHead", "RecordSource", "RenderedOperations", "framed_entry"]

CAPACITY: Final = 200_000
"""Renderings kept at most (some 100 MB at the most); past it they are all forgotten and rendered anew."""

ListedHead = tuple[int, float, "float | None"]
"""What a page needs of a listed record before its rendering: ``seq, end_at, cancel_requested_at``."""

_OPERATIONS_TAG: Final = b"\x0a"  # ListOperationsResponse.operations: field 1, length-delimited


class RecordSource(Protocol):
    """The store's call that fetches the records whose renderings are missing."""

    def records(self, seqs: Sequence[int]) -> dict[int, OperationRecord]:
        """The records of these sequence numbers that still exist, by sequence number."""
        ...


def framed_entry(operation: operations_pb2.Operation) -> bytes:
    """``operation`` as one ``operations`` entry of a serialized ``ListOperationsResponse``."""
    body: bytes = operation.SerializeToString()
    size = len(body)
    prefix = bytearray(_OPERATIONS_TAG)
    while size >= 0x80:
        prefix.append((size & 0x7F) | 0x80)
        size >>= 7
    prefix.append(size)
    return bytes(prefix) + body


class RenderedOperations:
    """Operations' renderings as page entries, by sequence number (one per emulator; its event loop's thread).

    Args:
        capacity: renderings kept at most.
    """

    def __init__(self, capacity: int = CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity!r}")
        self._capacity = capacity
        self._entries: dict[int, tuple[float, float | None, bool, bytes]] = {}
        self.rendered = 0
        """Operations rendered (not found valid here), for tests and benchmarks."""

    def __len__(self) -> int:
        """Renderings kept."""
        return len(self._entries)

    def page(
        self,
        heads: Sequence[ListedHead],
        now: float,
        source: RecordSource,
        omit_running: Callable[[], bool] | None = None,
    ) -> operations_pb2.ListOperationsResponse:
        """The page of the listed ``heads``, in their order, as seen at simulated time ``now``.

        Args:
            heads: the listed records' heads, in listing order.
            now: the simulated time.
            source: where the records of missing renderings are read.
            omit_running: called once per running operation, in order; ``True``
                leaves it out (a fault to inject).
        """
        entries = self._entries
        parts: list[bytes | int] = []
        missing: list[int] = []
        for seq, end_at, cancel_requested_at in heads:
            done = now >= end_at
            if omit_running is not None and not done and omit_running():
                continue
            entry = entries.get(seq)
            if entry is not None and entry[0] == end_at and entry[1] == cancel_requested_at and entry[2] is done:
                parts.append(entry[3])
            else:
                parts.append(seq)
                missing.append(seq)
        if missing:
            fresh = self._render(source.records(missing), now)
            parts = [part if isinstance(part, bytes) else fresh.get(part, b"") for part in parts]
        return operations_pb2.ListOperationsResponse.FromString(b"".join(parts))  # type: ignore[arg-type]

    def _render(self, records: dict[int, OperationRecord], now: float) -> dict[int, bytes]:
        """Render ``records`` as page entries, keeping those that stay valid while their stamp does."""
        entries = self._entries
        fresh: dict[int, bytes] = {}
        for seq, record in records.items():
            framed = framed_entry(render(record, now))
            fresh[seq] = framed
            done = record.is_done(now)
            if done or record.api == FINANCIAL_SERVICES:  # a running Service Management operation's progress moves
                if len(entries) >= self._capacity:
                    entries.clear()
                entries[seq] = (record.end_at, record.cancel_requested_at, done, framed)
        self.rendered += len(records)
        return fresh
