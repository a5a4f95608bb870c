"""The ``lro-grpc`` command line: get, list, wait for, cancel and delete long-running operations.

Usage::

    lro-grpc [--api {financialservices,servicemanagement}] [--endpoint HOST:PORT] [--json]
             [--rpc-timeout SECONDS] COMMAND ...
    lro-grpc --version

    lro-grpc get NAME
    lro-grpc list PARENT [--filter F] [--page-size N] [--limit N] [--timeout SECONDS] [--wide]
    lro-grpc wait NAME... [--timeout SECONDS] [--poll-interval SECONDS] [--no-progress] [--wide]
                          [--journal FILE] [--names-from FILE|-]
    lro-grpc journal FILE [--json]
    lro-grpc cancel NAME
    lro-grpc delete NAME
    lro-grpc emulator [EMULATOR OPTIONS]   (see ``lro-grpc emulator --help``)
    lro-grpc demo [DEMO OPTIONS]           (see ``lro-grpc demo --help``)

``--api`` picks the default host and polling preset. Without it the API is
inferred from the name: ``projects/...`` is Financial Services,
``operations/...`` (and the list parent ``operations``) Service Management.
``--endpoint`` (or the ``LRO_GRPC_EMULATOR_HOST`` environment variable) points
at a local emulator over plaintext; otherwise the API's public host is used
with Application Default Credentials over TLS.

``--json`` prints the REST JSON shape of the API documentation: an operation
as ``{"name", "metadata" (with "@type"), "done", "response" (with "@type") or
"error"}``, a list as ``{"operations": [...]}``, and ``{}`` for cancel and
delete. Without it the output is a readable table fitted to the terminal's
width, names never cut; piped, ``list`` prints bare names, one per line (for
``xargs``); ``--wide`` prints the full table anywhere. ``wait`` with several
names prints each outcome as it comes (``NAME  STATE  DETAIL``; with
``--json``, one JSON object per line, then one per operation still running
at a timeout), and without ``--json`` the table at the end. ``wait`` draws a
progress bar on stderr when both stdout and stderr are terminals.

Exit codes:

    0  success (for ``get``: the operation is running or succeeded)
    1  the operation failed or was cancelled
    2  usage error, or a malformed operation name or parent
    3  timed out (``wait --timeout``, ``list --timeout``)
    4  not found: no such operation, or its record expired
    5  RPC or authentication failure (unreachable endpoint, permission denied, ...)
    6  the emulator (``lro-grpc emulator``) could not start: port taken, unusable --db
  130  interrupted (Ctrl-C)

A server's ``INVALID_ARGUMENT`` answer to what was given on the command line
(a malformed ``--filter``, say) is a usage error (2). When stdout is closed
early (``lro-grpc list ... | head``), the exit code is still the command's own.

When ``wait`` is given several names and they end differently, the exit code
is the highest of theirs.

``wait --journal FILE`` records the names, each outcome and what was printed
in FILE (SQLite): run again with the same FILE after a crash or a kill, it
resumes (outcomes already recorded come from the file, without an RPC; with
no NAME, every name in FILE). ``journal FILE`` counts what FILE holds
(pending, succeeded, failed, cancelled, delivered); with ``--json`` it prints
each recorded outcome as one JSON line, changing nothing (a read-only
directory will do). A journal in use by another process,
unreadable, or made for another endpoint or API is a usage error (exit 2).

Errors are one line on stderr, ``lro-grpc: error: ...``.
"""

from __future__ import annotations

from lro_grpc._cli.console import ExitCode
from lro_grpc._cli.parser import build_parser
from lro_grpc._cli.run import main

__all__ = ["ExitCode", "build_parser", "main"]
