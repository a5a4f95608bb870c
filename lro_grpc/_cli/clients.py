"""Which API a command line speaks to, and the client it opens for it."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from typing import Any

from lro_grpc._cli.console import _UsageError
from lro_grpc.apis import get_api
from lro_grpc.client import OperationsClient
from lro_grpc.names import parse_operation_name, validate_list_parent
from lro_grpc.policies import DEFAULT_RETRY_POLICY


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
