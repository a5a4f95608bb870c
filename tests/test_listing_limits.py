"""A listing always ends: ``client.list()`` (both clients) and ``lro-grpc list`` against endless listings.

Two hostile servers over real gRPC on loopback (raw bytes): one answers empty
pages, each naming a fresh next page; one answers a page of one operation
every 50 ms, each naming a fresh next page. Both stop on their own after a few
thousand pages, so that a client that follows them for ever fails the test
instead of hanging it.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import grpc
import pytest
from google.longrunning import operations_pb2
from raw_server import RawOperations, serve_raw
from servicer import FAST_POLL, FAST_RETRY

from lro_grpc import AsyncOperationsClient, OperationsClient, RpcError
from lro_grpc._core import MAX_EMPTY_PAGES
from lro_grpc.cli import ExitCode, main

PARENT = "projects/p/locations/us-central1"
GIVE_UP_AFTER = 3000
"""Pages after which the hostile servers end their listing (a client without limits gets there)."""


class EndlessPages:
    """ListOperations pages with a fresh ``next_page_token`` each, up to :data:`GIVE_UP_AFTER`."""

    def __init__(self, *, operations_per_page: int = 0, seconds_per_page: float = 0.0) -> None:
        self.operations_per_page = operations_per_page
        self.seconds_per_page = seconds_per_page
        self._tokens = itertools.count(1)

    def __call__(self, request_bytes: bytes) -> bytes:
        request = operations_pb2.ListOperationsRequest.FromString(request_bytes)
        if self.seconds_per_page:
            time.sleep(self.seconds_per_page)
        number = next(self._tokens)
        page = operations_pb2.ListOperationsResponse(next_page_token="" if number >= GIVE_UP_AFTER else f"t{number}")
        for index in range(self.operations_per_page):
            page.operations.add(name=f"{request.name}/operations/op-{number}-{index}")
        return page.SerializeToString()


def test_list_refuses_a_run_of_empty_pages_naming_the_parent() -> None:
    raw = RawOperations(ListOperations=EndlessPages())
    with (
        serve_raw(raw) as target,
        OperationsClient(target, retry_policy=FAST_RETRY, poll_policy=FAST_POLL) as client,
        pytest.raises(RpcError) as caught,
    ):
        for _ in client.list(PARENT):
            pass
    assert caught.value.code is grpc.StatusCode.INTERNAL and caught.value.method == "ListOperations"
    assert PARENT in str(caught.value) and "empty pages in a row" in str(caught.value)
    assert raw.count("ListOperations") == MAX_EMPTY_PAGES + 1


async def test_async_list_refuses_a_run_of_empty_pages_naming_the_parent() -> None:
    raw = RawOperations(ListOperations=EndlessPages())
    with serve_raw(raw) as target:
        async with AsyncOperationsClient(target, retry_policy=FAST_RETRY, poll_policy=FAST_POLL) as client:
            with pytest.raises(RpcError) as caught:
                async for _ in client.list(PARENT):
                    pass
    assert caught.value.code is grpc.StatusCode.INTERNAL and PARENT in str(caught.value)
    assert raw.count("ListOperations") == MAX_EMPTY_PAGES + 1


def test_empty_pages_between_full_ones_are_followed() -> None:
    """A server that scans may answer empty pages now and then: only a long run of them is refused."""

    tokens = itertools.count(1)

    def sparse(request_bytes: bytes) -> bytes:
        number = next(tokens)
        page = operations_pb2.ListOperationsResponse(
            next_page_token="" if number >= 3 * MAX_EMPTY_PAGES else str(number)
        )
        if number % MAX_EMPTY_PAGES == 0:
            page.operations.add(name=f"{PARENT}/operations/op-{number}")
        return page.SerializeToString()

    raw = RawOperations(ListOperations=sparse)
    with serve_raw(raw) as target, OperationsClient(target, retry_policy=FAST_RETRY, poll_policy=FAST_POLL) as client:
        names = [op.name for op in client.list(PARENT)]
    assert len(names) == 3 and raw.count("ListOperations") == 3 * MAX_EMPTY_PAGES


def test_list_timeout_bounds_the_whole_listing() -> None:
    raw = RawOperations(ListOperations=EndlessPages(operations_per_page=1, seconds_per_page=0.05))
    with serve_raw(raw) as target, OperationsClient(target, retry_policy=FAST_RETRY, poll_policy=FAST_POLL) as client:
        pager = client.list(PARENT, timeout=0.5)
        seen = 0
        started = time.monotonic()
        with pytest.raises(RpcError) as caught:
            for _ in pager:
                seen += 1
        took = time.monotonic() - started
    assert caught.value.code is grpc.StatusCode.DEADLINE_EXCEEDED and caught.value.method == "ListOperations"
    assert PARENT in str(caught.value)
    assert 0.5 <= took < 5.0  # a page's call is cut at the listing's deadline (the bound is for a loaded machine)
    assert 1 <= seen <= 11 and pager.pages_fetched == seen


async def test_async_list_timeout_bounds_the_whole_listing() -> None:
    raw = RawOperations(ListOperations=EndlessPages(operations_per_page=1, seconds_per_page=0.05))
    with serve_raw(raw) as target:
        async with AsyncOperationsClient(target, retry_policy=FAST_RETRY, poll_policy=FAST_POLL) as client:
            pager = client.list(PARENT, timeout=0.5)
            seen = 0
            started = time.monotonic()
            with pytest.raises(RpcError) as caught:
                async for _ in pager:
                    seen += 1
            took = time.monotonic() - started
    assert caught.value.code is grpc.StatusCode.DEADLINE_EXCEEDED and PARENT in str(caught.value)
    assert 0.5 <= took < 5.0
    assert 1 <= seen <= 11


@pytest.mark.parametrize("timeout", ["soon", -1, float("inf")])
def test_list_timeout_is_checked_before_any_call(timeout: Any) -> None:
    raw = RawOperations(ListOperations=EndlessPages())
    with (
        serve_raw(raw) as target,
        OperationsClient(target) as client,
        pytest.raises((TypeError, ValueError), match="timeout"),
    ):
        client.list(PARENT, timeout=timeout)
    assert raw.count("ListOperations") == 0


def test_cli_list_timeout_exits_3_after_printing_what_was_listed(capsys: pytest.CaptureFixture[str]) -> None:
    raw = RawOperations(ListOperations=EndlessPages(operations_per_page=1, seconds_per_page=0.05))
    with serve_raw(raw) as target:
        started = time.monotonic()
        code = main(["--endpoint", target, "--json", "list", PARENT, "--timeout", "0.5"])
        took = time.monotonic() - started
    captured = capsys.readouterr()
    assert code == ExitCode.TIMEOUT, captured.err
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("lro-grpc: error: timed out after 0.5s listing")
    assert PARENT in lines[0] and "incomplete" in lines[0]
    assert '"operations"' in captured.out
    assert took < 5.0


def test_cli_list_of_endless_empty_pages_fails_naming_the_parent(capsys: pytest.CaptureFixture[str]) -> None:
    raw = RawOperations(ListOperations=EndlessPages())
    with serve_raw(raw) as target:
        code = main(["--endpoint", target, "list", PARENT])
    captured = capsys.readouterr()
    assert code == ExitCode.RPC_FAILURE, captured.err
    assert captured.err.startswith("lro-grpc: error: ") and PARENT in captured.err
    assert raw.count("ListOperations") == MAX_EMPTY_PAGES + 1
