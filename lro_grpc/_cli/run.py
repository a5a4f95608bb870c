"""The entry point of ``lro-grpc``: parse, run the command, turn every error into its exit code."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

import grpc

from lro_grpc._cli.console import ExitCode, _Console, _error_line, _silence_stdout, _UsageError
from lro_grpc._cli.parser import build_parser
from lro_grpc.errors import (
    CredentialsError,
    InvalidNameError,
    JournalError,
    LroError,
    OperationError,
    OperationNotFoundError,
    RpcError,
    WaitTimeoutError,
)

DEBUG_ENV = "LRO_GRPC_DEBUG"
"""Set this environment variable to ``1`` to get a traceback for unexpected errors."""


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
    except CredentialsError as error:
        _error_line(console, f"authentication failed: {error}")
        return ExitCode.RPC_FAILURE
    except WaitTimeoutError as error:
        _error_line(console, str(error))
        return ExitCode.TIMEOUT
    except OperationNotFoundError as error:
        _error_line(console, str(error))
        return ExitCode.NOT_FOUND
    except RpcError as error:
        if error.code is grpc.StatusCode.INVALID_ARGUMENT:
            # The server refused what the command line gave it (a filter, a page size): bad input.
            _error_line(console, f"the server refused the request: {error}")
            return ExitCode.USAGE
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
        # The reader went away outside a console write (those keep the command's code).
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
