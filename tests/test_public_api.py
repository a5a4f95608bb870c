"""The public API: ``lro_grpc.__all__`` is pinned, and every public symbol is documented."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

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
    for client_class in (lro_grpc.OperationsClient, lro_grpc.AsyncOperationsClient):
        for method in ("as_completed", "wait_all"):
            assert {"timeout", "poll_policy"} <= set(inspect.signature(getattr(client_class, method)).parameters)


def test_types_module_names_the_classes_the_clients_unpack_to() -> None:
    from lro_grpc import default_registry, types

    registry = default_registry()
    metadata = registry.message_class(lro_grpc.type_url_of("google.cloud.financialservices.v1.OperationMetadata"))
    assert metadata is types.financialservices_v1.OperationMetadata
    rollout = registry.message_class(lro_grpc.type_url_of("google.api.servicemanagement.v1.Rollout"))
    assert rollout is types.servicemanagement_v1.Rollout
    assert callable(types.financialservices_v1_grpc.AMLStub)
    assert callable(types.servicemanagement_v1_grpc.ServiceManagerStub)
    assert callable(types.operations_grpc.OperationsStub)


def _lro_imports(module_file: str) -> set[str]:
    """The ``lro_grpc`` modules a file imports, at run time or for type checking alike."""
    import ast
    from pathlib import Path

    tree = ast.parse((Path(lro_grpc.__file__).parent / module_file).read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module is not None and node.module.startswith("lro_grpc"):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("lro_grpc"))
    return found


def test_imports_run_one_way_between_clients_and_handles() -> None:
    # Handles call a Protocol their client implements; the asyncio client does not import the sync one.
    assert not {"lro_grpc.client", "lro_grpc.aio"} & _lro_imports("operation.py")
    assert "lro_grpc.client" not in _lro_imports("aio.py")
    assert not {"lro_grpc.client", "lro_grpc.aio"} & _lro_imports("_client_base.py")


def _modules_after(statement: str) -> set[str]:
    code = f"import sys\n{statement}\nprint('\\n'.join(sorted(sys.modules)))"
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    return set(completed.stdout.split())


@pytest.mark.slow  # a subprocess
def test_import_leaves_the_async_client_and_version_metadata_for_later() -> None:
    # `import lro_grpc` must stay cheap for synchronous programs (benchmarks/import_time.py
    # measures it): the asyncio client and importlib.metadata are loaded only when used.
    loaded = _modules_after("import lro_grpc")
    assert "lro_grpc.aio" not in loaded
    assert "importlib.metadata" not in loaded
    assert "platform" not in loaded
    assert "google.protobuf.json_format" not in loaded  # the REST JSON form, loaded by to_dict()/to_json()
    # ... and come on first use of their names, like any attribute.
    later = _modules_after("from lro_grpc import AsyncOperationsClient, BatchWaiter")
    assert {"lro_grpc.aio", "lro_grpc._batch"} <= later


@pytest.mark.slow  # subprocesses
def test_import_leaves_what_a_get_does_not_need_for_later() -> None:
    # Neither a client's construction nor a GetOperation needs these: the two APIs' message
    # modules (the default registry's table is built on first use), error details (read
    # from a failure's trailers), telemetry (loaded by the first RPC), client options
    # (for_api), the batch's source and timing.
    deferred = {
        "lro_grpc._generated.financialservices_v1_pb2",
        "lro_grpc._generated.servicemanagement_v1_pb2",
        "google.rpc.error_details_pb2",
        "lro_grpc._telemetry",
        "lro_grpc._client_options",
        "lro_grpc._batch._source",
        "lro_grpc._batch._timing",
    }
    assert not deferred & _modules_after("import lro_grpc")
    # ... and each comes when used.
    used = _modules_after(
        "import lro_grpc, lro_grpc._batch, lro_grpc._core as core\n"
        "lro_grpc.default_registry()\n"
        "core.retry_info_delay([('grpc-status-details-bin', b'')])\n"
        "lro_grpc._batch.BatchSource\n"
    )
    assert {
        "lro_grpc._generated.financialservices_v1_pb2",
        "lro_grpc._generated.servicemanagement_v1_pb2",
        "google.rpc.error_details_pb2",
        "lro_grpc._batch._source",
    } <= used


def test_lazy_names_resolve_to_the_classes_of_their_modules() -> None:
    from lro_grpc import _batch, aio

    assert lro_grpc.AsyncOperationsClient is aio.AsyncOperationsClient
    assert lro_grpc.BatchWaiter is _batch.BatchWaiter
    assert set(lro_grpc.__all__) <= set(dir(lro_grpc))
    try:
        lro_grpc.NoSuchName  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as error:
        assert "NoSuchName" in str(error)
    else:
        raise AssertionError("no AttributeError for an unknown name")
