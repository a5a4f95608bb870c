"""lro-grpc: typed clients for Google long-running operations over gRPC.

Example::

    from lro_grpc import OperationsClient

    with OperationsClient.for_api("financialservices") as client:
        op = client.get("projects/my-proj/locations/us-central1/operations/op-123")
        instance = op.result(timeout=600)

Everything public is importable from here; the submodules beginning with an
underscore are private.
"""

from __future__ import annotations

import logging as _logging
from typing import TYPE_CHECKING, Any

from lro_grpc._channels import EMULATOR_HOST_ENV
from lro_grpc._core import USE_CLIENT_DEFAULT
from lro_grpc._version import __version__
from lro_grpc.apis import (
    APIS,
    CLOUD_PLATFORM_SCOPE,
    FINANCIAL_SERVICES,
    SERVICE_MANAGEMENT,
    ApiPreset,
    get_api,
)
from lro_grpc.client import DEFAULT_RPC_TIMEOUT, OperationPage, OperationPager, OperationsClient
from lro_grpc.errors import (
    AnyDecodeError,
    BatchTimeoutError,
    CredentialsError,
    InvalidNameError,
    JournalError,
    LroError,
    OperationCancelledError,
    OperationError,
    OperationNotFoundError,
    RpcError,
    TypeMismatchError,
    TypeRegistryError,
    UnknownTypeError,
    WaitTimeoutError,
)
from lro_grpc.names import (
    FINANCIAL_SERVICES_LOCATIONS,
    ApiName,
    OperationName,
    parse_operation_name,
    validate_list_parent,
    validate_operation_name,
)
from lro_grpc.operation import AsyncOperation, BaseOperation, Operation
from lro_grpc.policies import (
    DEFAULT_POLL_POLICY,
    DEFAULT_RETRY_POLICY,
    FINANCIAL_SERVICES_POLL_POLICY,
    SERVICE_MANAGEMENT_POLL_POLICY,
    Deadline,
    PollPolicy,
    RetryPolicy,
)
from lro_grpc.registry import TypeRegistry, default_registry, type_url_of

# The library's records go where the application's logging configuration sends them;
# with none, nowhere (not to stderr through logging's last-resort handler).
_logging.getLogger("lro_grpc").addHandler(_logging.NullHandler())

if TYPE_CHECKING:
    from lro_grpc._batch import BatchProgress, BatchScheduler, BatchWaiter
    from lro_grpc.aio import AsyncOperationPager, AsyncOperationsClient

# Imported on first use (module __getattr__), so a synchronous program that never
# waits on a batch does not pay for the batch waiter and the asyncio client.
_LAZY: dict[str, str] = {
    "AsyncOperationPager": "lro_grpc.aio",
    "AsyncOperationsClient": "lro_grpc.aio",
    "BatchProgress": "lro_grpc._batch",
    "BatchScheduler": "lro_grpc._batch",
    "BatchWaiter": "lro_grpc._batch",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'lro_grpc' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "APIS",
    "CLOUD_PLATFORM_SCOPE",
    "DEFAULT_POLL_POLICY",
    "DEFAULT_RETRY_POLICY",
    "DEFAULT_RPC_TIMEOUT",
    "EMULATOR_HOST_ENV",
    "FINANCIAL_SERVICES",
    "FINANCIAL_SERVICES_LOCATIONS",
    "FINANCIAL_SERVICES_POLL_POLICY",
    "SERVICE_MANAGEMENT",
    "SERVICE_MANAGEMENT_POLL_POLICY",
    "USE_CLIENT_DEFAULT",
    "AnyDecodeError",
    "ApiName",
    "ApiPreset",
    "AsyncOperation",
    "AsyncOperationPager",
    "AsyncOperationsClient",
    "BaseOperation",
    "BatchProgress",
    "BatchScheduler",
    "BatchTimeoutError",
    "BatchWaiter",
    "CredentialsError",
    "Deadline",
    "InvalidNameError",
    "JournalError",
    "LroError",
    "Operation",
    "OperationCancelledError",
    "OperationError",
    "OperationName",
    "OperationNotFoundError",
    "OperationPage",
    "OperationPager",
    "OperationsClient",
    "PollPolicy",
    "RetryPolicy",
    "RpcError",
    "TypeMismatchError",
    "TypeRegistry",
    "TypeRegistryError",
    "UnknownTypeError",
    "WaitTimeoutError",
    "__version__",
    "default_registry",
    "get_api",
    "parse_operation_name",
    "type_url_of",
    "validate_list_parent",
    "validate_operation_name",
]
