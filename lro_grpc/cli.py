"""The ``lro-grpc`` command line: get, list, wait for, cancel and delete long-running operations.

Usage::

    lro-grpc [--api {financialservices,servicemanagement}] [--endpoint HOST:PORT] [--json]
             [--rpc-timeout SECONDS] COMMAND ...
    lro-grpc --version

    lro-grpc get NAME
    lro-grpc list PARENT [--filter F] [--page-size N] [--limit N] [--timeout SECONDS]
    lro-grpc wait NAME... [--timeout SECONDS] [--poll-interval SECONDS] [--no-progress]
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
delete. Without it the output is a readable table. ``wait`` draws a progress
bar on stderr when both stdout and stderr are terminals.

Exit codes:

    0  success (for ``get``: the operation is running or succeeded)
    1  the operation failed or was cancelled
    2  usage error, or a malformed operation name or parent
    3  timed out (``wait --timeout``, ``list --timeout``)
    4  not found: no such operation, or its record expired
    5  RPC or authentication failure (unreachable endpoint, permission denied, ...)
  130  interrupted (Ctrl-C)

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

import argparse
import dataclasses
import enum
import json
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn, TextIO

import grpc
from google.longrunning import operations_pb2
from google.rpc import error_details_pb2

from lro_grpc import _core, _progress
from lro_grpc._batch import SYNTHETIC_ERROR_DOMAIN, read_journal
from lro_grpc._json import list_to_dict, operation_to_dict
from lro_grpc._version import __version__
from lro_grpc.aio import AsyncOperationsClient
from lro_grpc.apis import get_api
from lro_grpc.client import OperationsClient
from lro_grpc.errors import (
    InvalidNameError,
    JournalError,
    LroError,
    OperationError,
    OperationNotFoundError,
    RpcError,
    WaitTimeoutError,
)
from lro_grpc.names import parse_operation_name, validate_list_parent
from lro_grpc.operation import Operation
from lro_grpc.policies import DEFAULT_RETRY_POLICY, PollPolicy
from lro_grpc.registry import TypeRegistry, default_registry

__all__ = ["ExitCode", "build_parser", "main"]

PROG = "lro-grpc"

API_CHOICES = ("financialservices", "servicemanagement")

DEBUG_ENV = "LRO_GRPC_DEBUG"
"""Set this environment variable to ``1`` to get a traceback for unexpected errors."""


class ExitCode(enum.IntEnum):
    """The process exit codes of ``lro-grpc`` (see the module docstring)."""

    OK = 0
    """Success."""
    OPERATION_FAILED = 1
    """The operation failed or was cancelled."""
    USAGE = 2
    """Usage error, or a malformed operation name or parent."""
    TIMEOUT = 3
    """Timed out waiting, or listing (``--timeout``)."""
    NOT_FOUND = 4
    """No such operation, or its record expired."""
    RPC_FAILURE = 5
    """An RPC or authentication failure."""
    INTERRUPTED = 130
    """Interrupted (Ctrl-C, SIGINT): 128 + the signal number, as shells report it."""


_EXIT_CODES_HELP = """\
exit codes:
    0  success (for get: the operation is running or succeeded)
    1  the operation failed or was cancelled
    2  usage error, or a malformed operation name or parent
    3  timed out (wait --timeout, list --timeout)
    4  not found: no such operation, or its record expired
    5  RPC or authentication failure
  130  interrupted (Ctrl-C)

environment:
  LRO_GRPC_EMULATOR_HOST  HOST:PORT of a local emulator (plaintext), like --endpoint
"""


class _UsageError(Exception):
    """A command line that does not parse; carries the parser whose usage to show."""

    def __init__(self, message: str, parser: argparse.ArgumentParser | None = None) -> None:
        super().__init__(message)
        self.parser = parser


class _ArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser that raises instead of exiting, so ``main`` can return the exit code."""

    def error(self, message: str) -> NoReturn:
        raise _UsageError(message, self)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds (a number >= 0), got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected seconds (a finite number >= 0), got {text!r}")
    return value


def _positive_seconds(text: str) -> float:
    value = _seconds(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"expected seconds (a finite number > 0), got {text!r}")
    return value


