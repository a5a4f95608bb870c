"""List scopes: which listing covers an operation (a Financial Services location, a Service Management service).

No I/O, and no import of the rest of the batch: the sweeper (:mod:`._sweep`)
and the done listings (:mod:`._done_listing`) both read it.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Final

__all__ = ["FINANCIAL_SERVICES_PAGE_SIZE", "SERVICE_MANAGEMENT_PAGE_SIZE", "ListScope", "list_scope"]

FINANCIAL_SERVICES_PAGE_SIZE: Final = 1000
"""Page size a sweep asks Financial Services for (a server that caps it lower is followed)."""

SERVICE_MANAGEMENT_PAGE_SIZE: Final = 100
"""Page size a sweep asks Service Management for: the operations.list maximum."""

_SM_PREFIXES: Final = ("rollouts.", "serviceConfigs.", "services.")
_SERVICE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]*")
_FS_SEPARATOR: Final = "/operations/"


@dataclasses.dataclass(frozen=True)
class ListScope:
    """The listing that covers an operation.

    Attributes:
        parent: the ``name`` of the ListOperations request.
        filter: the filter selecting the scope's running operations.
        page_size: the page size to ask for.
    """

    parent: str
    filter: str
    page_size: int


def list_scope(name: str) -> ListScope | None:
    """The list scope of a (validated) operation name, or ``None`` if it cannot be told.

    * Financial Services ``projects/P/locations/L/operations/ID``: parent
      ``projects/P/locations/L``, filter ``done=false``.
    * Service Management ``operations/rollouts.<service>:<id>``,
      ``operations/serviceConfigs.<service>:<id>`` and
      ``operations/services.<service>:<id>``: parent ``operations``, filter
      ``serviceName=<service> AND status=in_progress`` (the operations.list
      grammar), at most 100 a page. Other Service Management ids have no
      service to list by.
    """
    if name.startswith("projects/"):
        parent, separator, _ = name.rpartition(_FS_SEPARATOR)
        if not separator or parent.count("/") != 3:
            return None
        return ListScope(parent, "done=false", FINANCIAL_SERVICES_PAGE_SIZE)
    if name.startswith("operations/"):
        operation_id = name[len("operations/") :]
        for prefix in _SM_PREFIXES:
            if operation_id.startswith(prefix):
                service, colon, rest = operation_id[len(prefix) :].partition(":")
                if colon and rest and _SERVICE_NAME.fullmatch(service):
                    return ListScope(
                        "operations", f"serviceName={service} AND status=in_progress", SERVICE_MANAGEMENT_PAGE_SIZE
                    )
                return None
    return None
