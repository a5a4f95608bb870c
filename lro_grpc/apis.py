"""Per-API presets: default host, OAuth scopes, metadata type and polling defaults.

Both APIs this library knows speak ``google.longrunning.Operations``; they
differ in where they live, which metadata message their operations carry and
how often their documentation says to poll.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType
from typing import get_args

from lro_grpc.names import ApiName
from lro_grpc.policies import FINANCIAL_SERVICES_POLL_POLICY, SERVICE_MANAGEMENT_POLL_POLICY, PollPolicy

__all__ = [
    "APIS",
    "CLOUD_PLATFORM_SCOPE",
    "FINANCIAL_SERVICES",
    "SERVICE_MANAGEMENT",
    "ApiName",
    "ApiPreset",
    "get_api",
]

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
"""The OAuth scope both APIs accept."""


@dataclasses.dataclass(frozen=True)
class ApiPreset:
    """Defaults for one API.

    Attributes:
        name: the API's short name, e.g. ``"financialservices"``.
        default_host: ``host:port`` of the public endpoint (TLS).
        scopes: OAuth scopes requested for Application Default Credentials.
        metadata_type: full protobuf name of the metadata message every operation of the API carries.
        poll_policy: how often to poll an operation of this API by default.
        rpc_timeout: per-RPC timeout, in seconds, for GetOperation/ListOperations and the other
            operation RPCs (the APIs' published client configuration uses 10 s).
    """

    name: ApiName
    default_host: str
    scopes: tuple[str, ...]
    metadata_type: str
    poll_policy: PollPolicy
    rpc_timeout: float = 10.0


FINANCIAL_SERVICES = ApiPreset(
    name="financialservices",
    default_host="financialservices.googleapis.com:443",
    scopes=(CLOUD_PLATFORM_SCOPE,),
    metadata_type="google.cloud.financialservices.v1.OperationMetadata",
    poll_policy=FINANCIAL_SERVICES_POLL_POLICY,
)
"""Financial Services API (``google.cloud.financialservices.v1``)."""

SERVICE_MANAGEMENT = ApiPreset(
    name="servicemanagement",
    default_host="servicemanagement.googleapis.com:443",
    scopes=(CLOUD_PLATFORM_SCOPE,),
    metadata_type="google.api.servicemanagement.v1.OperationMetadata",
    poll_policy=SERVICE_MANAGEMENT_POLL_POLICY,
)
"""Service Management API (``google.api.servicemanagement.v1``)."""

APIS: Mapping[str, ApiPreset] = MappingProxyType(
    {FINANCIAL_SERVICES.name: FINANCIAL_SERVICES, SERVICE_MANAGEMENT.name: SERVICE_MANAGEMENT}
)
"""Every preset, by short name."""


def get_api(api: object) -> ApiPreset:
    """The preset for ``api``, given as a short name or an :class:`ApiPreset`.

    Raises:
        TypeError: ``api`` is neither a string nor an :class:`ApiPreset`.
        ValueError: ``api`` names no known API.
    """
    if isinstance(api, ApiPreset):
        return api
    if not isinstance(api, str):
        raise TypeError(f"api must be one of {get_args(ApiName)!r} or an ApiPreset, got {api!r}")
    try:
        return APIS[api]
    except KeyError:
        raise ValueError(f"unknown api {api!r}: expected one of {sorted(APIS)!r}") from None
