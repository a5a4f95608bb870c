"""``google.api.servicemanagement.v1`` messages and enums (generated from ``protos/``).

``from lro_grpc.types.servicemanagement_v1 import OperationMetadata`` imports the class itself;
``from lro_grpc.types import servicemanagement_v1`` gives this module.
"""

from lro_grpc._generated.servicemanagement_v1_pb2 import *  # noqa: F403
