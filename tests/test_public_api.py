"""The public API: ``lro_grpc.__all__`` is pinned, and every public symbol is documented."""

from __future__ import annotations

import inspect

import lro_grpc

EXPECTED_ALL = [
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
    "Deadline",
    "InvalidNameError",
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


def test_all_is_pinned() -> None:
    assert lro_grpc.__all__ == EXPECTED_ALL


def test_every_name_in_all_exists() -> None:
    for name in lro_grpc.__all__:
        assert hasattr(lro_grpc, name), name


def test_public_classes_and_functions_are_documented() -> None:
    for name in lro_grpc.__all__:
        value = getattr(lro_grpc, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert inspect.getdoc(value), f"{name} has no docstring"
            if inspect.isclass(value):
                for attribute, member in vars(value).items():
                    if attribute.startswith("_") or not (inspect.isfunction(member) or isinstance(member, property)):
                        continue
                    assert inspect.getdoc(member), f"{name}.{attribute} has no docstring"


def test_contract_names_from_the_issue() -> None:
    for client_class in (lro_grpc.OperationsClient, lro_grpc.AsyncOperationsClient):
        for method in ("for_api", "get", "list", "cancel", "delete", "wait", "operation", "close"):
            assert callable(getattr(client_class, method)), (client_class, method)
        assert "page_size" in inspect.signature(client_class.list).parameters
        assert "filter" in inspect.signature(client_class.list).parameters
        assert "timeout" in inspect.signature(client_class.wait).parameters
        assert "poll_policy" in inspect.signature(client_class.wait).parameters
    for handle_class in (lro_grpc.Operation, lro_grpc.AsyncOperation):
        for method in ("result", "refresh", "cancel", "delete", "wait", "to_json", "to_dict", "from_json"):
            assert callable(getattr(handle_class, method)), (handle_class, method)
        assert {"timeout", "poll_policy"} <= set(inspect.signature(handle_class.result).parameters)
