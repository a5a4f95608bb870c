"""The argument parser of ``lro-grpc``: global options, one sub-parser per command."""

from __future__ import annotations

import argparse
from typing import NoReturn

from lro_grpc._cli.commands import _cmd_cancel, _cmd_delete, _cmd_demo, _cmd_get, _cmd_journal, _cmd_list
from lro_grpc._cli.console import PROG, _UsageError
from lro_grpc._cli.wait import _cmd_wait
from lro_grpc._version import __version__

API_CHOICES = ("financialservices", "servicemanagement")


_EXIT_CODES_HELP = """\
exit codes:
    0  success (for get: the operation is running or succeeded)
    1  the operation failed or was cancelled
    2  usage error, a malformed name or parent, or INVALID_ARGUMENT from the server
    3  timed out (wait --timeout, list --timeout)
    4  not found: no such operation, or its record expired
    5  RPC or authentication failure
    6  the emulator could not start (lro-grpc emulator)
  130  interrupted (Ctrl-C)

environment:
  LRO_GRPC_EMULATOR_HOST  HOST:PORT of a local emulator (plaintext), like --endpoint
"""


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


def _add_wide_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--wide",
        action="store_true",
        help="print the full table, every cell whole, whatever the output is "
        "(default: fitted to the terminal; bare names, one per line, when piped)",
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
    _add_wide_option(list_)
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
    _add_wide_option(wait)
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
