"""Where ``lro-grpc`` writes, its exit codes, and its usage error."""

from __future__ import annotations

import argparse
import dataclasses
import enum
import json
import os
import sys
from typing import TextIO

from lro_grpc import _cli_output

PROG = "lro-grpc"


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
    EMULATOR_FAILED = 6
    """The emulator could not start (``lro-grpc emulator``: port taken, unusable database)."""
    INTERRUPTED = 130
    """Interrupted (Ctrl-C, SIGINT): 128 + the signal number, as shells report it."""


class _UsageError(Exception):
    """A command line that does not parse; carries the parser whose usage to show."""

    def __init__(self, message: str, parser: argparse.ArgumentParser | None = None) -> None:
        super().__init__(message)
        self.parser = parser


@dataclasses.dataclass
class _Console:
    """Where a command writes, and whether they are terminals."""

    out: TextIO
    err: TextIO
    reader_gone: bool = False
    """Whether stdout's reader went away (``... | head``): later output is dropped."""

    def print(self, text: str = "") -> None:
        self.write(text + "\n")

    def write(self, text: str) -> None:
        """Write to stdout and flush; once the reader is gone, drop it (the command keeps its exit code)."""
        if self.reader_gone:
            return
        try:
            self.out.write(text)
            self.out.flush()
        except BrokenPipeError:
            self.reader_gone = True
            _silence_stdout()

    def print_json(self, value: object) -> None:
        self.print(json.dumps(value, indent=2, ensure_ascii=False))

    def interactive(self) -> bool:
        return _cli_output.is_terminal(self.out) and _cli_output.is_terminal(self.err)


def _error_line(console: _Console, message: str) -> None:
    # One line: a multi-line server message would look like several errors.
    text = " ".join(str(message).split())
    console.err.write(f"{PROG}: error: {text}\n")
    console.err.flush()


def _silence_stdout() -> None:
    # Python flushes stdout at exit; pointing it at devnull avoids a second BrokenPipeError there.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass
