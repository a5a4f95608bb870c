"""``google.cloud.financialservices.v1`` messages and enums (generated from ``protos/``).

``from lro_grpc.types.financialservices_v1 import OperationMetadata`` imports the class itself;
``from lro_grpc.types import financialservices_v1`` gives this module.
"""

from lro_grpc._generated.financialservices_v1_pb2 import *  # noqa: F403
