"""The one-shot commands of ``lro-grpc``: get, list, cancel, delete, journal and demo."""

from __future__ import annotations

import argparse
import json

import grpc
from google.longrunning import operations_pb2

from lro_grpc import _cli_output, _progress
from lro_grpc._batch import read_journal
from lro_grpc._cli.clients import _api_of_name, _api_of_parent, _choose_api, _open_client
from lro_grpc._cli.console import PROG, ExitCode, _Console, _error_line, _UsageError
from lro_grpc._json import list_to_dict, operation_to_dict
from lro_grpc.errors import RpcError, WaitTimeoutError
from lro_grpc.registry import default_registry


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
    elif _cli_output.names_only(console.out, wide=args.wide):
        # Piped: one whole name a line, for `xargs` and the like; nothing else on stdout.
        for operation in listing["operations"]:
            console.print(str(operation.get("name", "")))
    else:
        if listing["operations"]:
            width = _cli_output.table_width(console.out, wide=args.wide)
            console.print(_progress.render_operation_table(listing["operations"], width=width))
        else:
            matching = f" matching filter {args.filter!r}" if args.filter else ""
            console.print(f"no operations under {parent}{matching}")
    if not args.json and listing.get("unreachable"):
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


def _cmd_journal(args: argparse.Namespace, console: _Console) -> int:
    summary = read_journal(args.file)
    if args.json:
        registry = default_registry()
        for _, serialized in summary.outcomes:
            operation = operations_pb2.Operation.FromString(serialized)
            console.write(json.dumps(operation_to_dict(operation, registry), ensure_ascii=False) + "\n")
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
