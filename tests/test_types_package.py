"""``lro_grpc.types`` is a package: its submodules import as modules, the old spelling keeps working."""

from __future__ import annotations

import importlib
import subprocess
import sys
from types import ModuleType

import pytest

from lro_grpc import default_registry, type_url_of
from lro_grpc._generated import financialservices_v1_pb2, servicemanagement_v1_pb2

SUBMODULES = [
    "financialservices_v1",
    "financialservices_v1_grpc",
    "servicemanagement_v1",
    "servicemanagement_v1_grpc",
    "operations_grpc",
]


@pytest.mark.parametrize("name", SUBMODULES)
def test_each_submodule_imports_as_a_module(name: str) -> None:
    module = importlib.import_module(f"lro_grpc.types.{name}")
    assert isinstance(module, ModuleType)
    assert module.__name__ == f"lro_grpc.types.{name}"
    import lro_grpc.types

    assert getattr(lro_grpc.types, name) is module


def test_classes_import_from_the_submodules_in_a_fresh_interpreter() -> None:
    # A fresh process: nothing else has imported lro_grpc.types before this line.
    code = (
        "from lro_grpc.types.financialservices_v1 import Instance, OperationMetadata\n"
        "from lro_grpc.types.servicemanagement_v1 import Rollout\n"
        "from lro_grpc.types.financialservices_v1_grpc import AMLStub\n"
        "from lro_grpc.types.operations_grpc import OperationsStub\n"
        "print(Instance.DESCRIPTOR.full_name, OperationMetadata.DESCRIPTOR.full_name, Rollout.DESCRIPTOR.full_name)\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.split() == [
        "google.cloud.financialservices.v1.Instance",
        "google.cloud.financialservices.v1.OperationMetadata",
        "google.api.servicemanagement.v1.Rollout",
    ]


def test_the_submodules_hold_the_classes_the_registry_unpacks_to() -> None:
    from lro_grpc.types import financialservices_v1 as fs_module
    from lro_grpc.types.financialservices_v1 import Instance, OperationMetadata
    from lro_grpc.types.servicemanagement_v1 import Rollout

    assert Instance is financialservices_v1_pb2.Instance is fs_module.Instance
    assert Rollout is servicemanagement_v1_pb2.Rollout
    registry = default_registry()
    assert registry.message_class(type_url_of(OperationMetadata.DESCRIPTOR.full_name)) is OperationMetadata
    assert registry.message_class(type_url_of(Rollout.DESCRIPTOR.full_name)) is Rollout


def test_enums_and_nested_values_are_exported() -> None:
    from lro_grpc.types import financialservices_v1 as fs

    assert fs.COMMERCIAL == financialservices_v1_pb2.COMMERCIAL
    assert fs.LineOfBusiness.Name(fs.RETAIL) == "RETAIL"
