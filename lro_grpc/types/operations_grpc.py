"""The ``google.longrunning.Operations`` service: stub, servicer and registration, as generated.

Its messages are googleapis-common-protos' ``google.longrunning.operations_pb2``.
"""

from lro_grpc._generated.operations_pb2_grpc import (
    Operations,
    OperationsServicer,
    OperationsStub,
    add_OperationsServicer_to_server,
)

__all__ = ["Operations", "OperationsServicer", "OperationsStub", "add_OperationsServicer_to_server"]
