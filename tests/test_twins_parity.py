"""The sync and asyncio twins are kept in step by this test, not by care.

Both clients, both handles and both pagers are compared member by member:
the same public methods and properties, each with the same parameters (name,
kind, default, annotation) and the same return annotation, once ``Async`` is
taken out of the names (``AsyncOperation`` reads ``Operation``,
``AsyncIterator`` ``Iterator``). ``async def`` against ``def`` is the intended
difference of every I/O method and is not compared. Every other difference
is listed in ``ALLOWED`` with its reason, and an allowed difference that is
no longer there fails too, so the list stays true.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

import pytest

from lro_grpc import AsyncOperation, AsyncOperationsClient, Operation, OperationsClient
from lro_grpc.aio import AsyncOperationPager
from lro_grpc.client import OperationPager

PAIRS: list[tuple[type, type]] = [
    (OperationsClient, AsyncOperationsClient),
    (Operation, AsyncOperation),
    (OperationPager, AsyncOperationPager),
]

# Protocol methods that have another name on the asyncio side.
TWIN_NAMES = {"__enter__": "__aenter__", "__exit__": "__aexit__", "__iter__": "__aiter__", "__next__": "__anext__"}
COMPARED_DUNDERS = {"__init__", *TWIN_NAMES}

ALLOWED: dict[tuple[str, str], dict[str, str]] = {
    # (sync class, member) -> {parameter (or "return"): why the twins differ there}
    ("OperationsClient", "__init__"): {
        "target": "a grpc.Channel against a grpc.aio.Channel",
        "interceptors": "sync interceptors against grpc.aio ones",
        "async_interceptors": "the sync client's batches run an asyncio client on a background loop",
        "async_channel_factory": "how that background client opens its channel, for a given grpc.Channel",
    },
    ("OperationsClient", "for_api"): {
        "interceptors": "sync interceptors against grpc.aio ones",
        "async_interceptors": "the sync client's batches run an asyncio client on a background loop",
    },
    ("OperationPager", "__init__"): {
        "fetch": "a blocking page fetch against an awaitable one",
    },
}


def without_async(text: str) -> str:
    """``text`` with the asyncio names read as their sync twins'."""
    return re.sub(r"\bAsync(?=[A-Z])", "", text)


def public_members(cls: type) -> dict[str, Any]:
    """Public methods and properties, and the dunders twins share, by their sync name."""
    found: dict[str, Any] = {}
    asyncio_names = {value: key for key, value in TWIN_NAMES.items()}
    for name, value in inspect.getmembers(cls):
        if name.startswith("_") and name not in COMPARED_DUNDERS and name not in asyncio_names:
            continue
        if not (callable(value) or isinstance(value, property)):
            continue
        found[asyncio_names.get(name, name)] = value
    return found


def _signature(member: Any) -> inspect.Signature:
    return inspect.signature(member.fget if isinstance(member, property) else member)


def differences(sync_member: Any, async_member: Any) -> dict[str, str]:
    """Where two members' signatures differ: parameter name (or ``"return"``) -> both sides."""
    sync_signature, async_signature = _signature(sync_member), _signature(async_member)
    found: dict[str, str] = {}
    sync_parameters, async_parameters = sync_signature.parameters, async_signature.parameters
    for name in [*sync_parameters, *(name for name in async_parameters if name not in sync_parameters)]:
        left, right = sync_parameters.get(name), async_parameters.get(name)
        shown = (without_async(str(left)), without_async(str(right)))
        if left is None or right is None or shown[0] != shown[1] or left.kind != right.kind:
            found[name] = f"{left} | {right}"
    if list(sync_parameters) != list(async_parameters) and not found:
        found["order"] = f"{list(sync_parameters)} | {list(async_parameters)}"
    sync_return = without_async(str(sync_signature.return_annotation))
    async_return = without_async(str(async_signature.return_annotation))
    if sync_return != async_return:
        found["return"] = f"{sync_return} | {async_return}"
    return found


def compare(sync_cls: type, async_cls: type) -> list[str]:
    """Every difference between two twins that ``ALLOWED`` does not list, and every listed one that is gone."""
    problems: list[str] = []
    sync_members, async_members = public_members(sync_cls), public_members(async_cls)
    for name in sorted(set(sync_members) ^ set(async_members)):
        side = sync_cls if name in sync_members else async_cls
        problems.append(f"{side.__name__}.{name} has no twin")
    for name in sorted(set(sync_members) & set(async_members)):
        allowed = ALLOWED.get((sync_cls.__name__, name), {})
        found = differences(sync_members[name], async_members[name])
        for parameter, detail in found.items():
            if parameter not in allowed:
                problems.append(f"{sync_cls.__name__}.{name}: {parameter} differs: {detail}")
        for parameter in allowed:
            if parameter not in found:
                problems.append(f"{sync_cls.__name__}.{name}: {parameter} is allowed to differ but does not")
    return problems


@pytest.mark.parametrize(("sync_cls", "async_cls"), PAIRS, ids=lambda cls: cls.__name__)
def test_twins_have_the_same_members_and_signatures(sync_cls: type, async_cls: type) -> None:
    assert compare(sync_cls, async_cls) == []


def test_every_allowed_difference_names_a_compared_member() -> None:
    compared = {(sync_cls.__name__, name) for sync_cls, _ in PAIRS for name in public_members(sync_cls)}
    assert set(ALLOWED) <= compared


def test_io_methods_of_the_asyncio_twins_are_coroutines() -> None:
    # Sampled: the calls that make RPCs are awaited on the asyncio side, plain on the sync side.
    for name in ("get", "wait", "cancel", "delete", "fetch_operation", "wait_all", "close"):
        assert inspect.iscoroutinefunction(getattr(AsyncOperationsClient, name)), name
        assert not inspect.iscoroutinefunction(getattr(OperationsClient, name)), name
    for name in ("result", "exception", "refresh", "cancel", "wait"):
        assert inspect.iscoroutinefunction(getattr(AsyncOperation, name)), name


class _Sync:
    def call(self, name: str, *, timeout: float = 10.0) -> Operation[Any, Any]:
        raise NotImplementedError


class _Async:
    async def call(self, name: str, *, timeout: float = 10.0) -> AsyncOperation[Any, Any]:
        raise NotImplementedError


class _AnotherDefault:
    async def call(self, name: str, *, timeout: float = 60.0) -> AsyncOperation[Any, Any]:
        raise NotImplementedError


class _AnotherName:
    async def call(self, name: str, *, deadline: float = 10.0) -> AsyncOperation[Any, Any]:
        raise NotImplementedError


class _AnotherKind:
    async def call(self, name: str, timeout: float = 10.0) -> AsyncOperation[Any, Any]:
        raise NotImplementedError


class _AnotherReturn:
    async def call(self, name: str, *, timeout: float = 10.0) -> AsyncOperation[Any, Any] | None:
        raise NotImplementedError


@pytest.mark.parametrize("drifted", [_AnotherDefault, _AnotherName, _AnotherKind, _AnotherReturn])
def test_a_drift_is_found(drifted: type) -> None:
    assert compare(_Sync, drifted) != []


def test_twins_that_differ_only_by_async_match() -> None:
    assert compare(_Sync, _Async) == []
