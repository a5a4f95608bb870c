"""The ``lro-grpc wait`` command: one or many names, journal, progress bar, outcomes as they come."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

import grpc
from google.longrunning import operations_pb2
from google.rpc import error_details_pb2

from lro_grpc import _cli_output, _core, _progress
from lro_grpc._batch import SYNTHETIC_ERROR_DOMAIN, read_journal
from lro_grpc._cli.clients import _api_of_name, _choose_api, _client_options, _open_client, _within
from lro_grpc._cli.console import ExitCode, _Console, _error_line, _UsageError
from lro_grpc._json import operation_to_dict
from lro_grpc.aio import AsyncOperationsClient
from lro_grpc.apis import get_api
from lro_grpc.errors import RpcError, WaitTimeoutError
from lro_grpc.operation import Operation
from lro_grpc.policies import PollPolicy
from lro_grpc.registry import TypeRegistry


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
    names, journal_api = _names_to_wait_for(args)
    api = _choose_api(args.api, journal_api or [_api_of_name(name) for name in names])
    poll_policy = _poll_policy(args, api)
    options = _client_options(args)
    started = time.monotonic()
    first, registry = _first_look(args, api, options, names[0], resuming=bool(journal_api))
    if len(names) == 1 and first is not None and first.done and args.journal is None:
        results = [first]
    else:
        remaining = None if args.timeout is None else max(0.0, args.timeout - (time.monotonic() - started))
        results = _wait_batch(args, console, api, names, poll_policy, options, registry, timeout=remaining)
    outcomes = [_wait_outcome(operation) for operation in results]
    _print_results(args, console, [operation_to_dict(operation, registry) for operation in results])
    code = max(outcomes)
    if code != ExitCode.OK:
        _error_line(console, _wait_error_message(args, results, outcomes, code, registry))
    return code


def _names_to_wait_for(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """The names to wait for (given, read from ``--names-from``, else the journal's) and the journal's API, if any."""
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
    return names, journal_api


def _first_look(
    args: argparse.Namespace, api: str, options: dict[str, Any], name: str, *, resuming: bool
) -> tuple[operations_pb2.Operation | None, TypeRegistry]:
    """The first operation as one GetOperation sees it (``None`` when resuming a journal), and the registry."""
    # The first look counts against --timeout too: its attempts and retries end by then.
    first_options = options if args.timeout is None else _within(options, api, args.timeout)
    with _open_client(args, api, first_options) as client:
        # One GetOperation first: a wrong endpoint, missing credentials or an unknown first
        # name fail here with their own exit code instead of being polled until the timeout.
        # A journal being resumed is not asked again (its outcomes need no RPC).
        try:
            return (client.get(name).raw if not resuming else None), client.registry
        except RpcError as error:
            if args.timeout is not None and error.code is grpc.StatusCode.DEADLINE_EXCEEDED:
                raise WaitTimeoutError(
                    f"timed out after {args.timeout:g}s: no answer to the first GetOperation of {name!r}",
                    timeout=args.timeout,
                ) from error
            raise


def _print_results(args: argparse.Namespace, console: _Console, dicts: Sequence[dict[str, Any]]) -> None:
    """What ``wait`` prints at the end: one operation in full, else the table (or, with --json, those still running)."""
    if len(dicts) == 1:
        if args.json:
            console.print_json(dicts[0])
        else:
            console.print(_progress.render_operation_detail(dicts[0]))
    elif args.json:
        # Outcomes were printed as they came; what is left are the operations still running.
        for operation in dicts:
            if not operation.get("done"):
                console.print(_cli_output.json_line(operation))
    else:
        width = _cli_output.table_width(console.out, wide=args.wide)
        console.print(_progress.render_operation_table(dicts, width=width))


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
    def print_outcome(operation: operations_pb2.Operation) -> None:
        shown = operation_to_dict(operation, registry)
        console.print(_cli_output.json_line(shown) if args.json else _cli_output.outcome_line(shown))

    results, _ = _progress.wait_all_with_progress(
        lambda: AsyncOperationsClient.for_api(api, **options),
        names,
        timeout=timeout,
        poll_policy=poll_policy,
        rpc_timeout=args.rpc_timeout if args.rpc_timeout is not None else get_api(api).rpc_timeout,
        registry=registry,
        bar_stream=console.err if not args.no_progress and console.interactive() else None,
        journal=args.journal,
        # One operation's outcome is printed once, at the end, in full.
        on_outcome=print_outcome if len(names) > 1 else None,
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
