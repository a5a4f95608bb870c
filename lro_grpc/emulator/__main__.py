"""``python -m lro_grpc.emulator``: see :func:`lro_grpc.emulator.main`."""

from __future__ import annotations

from lro_grpc.emulator import main

raise SystemExit(main())
