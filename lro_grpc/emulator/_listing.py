"""``ListOperations`` queries, without I/O: scope, page size, filter and signed page tokens.

A request becomes a :class:`ListQuery`; the store runs it (its filter compiles
to SQL, see :mod:`lro_grpc.emulator._filters`) and the query mints the token
of the next page. Tokens are opaque and tamper-proof: the position, signed with
an HMAC over the position, the list scope and the normalized filter, keyed by
a secret of the emulator's own.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import hmac
import secrets

from google.longrunning import operations_pb2

from lro_grpc.emulator import _filters
from lro_grpc.emulator._filters import ListFilter
from lro_grpc.emulator._limits import shown
from lro_grpc.emulator._model import (
    FINANCIAL_SERVICES,
    FS_PARENT,
    SERVICE_MANAGEMENT,
    SERVICE_MANAGEMENT_COLLECTION,
    invalid,
)

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "SM_DEFAULT_PAGE_SIZE",
    "SM_MAX_PAGE_SIZE",
    "ListQuery",
    "new_page_token_secret",
    "parse_filter",
    "parse_list_request",
]

DEFAULT_PAGE_SIZE = 100
"""Financial Services operations per ``ListOperations`` page when the request's ``page_size`` is 0."""
MAX_PAGE_SIZE = 1000
"""Largest Financial Services ``ListOperations`` page; a larger ``page_size`` is lowered to this."""
SM_DEFAULT_PAGE_SIZE = 50
"""Service Management operations per page when ``page_size`` is 0 (the ``operations.list`` reference)."""
SM_MAX_PAGE_SIZE = 100
"""Largest Service Management page; as the reference says "the maximum value is 100", larger asks are lowered to it."""

_PROCESS_TOKEN_SECRET = secrets.token_bytes(32)
_TOKEN_MAC_BYTES = 16


def new_page_token_secret() -> bytes:
    """A fresh random key for signing page tokens (one per emulator)."""
    return secrets.token_bytes(32)


@dataclasses.dataclass(frozen=True)
class ListQuery:
    """A validated ``ListOperationsRequest``.

    Attributes:
        collection: ``projects/P/locations/L`` or ``operations``.
        filter: the parsed filter (a predicate over records).
        service_name: the filter's top-level ``serviceName`` (Service Management), else ``None``.
        page_size: operations per page.
        after_seq: list operations inserted after this sequence number.
        fingerprint: ties page tokens to the query they were issued for (scope and filter).
        token_secret: the key page tokens are signed with.
    """

    collection: str
    filter: ListFilter
    service_name: str | None
    page_size: int
    after_seq: int
    fingerprint: str
    token_secret: bytes = dataclasses.field(default=_PROCESS_TOKEN_SECRET, repr=False)

    @property
    def api(self) -> str:
        """``"financialservices"`` or ``"servicemanagement"``."""
        return SERVICE_MANAGEMENT if self.collection == SERVICE_MANAGEMENT_COLLECTION else FINANCIAL_SERVICES

    def next_page_token(self, last_seq: int) -> str:
        """The opaque, signed token for the page after the one ending at ``last_seq``."""
        position = last_seq.to_bytes(8, "big")
        raw = position + _token_mac(self.token_secret, position, self.fingerprint)
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def position_of(self, token: str) -> int:
        """The sequence number a token of this query resumes after.

        Raises:
            RequestError: ``INVALID_ARGUMENT`` naming ``page_token`` for a token this
                emulator did not issue for this query (forged, altered, or issued for
                another ``name`` or ``filter``).
        """
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            raw = b""
        position, mac = raw[:8], raw[8:]
        if len(position) != 8 or not hmac.compare_digest(
            mac, _token_mac(self.token_secret, position, self.fingerprint)
        ):
            raise invalid(f"page_token: not a token this server issued for this name and filter, got {shown(token)}")
        return int.from_bytes(position, "big")


def _token_mac(secret: bytes, position: bytes, fingerprint: str) -> bytes:
    return hmac.new(secret, position + b"\0" + fingerprint.encode(), hashlib.sha256).digest()[:_TOKEN_MAC_BYTES]


def _list_collection(name: str) -> str:
    # The emulator serves both APIs on one Operations service, so the name picks the API: a
    # Financial Services parent (projects/P/locations/L), else Service Management, whose
    # reference says its list's name is "Not used" (any value is accepted).
    if name.startswith("projects/"):
        parent = name.removesuffix("/operations")
        if FS_PARENT.fullmatch(parent):
            return parent
        raise invalid(f"name: expected a list parent 'projects/{{project}}/locations/{{location}}', got {shown(name)}")
    return SERVICE_MANAGEMENT_COLLECTION


def parse_filter(text: str, api: str = FINANCIAL_SERVICES) -> ListFilter:
    """Parse a list filter of ``api`` (see :mod:`lro_grpc.emulator._filters` for the grammars).

    Raises:
        RequestError: ``INVALID_ARGUMENT`` naming ``filter`` and the bad term.
    """
    try:
        return _filters.parse_filter(text, api=api)
    except _filters.FilterError as error:
        raise invalid(error.message) from None


def parse_list_request(
    request: operations_pb2.ListOperationsRequest,
    *,
    page_token_secret: bytes | None = None,
    obey_filter: bool = True,
) -> ListQuery:
    """Validate a ``ListOperationsRequest``.

    Args:
        request: the request.
        page_token_secret: the key page tokens are signed with (the emulator's own);
            default a key shared by this process.
        obey_filter: ``False`` ignores the ``filter`` (lists the whole scope, like
            a server that does not filter; a fault to inject).

    Raises:
        RequestError: ``INVALID_ARGUMENT`` naming ``name``, ``filter``,
            ``page_size`` or ``page_token``.
    """
    collection = _list_collection(request.name)
    api = SERVICE_MANAGEMENT if collection == SERVICE_MANAGEMENT_COLLECTION else FINANCIAL_SERVICES
    list_filter = parse_filter(request.filter, api) if obey_filter else ListFilter(request.filter, None)
    if request.page_size < 0:
        raise invalid(f"page_size: must be >= 0, got {request.page_size}")
    if api == SERVICE_MANAGEMENT:
        page_size = min(request.page_size or SM_DEFAULT_PAGE_SIZE, SM_MAX_PAGE_SIZE)
    else:
        page_size = min(request.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    query = ListQuery(
        collection=collection,
        filter=list_filter,
        service_name=list_filter.service_name,
        page_size=page_size,
        after_seq=0,
        fingerprint=f"{collection}\0{list_filter.canonical()}",
        token_secret=_PROCESS_TOKEN_SECRET if page_token_secret is None else page_token_secret,
    )
    if request.page_token:
        query = dataclasses.replace(query, after_seq=query.position_of(request.page_token))
    return query
