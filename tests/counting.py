"""GetOperation calls an in-process emulator serves, counted by operation name (wrapped in its servicer)."""

from __future__ import annotations

import collections
from typing import Any

import pytest

from lro_grpc.emulator import _server as emulator_server


class GetCounter:
    """GetOperation calls the emulator served, by operation name.

    :meth:`install` before the emulator starts (it registers its servicer's methods then).
    """

    def __init__(self) -> None:
        self.by_name: collections.Counter[str] = collections.Counter()

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        original = emulator_server.OperationsService.GetOperation
        counts = self.by_name

        async def counted(service: Any, request: Any, context: Any) -> Any:
            counts[request.name] += 1
            return await original(service, request, context)

        monkeypatch.setattr(emulator_server.OperationsService, "GetOperation", counted)

    def total(self) -> int:
        """Every GetOperation counted so far."""
        return sum(self.by_name.values())
