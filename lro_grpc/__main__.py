"""``python -m lro_grpc``: the ``lro-grpc`` command line (see :mod:`lro_grpc.cli`)."""

from __future__ import annotations

import sys

from lro_grpc.cli import main

if __name__ == "__main__":
    sys.exit(main())
