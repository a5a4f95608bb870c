"""The ``google.api.servicemanagement.v1.ServiceManager`` service: stub, servicer and registration, as generated."""

from lro_grpc._generated.servicemanagement_v1_pb2_grpc import (
    ServiceManager,
    ServiceManagerServicer,
    ServiceManagerStub,
    add_ServiceManagerServicer_to_server,
)

__all__ = ["ServiceManager", "ServiceManagerServicer", "ServiceManagerStub", "add_ServiceManagerServicer_to_server"]
