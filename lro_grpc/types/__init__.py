"""The two APIs' message classes and gRPC stubs, as generated from ``protos/``.

These live in lro_grpc's private descriptor pool, beside (not instead of)
Google's official packages: use them to build requests for the APIs'
operation-starting RPCs, or in ``isinstance`` checks on what the clients
unpack::

    from lro_grpc.types import financialservices_v1_grpc
    from lro_grpc.types.financialservices_v1 import CreateInstanceRequest, OperationMetadata

    stub = financialservices_v1_grpc.AMLStub(channel)
    operation = stub.CreateInstance(
        CreateInstanceRequest(parent="projects/p/locations/us-central1", instance_id="i1")
    )
    op = client.get(operation.name)
    assert isinstance(op.metadata, OperationMetadata)

Each submodule imports as a module (``from lro_grpc.types.financialservices_v1 import
Instance``, for mypy too); ``from lro_grpc.types import financialservices_v1`` works as well.

Modules:
    financialservices_v1: ``google.cloud.financialservices.v1`` messages
        (``OperationMetadata``, ``Instance``, the AML request messages, ...).
    financialservices_v1_grpc: its ``AML`` service stub and servicer.
    servicemanagement_v1: ``google.api.servicemanagement.v1`` messages
        (``OperationMetadata``, ``Rollout``, ``SubmitConfigSourceResponse``, ...).
    servicemanagement_v1_grpc: its ``ServiceManager`` service stub and servicer.
    operations_grpc: the ``google.longrunning.Operations`` stub and servicer
        (its messages are googleapis-common-protos' ``google.longrunning.operations_pb2``).
"""

from __future__ import annotations

from lro_grpc.types import (
    financialservices_v1,
    financialservices_v1_grpc,
    operations_grpc,
    servicemanagement_v1,
    servicemanagement_v1_grpc,
)

__all__ = [
    "financialservices_v1",
    "financialservices_v1_grpc",
    "operations_grpc",
    "servicemanagement_v1",
    "servicemanagement_v1_grpc",
]