def _add_global_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    # The same options are accepted before and after the command; after it they
    # default to SUPPRESS so they do not overwrite what was given before it.
    def default(value: object) -> object:
        return argparse.SUPPRESS if suppress else value

    parser.add_argument(
        "--api",
        choices=API_CHOICES,
        default=default(None),
        help="API of the operations: picks the default host and polling preset "
        "(default: inferred from the name, projects/... or operations/...)",
    )
    parser.add_argument(
        "--endpoint",
        metavar="HOST:PORT",
        default=default(None),
        help="talk to this endpoint instead of the API's public host; a loopback endpoint "
        "(an emulator) is used over plaintext (default: $LRO_GRPC_EMULATOR_HOST, else the public host)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        default=default(False),
        help="print the REST JSON shape of the API documentation instead of a table",
    )
    parser.add_argument(
        "--rpc-timeout",
        type=_positive_seconds,
        metavar="SECONDS",
        default=default(None),
        help="time allowed for each RPC, retries included (default: the API's preset)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``lro-grpc`` (raises instead of exiting on a usage error)."""
    parser = _ArgumentParser(
        prog=PROG,
        description="Get, list, wait for, cancel and delete Google long-running operations over gRPC.",
        epilog=_EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    _add_global_options(parser, suppress=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_ArgumentParser)
    commands.required = True

    def command(name: str, help_text: str, *, global_options: bool = True) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=_EXIT_CODES_HELP,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if global_options:
            _add_global_options(sub, suppress=True)
        return sub

    get = command("get", "show one operation")
    get.add_argument("name", metavar="NAME", help="operation name")
    get.set_defaults(handler=_cmd_get)

    list_ = command("list", "list the operations under a parent")
    list_.add_argument(
        "parent",
        metavar="PARENT",
        nargs="?",
        help="projects/PROJECT/locations/LOCATION (Financial Services) or operations (Service Management; "
        "the default with --api servicemanagement)",
    )
    list_.add_argument("--filter", default="", help="server-side filter, e.g. done=false or serviceName=NAME")
    list_.add_argument("--page-size", type=_positive_int, metavar="N", help="operations per page requested")
    list_.add_argument("--limit", type=_positive_int, metavar="N", help="stop after N operations")
    list_.add_argument(
        "--timeout",
        type=_seconds,
        metavar="SECONDS",
        help="give up on the whole listing after this long (exit 3; default: each page gets the client's timeout)",
    )
    list_.set_defaults(handler=_cmd_list)

    wait = command("wait", "wait until operations are done")
    wait.add_argument(
        "names", metavar="NAME", nargs="*", help="operation names (with --journal, default: every name in it)"
    )
    wait.add_argument(
        "--timeout", type=_seconds, metavar="SECONDS", help="give up after this long (default: wait for ever)"
    )
    wait.add_argument(
        "--poll-interval",
        type=_positive_seconds,
        metavar="SECONDS",
        help="poll at this fixed interval instead of the API's polling preset",
    )
    wait.add_argument("--no-progress", action="store_true", help="never draw the progress bar")
    wait.add_argument(
        "--journal",
        metavar="FILE",
        help="record names and outcomes in FILE (SQLite) and resume from it when run again",
    )
    wait.add_argument(
        "--names-from", metavar="FILE", help="read more operation names from FILE (- for stdin), one a line"
    )
    wait.set_defaults(handler=_cmd_wait)

    journal = command("journal", "count what a wait --journal FILE holds", global_options=False)
    journal.add_argument("file", metavar="FILE", help="the journal file")
    journal.add_argument(
        "--json", action="store_true", help="print each recorded outcome as one JSON line (the REST JSON shape)"
    )
    journal.set_defaults(handler=_cmd_journal)

    cancel = command("cancel", "ask the server to cancel an operation (best effort)")
    cancel.add_argument("name", metavar="NAME", help="operation name")
    cancel.set_defaults(handler=_cmd_cancel)

    delete = command("delete", "delete an operation's record (does not cancel it)")
    delete.add_argument("name", metavar="NAME", help="operation name")
    delete.set_defaults(handler=_cmd_delete)

    commands.add_parser(
        "emulator",
        help="run the local emulator (options: lro-grpc emulator --help)",
        add_help=False,
    )

    demo = command(
        "demo", "run a batch of operations against an in-process emulator and summarise it", global_options=False
    )
    from lro_grpc import _demo

    _demo.add_arguments(demo)
    demo.set_defaults(handler=_cmd_demo)
    return parser


# --- I/O context -------------------------------------------------------------------------------


@dataclasses.dataclass
class _Console:
    """Where a command writes, and whether they are terminals."""

    out: TextIO
    err: TextIO

    def print(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def print_json(self, value: object) -> None:
        self.print(json.dumps(value, indent=2, ensure_ascii=False))

    def interactive(self) -> bool:
        return _isatty(self.out) and _isatty(self.err)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


# --- API and client selection ------------------------------------------------------------------


def _api_of_name(name: str) -> str:
    return parse_operation_name(name).api


def _api_of_parent(parent: str) -> str:
    validate_list_parent(parent)
    return "financialservices" if parent.startswith("projects/") else "servicemanagement"


def _choose_api(given: str | None, inferred: Sequence[str]) -> str:
    if given is not None:
        return given
    kinds = sorted(set(inferred))
    if len(kinds) > 1:
        raise _UsageError(
            "the names belong to different APIs (" + " and ".join(kinds) + "): wait for each API separately"
        )
    return kinds[0]


def _client_options(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if args.endpoint is not None:
        options["endpoint"] = args.endpoint
    if args.rpc_timeout is not None:
        # The whole logical call, retries included, gets that long; so does each attempt.
        options["rpc_timeout"] = args.rpc_timeout
        options["retry_policy"] = dataclasses.replace(DEFAULT_RETRY_POLICY, timeout=args.rpc_timeout)
    return options


def _within(options: dict[str, Any], api: str, seconds: float) -> dict[str, Any]:
    """``options`` with every RPC, retries included, bounded by ``seconds``."""
    budget = max(seconds, _LEAST_RPC_TIMEOUT)
    bounded = dict(options)
    bounded["rpc_timeout"] = min(options.get("rpc_timeout") or get_api(api).rpc_timeout, budget)
    bounded["retry_policy"] = dataclasses.replace(options.get("retry_policy", DEFAULT_RETRY_POLICY), timeout=budget)
    return bounded


_LEAST_RPC_TIMEOUT = 0.05
"""The shortest RPC ``wait --timeout 0`` still makes (a timeout must be positive)."""


def _open_client(args: argparse.Namespace, api: str, options: dict[str, Any] | None = None) -> OperationsClient:
    try:
        return OperationsClient.for_api(api, **(options if options is not None else _client_options(args)))
    except ValueError as error:  # e.g. plaintext asked for towards a host that is not loopback
        raise _UsageError(str(error)) from error


# --- commands ----------------------------------------------------------------------------------


def _cmd_get(args: argparse.Namespace, console: _Console) -> int:
    api = _choose_api(args.api, [_api_of_name(args.name)])
    with _open_client(args, api) as client:
        handle = client.get(args.name)
        operation = handle.to_dict()
    if args.json:
        console.print_json(operation)
    else:
        console.print(_progress.render_operation_detail(operation))
    if handle.done and handle.error is not None:
        _error_line(console, str(handle.error))
        return ExitCode.OPERATION_FAILED
    return ExitCode.OK


def _cmd_list(args: argparse.Namespace, console: _Console) -> int:
    parent = args.parent
    if parent is None:
        if args.api != "servicemanagement":
            raise _UsageError("list needs a PARENT (projects/PROJECT/locations/LOCATION, or operations)")
        parent = "operations"
    api = _choose_api(args.api, [_api_of_parent(parent)])
    raw: list[operations_pb2.Operation] = []
    timed_out: RpcError | None = None
    with _open_client(args, api) as client:
        timeout = {} if args.timeout is None else {"timeout": args.timeout}
        pager = client.list(parent, filter=args.filter, page_size=args.page_size, **timeout)
        try:
            for operation in pager:
                raw.append(operation.raw)
                if args.limit is not None and len(raw) >= args.limit:
                    break
        except RpcError as error:
            if args.timeout is None or error.code is not grpc.StatusCode.DEADLINE_EXCEEDED:
                raise
            timed_out = error  # what was listed in time is printed, then the exit code says it is incomplete
        listing = list_to_dict(raw, client.registry, unreachable=pager.unreachable)
    if args.json:
        console.print_json(listing)
    else:
        if listing["operations"]:
            console.print(_progress.render_operation_table(listing["operations"]))
        else:
            matching = f" matching filter {args.filter!r}" if args.filter else ""
            console.print(f"no operations under {parent}{matching}")
        if listing.get("unreachable"):
            console.err.write(f"{PROG}: warning: unreachable: {', '.join(listing['unreachable'])}\n")
    if timed_out is not None:
        raise WaitTimeoutError(
            f"timed out after {args.timeout:g}s listing {parent!r}: {len(raw)} operations in "
            f"{pager.pages_fetched} pages printed, the listing is incomplete",
            timeout=args.timeout,
        ) from timed_out
    return ExitCode.OK


def _cmd_cancel(args: argparse.Namespace, console: _Console) -> int:
    api = _choose_api(args.api, [_api_of_name(args.name)])
    with _open_client(args, api) as client:
        client.cancel(args.name)
    if args.json:
        console.print_json({})
    else:
        console.print(f"cancellation requested: {args.name}")
    return ExitCode.OK


def _cmd_delete(args: argparse.Namespace, console: _Console) -> int:
    api = _choose_api(args.api, [_api_of_name(args.name)])
    with _open_client(args, api) as client:
        client.delete(args.name)
    if args.json:
        console.print_json({})
    else:
        console.print(f"deleted: {args.name}")
    return ExitCode.OK


def _wait_outcome(operation: operations_pb2.Operation) -> ExitCode:
    """The exit code one operation's end calls for."""
    if not operation.done:
        return ExitCode.TIMEOUT
    if not _core.operation_failed(operation):
        return ExitCode.OK
    for detail in operation.error.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Is(info.DESCRIPTOR) and detail.Unpack(info) and info.domain == SYNTHETIC_ERROR_DOMAIN:
            # Not the operation's own error: the waiter could not read it at all.
            return (
                ExitCode.NOT_FOUND
                if operation.error.code == grpc.StatusCode.NOT_FOUND.value[0]
                else ExitCode.RPC_FAILURE
            )
    return ExitCode.OPERATION_FAILED


def _poll_policy(args: argparse.Namespace, api: str) -> PollPolicy:
    if args.poll_interval is not None:
        return PollPolicy(initial=args.poll_interval, multiplier=1.0, maximum=args.poll_interval, jitter=0.0)
    return get_api(api).poll_policy


def _read_names(source: str) -> list[str]:
    try:
        if source == "-":
            text = sys.stdin.read()
        else:
            with open(source, encoding="utf-8") as file:
                text = file.read()
    except OSError as error:
        raise _UsageError(f"--names-from {source!r}: {error.strerror or error}") from error
    return [line.strip() for line in text.splitlines() if line.strip()]


def _cmd_wait(args: argparse.Namespace, console: _Console) -> int:
    names: list[str] = list(dict.fromkeys(args.names + (_read_names(args.names_from) if args.names_from else [])))
    journal_api: list[str] = []
    if args.journal is not None and os.path.exists(args.journal):
        summary = read_journal(args.journal)
        if not names:
            names = summary.names
        if summary.identity.api:
            journal_api = [summary.identity.api]
    if not names:
        raise _UsageError("wait needs operation names: NAME..., --names-from FILE, or a --journal FILE that has some")
    api = _choose_api(args.api, journal_api or [_api_of_name(name) for name in names])
    poll_policy = _poll_policy(args, api)
    options = _client_options(args)
    started = time.monotonic()
    # The first look counts against --timeout too: its attempts and retries end by then.
    first_options = options if args.timeout is None else _within(options, api, args.timeout)
    with _open_client(args, api, first_options) as client:
        registry = client.registry
        # One GetOperation first: a wrong endpoint, missing credentials or an unknown first
        # name fail here with their own exit code instead of being polled until the timeout.
        # A journal being resumed is not asked again (its outcomes need no RPC).
        first = None
        try:
            first = client.get(names[0]).raw if not journal_api else None
        except RpcError as error:
            if args.timeout is not None and error.code is grpc.StatusCode.DEADLINE_EXCEEDED:
                raise WaitTimeoutError(
                    f"timed out after {args.timeout:g}s: no answer to the first GetOperation of {names[0]!r}",
                    timeout=args.timeout,
                ) from error
            raise
    if len(names) == 1 and first is not None and first.done and args.journal is None:
        results = [first]
    else:
        remaining = None if args.timeout is None else max(0.0, args.timeout - (time.monotonic() - started))
        results = _wait_batch(args, console, api, names, poll_policy, options, registry, timeout=remaining)
    outcomes = [_wait_outcome(operation) for operation in results]
    dicts = [operation_to_dict(operation, registry) for operation in results]
    if args.json:
        console.print_json(dicts[0] if len(dicts) == 1 else {"operations": dicts})
    elif len(dicts) == 1:
        console.print(_progress.render_operation_detail(dicts[0]))
    else:
        console.print(_progress.render_operation_table(dicts))
    code = max(outcomes)
    if code != ExitCode.OK:
        _error_line(console, _wait_error_message(args, results, outcomes, code, registry))
    return code


def _wait_batch(
    args: argparse.Namespace,
    console: _Console,
    api: str,
    names: Sequence[str],
    poll_policy: PollPolicy,
    options: Mapping[str, Any],
    registry: TypeRegistry,
    *,
    timeout: float | None,
) -> list[operations_pb2.Operation]:
    results, _ = _progress.wait_all_with_progress(
        lambda: AsyncOperationsClient.for_api(api, **options),
        names,
        timeout=timeout,
        poll_policy=poll_policy,
        rpc_timeout=args.rpc_timeout if args.rpc_timeout is not None else get_api(api).rpc_timeout,
        registry=registry,
        bar_stream=console.err if not args.no_progress and console.interactive() else None,
        journal=args.journal,
    )
    return results


_OUTCOME_WORDS = {
    ExitCode.OPERATION_FAILED: "failed or were cancelled",
    ExitCode.TIMEOUT: "were still running",
    ExitCode.NOT_FOUND: "were not found",
    ExitCode.RPC_FAILURE: "could not be read",
}


def _wait_error_message(
    args: argparse.Namespace,
    results: Sequence[operations_pb2.Operation],
    outcomes: Sequence[ExitCode],
    code: ExitCode,
    registry: TypeRegistry,
) -> str:
    """One line saying why ``wait`` ends with ``code``, naming the first operation concerned."""
    concerned = [operation for operation, outcome in zip(results, outcomes, strict=True) if outcome == code]
    first = concerned[0]
    if code == ExitCode.TIMEOUT:
        detail = f"operation {first.name!r} is still running"
    elif code == ExitCode.OPERATION_FAILED:
        detail = str(Operation(first, registry=registry).error)
    else:
        detail = f"operation {first.name!r}: {first.error.message}"
    prefix = f"timed out after {args.timeout:g}s: " if code == ExitCode.TIMEOUT else ""
    if len(results) == 1:
        return prefix + detail
    return f"{prefix}{len(concerned)} of {len(results)} operations {_OUTCOME_WORDS[code]}; first: {detail}"


def _cmd_journal(args: argparse.Namespace, console: _Console) -> int:
    summary = read_journal(args.file)
    if args.json:
        registry = default_registry()
        for _, serialized in summary.outcomes:
            operation = operations_pb2.Operation.FromString(serialized)
            console.out.write(json.dumps(operation_to_dict(operation, registry), ensure_ascii=False) + "\n")
        console.out.flush()
        return ExitCode.OK
    rows = [
        ("journal", args.file),
        ("endpoint", summary.identity.endpoint or "(unknown)"),
        ("api", summary.identity.api or "(unknown)"),
        ("operations", str(len(summary.names))),
        ("pending", str(summary.pending)),
        ("succeeded", str(summary.succeeded)),
        ("failed", str(summary.failed)),
        ("cancelled", str(summary.cancelled)),
        ("delivered", str(summary.delivered)),
    ]
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        console.print(f"{label:<{width}}  {value}")
    return ExitCode.OK


def _cmd_demo(args: argparse.Namespace, console: _Console) -> int:
    from lro_grpc import _demo

    try:
        config = _demo.config_from_args(args)
    except (TypeError, ValueError) as error:
        raise _UsageError(str(error)) from error
    bar_stream = console.err if not args.no_progress and console.interactive() else None
    return _demo.run(config, out=console.out, bar_stream=bar_stream)


# --- entry point -------------------------------------------------------------------------------


_GLOBAL_OPTIONS_WITH_VALUE = ("--api", "--endpoint", "--rpc-timeout")


def _command_index(argv: Sequence[str]) -> int | None:
    """Index of the command word in ``argv``, skipping the global options before it."""
    index = 0
    while index < len(argv):
        token = argv[index]
        if token == "--":
            return index + 1 if index + 1 < len(argv) else None
        if not token.startswith("-") or token == "-":
            return index
        if token in _GLOBAL_OPTIONS_WITH_VALUE:
            index += 2
        else:
            index += 1
    return None


def _error_line(console: _Console, message: str) -> None:
    # One line: a multi-line server message would look like several errors.
    text = " ".join(str(message).split())
    console.err.write(f"{PROG}: error: {text}\n")
    console.err.flush()


def _run(argv: Sequence[str], console: _Console) -> int:
    command_index = _command_index(argv)
    if command_index is not None and argv[command_index] == "emulator":
        from lro_grpc import emulator

        return int(emulator.main(list(argv[command_index + 1 :])))
    parser = build_parser()
    try:
        args = parser.parse_args(list(argv))
    except SystemExit as exit_request:  # --help and --version print, then ask to exit
        code = exit_request.code
        return code if isinstance(code, int) else ExitCode.OK
    handler: Callable[[argparse.Namespace, _Console], int] = args.handler
    return int(handler(args, console))


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``lro-grpc`` with ``argv`` (default: ``sys.argv[1:]``) and return the exit code.

    Never raises for a usage, name, RPC, timeout or operation error: each
    becomes one ``lro-grpc: error: ...`` line on stderr and the exit code of
    :class:`ExitCode`.

    Args:
        argv: the arguments, without the program name.

    Returns:
        The process exit code (see :class:`ExitCode`).
    """
    arguments = list(sys.argv[1:] if argv is None else argv)
    console = _Console(out=sys.stdout, err=sys.stderr)
    try:
        return _run(arguments, console)
    except _UsageError as error:
        if error.parser is not None:
            console.err.write(error.parser.format_usage())
        _error_line(console, str(error))
        return ExitCode.USAGE
    except (InvalidNameError, JournalError) as error:
        _error_line(console, str(error))
        return ExitCode.USAGE
    except WaitTimeoutError as error:
        _error_line(console, str(error))
        return ExitCode.TIMEOUT
    except OperationNotFoundError as error:
        _error_line(console, str(error))
        return ExitCode.NOT_FOUND
    except RpcError as error:
        unreachable = "server unreachable: " if error.code is grpc.StatusCode.UNAVAILABLE else ""
        _error_line(console, unreachable + str(error))
        return ExitCode.RPC_FAILURE
    except OperationError as error:
        _error_line(console, str(error))
        return ExitCode.OPERATION_FAILED
    except KeyboardInterrupt:
        _error_line(console, "interrupted")
        return ExitCode.INTERRUPTED
    except BrokenPipeError:
        # The reader went away (e.g. `lro-grpc list ... | head`): nothing more to say.
        _silence_stdout()
        return ExitCode.OK
    except Exception as error:
        if _is_auth_error(error):
            _error_line(console, f"authentication failed: {error}")
            return ExitCode.RPC_FAILURE
        if isinstance(error, LroError):
            _error_line(console, str(error))
            return ExitCode.RPC_FAILURE
        if os.environ.get(DEBUG_ENV):
            raise
        _error_line(console, f"unexpected {type(error).__name__}: {error} (set {DEBUG_ENV}=1 for a traceback)")
        return ExitCode.RPC_FAILURE


def _is_auth_error(error: BaseException) -> bool:
    try:
        from google.auth import exceptions as auth_exceptions
    except ImportError:  # pragma: no cover - google-auth is a dependency
        return False
    return isinstance(error, auth_exceptions.GoogleAuthError)


def _silence_stdout() -> None:
    # Python flushes stdout at exit; pointing it at devnull avoids a second BrokenPipeError there.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass
