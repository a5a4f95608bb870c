"""Requests for the five ``google.longrunning.Operations`` RPCs, their headers, and list paging state."""

from __future__ import annotations

import dataclasses
import enum
import functools
from typing import Final, Literal

import grpc
from google.longrunning import operations_pb2
from google.protobuf import duration_pb2

from lro_grpc.errors import RpcError
from lro_grpc.names import routing_header_value

__all__ = [
    "API_CLIENT_HEADER",
    "METHODS",
    "READ_METHODS",
    "ROUTING_HEADER",
    "USE_CLIENT_DEFAULT",
    "ListPageState",
    "Method",
    "UseClientDefault",
    "api_client_header",
    "cancel_request",
    "check_rpc_timeout",
    "delete_request",
    "get_request",
    "request_metadata",
    "wait_request",
]

Method = Literal["GetOperation", "ListOperations", "CancelOperation", "DeleteOperation", "WaitOperation"]
"""Short names of the ``google.longrunning.Operations`` RPCs."""

METHODS: Final[tuple[Method, ...]] = (
    "GetOperation",
    "ListOperations",
    "CancelOperation",
    "DeleteOperation",
    "WaitOperation",
)
"""Every RPC of ``google.longrunning.Operations``; each client wraps all of them."""

READ_METHODS: Final[frozenset[str]] = frozenset({"GetOperation", "ListOperations", "WaitOperation"})
"""The reads: ``DEADLINE_EXCEEDED`` is retried on these only."""

ROUTING_HEADER: Final = "x-goog-request-params"
API_CLIENT_HEADER: Final = "x-goog-api-client"


class UseClientDefault(enum.Enum):
    """Type of :data:`USE_CLIENT_DEFAULT`."""

    USE_CLIENT_DEFAULT = "USE_CLIENT_DEFAULT"

    def __repr__(self) -> str:
        return "USE_CLIENT_DEFAULT"


USE_CLIENT_DEFAULT: Final = UseClientDefault.USE_CLIENT_DEFAULT
"""Marks an argument as "not given: use the client's setting", apart from ``None`` ("no limit")."""


@functools.cache
def api_client_header() -> str:
    """The ``x-goog-api-client`` value: Python, grpcio and lro-grpc versions (computed on first use)."""
    import platform  # only here: not worth its import time for every ``import lro_grpc``

    from lro_grpc._version import __version__

    return f"gl-python/{platform.python_version()} grpc/{grpc.__version__} gax/lro-grpc-{__version__}"


@functools.lru_cache(maxsize=1024)
def request_metadata(routing_name: str) -> tuple[tuple[str, str], ...]:
    """Headers for one RPC about ``routing_name`` (an operation name or a list parent).

    The routing header is :func:`~lro_grpc.names.routing_header_value`; it is
    left out when the value is empty. Built once per name: the last 1,024
    names' headers are kept (an immutable tuple, shared by every call about
    the name).
    """
    if not routing_name:
        return ((API_CLIENT_HEADER, api_client_header()),)
    return ((ROUTING_HEADER, routing_header_value(routing_name)), (API_CLIENT_HEADER, api_client_header()))


def get_request(name: str) -> operations_pb2.GetOperationRequest:
    """A GetOperation request (``name`` already validated)."""
    return operations_pb2.GetOperationRequest(name=name)


def cancel_request(name: str) -> operations_pb2.CancelOperationRequest:
    """A CancelOperation request (``name`` already validated)."""
    return operations_pb2.CancelOperationRequest(name=name)


def delete_request(name: str) -> operations_pb2.DeleteOperationRequest:
    """A DeleteOperation request (``name`` already validated)."""
    return operations_pb2.DeleteOperationRequest(name=name)


def wait_request(name: str, timeout: float) -> operations_pb2.WaitOperationRequest:
    """A WaitOperation request asking the server to wait up to ``timeout`` seconds."""
    request = operations_pb2.WaitOperationRequest(name=name)
    request.timeout.CopyFrom(_duration(timeout))
    return request


def _duration(seconds: float) -> duration_pb2.Duration:
    duration = duration_pb2.Duration()
    duration.FromNanoseconds(round(seconds * 1e9))
    return duration


def check_rpc_timeout(value: object) -> float | None:
    """Validate a per-RPC timeout: positive seconds, or ``None`` for "bounded by the deadline only".

    Raises:
        TypeError: not a number.
        ValueError: not positive and finite.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"rpc_timeout must be seconds (int/float) or None, got {value!r}")
    if not 0 < value < float("inf"):
        raise ValueError(f"rpc_timeout must be positive and finite, got {value!r}")
    return float(value)


MAX_EMPTY_PAGES: Final = 100
"""Empty pages in a row, each with a ``next_page_token``, that a listing follows at most.

A server may answer an empty page and a token while it scans (a filter that
matches little); one that does so more than a hundred times in a row is
treated as never ending: the next empty page raises ``RpcError`` (``INTERNAL``).
"""


@dataclasses.dataclass
class ListPageState:
    """Where a lazy ListOperations iteration stands.

    Attributes:
        parent: the validated list parent.
        filter: the server-side filter expression.
        page_size: page size asked for (0: the server's default).
        return_partial_success: whether unreachable locations may be skipped.
        next_page_token: token of the next page; ``None`` before the first page.
        exhausted: whether the last page has been fetched.
        unreachable: locations reported unreachable by the pages fetched so far.
        pages_fetched: how many pages have been fetched.
        seen_page_tokens: every page token this listing has been given; one
            given twice would make the listing go round for ever.
        empty_pages: empty pages in a row that each named a next page.
    """

    parent: str
    filter: str = ""
    page_size: int = 0
    return_partial_success: bool = False
    next_page_token: str | None = None
    exhausted: bool = False
    unreachable: list[str] = dataclasses.field(default_factory=list)
    pages_fetched: int = 0
    seen_page_tokens: set[str] = dataclasses.field(default_factory=set)
    empty_pages: int = 0

    @classmethod
    def create(cls, parent: str, *, filter: object, page_size: object, return_partial_success: object) -> ListPageState:
        """Validate the list arguments (``parent`` is validated by the caller).

        Raises:
            TypeError: an argument has the wrong type.
            ValueError: ``page_size`` is not positive.
        """
        if not isinstance(filter, str):
            raise TypeError(f"filter must be a string, got {filter!r}")
        if page_size is not None and (isinstance(page_size, bool) or not isinstance(page_size, int)):
            raise TypeError(f"page_size must be an int or None, got {page_size!r}")
        if page_size is not None and not 0 < page_size < 2**31:
            raise ValueError(f"page_size must be a positive int32, got {page_size!r}")
        if not isinstance(return_partial_success, bool):
            raise TypeError(f"return_partial_success must be a bool, got {return_partial_success!r}")
        return cls(
            parent=parent, filter=filter, page_size=page_size or 0, return_partial_success=return_partial_success
        )

    def next_request(self) -> operations_pb2.ListOperationsRequest | None:
        """The request for the next page, or ``None`` once the last page was fetched."""
        if self.exhausted:
            return None
        return operations_pb2.ListOperationsRequest(
            name=self.parent,
            filter=self.filter,
            page_size=self.page_size,
            page_token=self.next_page_token or "",
            return_partial_success=self.return_partial_success,
        )

    def record(self, response: operations_pb2.ListOperationsResponse) -> None:
        """Take note of a fetched page.

        Raises:
            RpcError: ``INTERNAL``: the page's ``next_page_token`` was given
                before in this listing, or more than :data:`MAX_EMPTY_PAGES`
                empty pages in a row named a next page (following it could
                never end); the error names the parent. Nothing is recorded.
        """
        token = response.next_page_token
        if token and token in self.seen_page_tokens:
            raise RpcError(
                grpc.StatusCode.INTERNAL,
                f"the server gave next_page_token {token!r} a second time after {self.pages_fetched + 1} pages; "
                "following it would list the same pages for ever",
                method="ListOperations",
                operation_name=self.parent,
            )
        empty_pages = self.empty_pages + 1 if token and not response.operations else 0
        if empty_pages > MAX_EMPTY_PAGES:
            raise RpcError(
                grpc.StatusCode.INTERNAL,
                f"the listing of {self.parent!r} gave {empty_pages} empty pages in a row, each naming a next page, "
                f"after {self.pages_fetched + 1} pages; it is not followed further",
                method="ListOperations",
                operation_name=self.parent,
            )
        self.empty_pages = empty_pages
        if token:
            self.seen_page_tokens.add(token)
        self.pages_fetched += 1
        self.next_page_token = token
        self.exhausted = not response.next_page_token
        self.unreachable.extend(u for u in response.unreachable if u not in self.unreachable)
