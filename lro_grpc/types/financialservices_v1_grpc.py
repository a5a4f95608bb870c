"""The ``google.cloud.financialservices.v1.AML`` service: stub, servicer and registration, as generated."""

from lro_grpc._generated.financialservices_v1_pb2_grpc import AML, AMLServicer, AMLStub, add_AMLServicer_to_server

__all__ = ["AML", "AMLServicer", "AMLStub", "add_AMLServicer_to_server"]
