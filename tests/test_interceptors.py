"""interceptors= on both clients reach every channel they open, the batch waiter's included;
a sync client on the user's own channel batches with async_channel_factory=."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest

from lro_grpc import AsyncOperationsClient, OperationsClient, PollPolicy
from lro_grpc.emulator import Emulator

PARENT = "projects/p/locations/us-central1"
FAST = PollPolicy(initial=0.02, multiplier=1.0, maximum=0.02, jitter=0.0)


class Recorder(grpc.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    """A synchronous interceptor that records the methods called and adds a header."""

    def __init__(self) -> None:
        self.methods: list[str] = []

    def intercept_unary_unary(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        self.methods.append(details.method.rsplit("/", 1)[-1])
        return continuation(details, request)


class AsyncRecorder(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    """The grpc.aio equivalent."""

    def __init__(self) -> None:
        self.methods: list[str] = []

    async def intercept_unary_unary(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        method = details.method.decode() if isinstance(details.method, bytes) else details.method
        self.methods.append(method.rsplit("/", 1)[-1])
        return await continuation(details, request)


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(speed=0) as emulator:
        yield emulator


def test_sync_client_interceptors_see_its_calls_and_the_batch_waiters(emu: Emulator) -> None:
    names = [emu.start_operation(PARENT, duration=0) for _ in range(3)]
    sync, batch = Recorder(), AsyncRecorder()
    with OperationsClient(emu.target, interceptors=[sync], async_interceptors=[batch], poll_policy=FAST) as client:
        client.get(names[0])
        list(client.list(PARENT))
        assert sync.methods == ["GetOperation", "ListOperations"]
        assert len(client.wait_all(names, timeout=30)) == 3
    assert batch.methods and set(batch.methods) <= {"GetOperation", "ListOperations"}
    assert sync.methods == ["GetOperation", "ListOperations"]  # the batch went over its own channel


def test_sync_interceptors_without_async_ones_refuse_to_batch_unintercepted(emu: Emulator) -> None:
    with (
        OperationsClient(emu.target, interceptors=[Recorder()]) as client,
        pytest.raises(ValueError, match="async_interceptors="),
    ):
        client.wait_all([emu.start_operation(PARENT, duration=0)], timeout=5)
    with OperationsClient(emu.target, interceptors=[Recorder()], async_interceptors=[]) as client:
        assert len(client.wait_all([emu.start_operation(PARENT, duration=0)], timeout=30)) == 1


def test_interceptors_on_a_given_channel(emu: Emulator) -> None:
    recorder = Recorder()
    with grpc.insecure_channel(emu.target) as channel, OperationsClient(channel, interceptors=[recorder]) as client:
        client.get(emu.start_operation(PARENT, duration=0))
    assert recorder.methods == ["GetOperation"]


def test_a_client_on_a_ready_channel_batches_with_async_channel_factory(emu: Emulator) -> None:
    names = [emu.start_operation(PARENT, duration=0) for _ in range(3)]
    batch = AsyncRecorder()
    opened: list[grpc.aio.Channel] = []

    def open_async_channel() -> grpc.aio.Channel:
        channel = grpc.aio.insecure_channel(emu.target, interceptors=[batch])
        opened.append(channel)
        return channel

    with (
        grpc.insecure_channel(emu.target) as channel,
        OperationsClient(channel, async_channel_factory=open_async_channel, poll_policy=FAST) as client,
    ):
        assert sorted(op.name for op in client.as_completed(names, timeout=30)) == sorted(names)
        assert [op.name for op in client.wait_all(names, timeout=30)] == names
    assert len(opened) == 1 and batch.methods


def test_bad_channel_arguments_are_refused(emu: Emulator) -> None:
    with pytest.raises(TypeError, match="interceptors must be a list or tuple"):
        OperationsClient(emu.target, interceptors=Recorder())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="async_channel_factory must be callable"):
        OperationsClient(emu.target, async_channel_factory="nope")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="give them to it"):
        OperationsClient(
            emu.target,
            async_channel_factory=lambda: None,  # type: ignore[arg-type,return-value]
            async_interceptors=[AsyncRecorder()],
        )
    name = emu.start_operation(PARENT, duration=0)
    with (
        grpc.insecure_channel(emu.target) as channel,
        OperationsClient(
            channel,
            async_channel_factory=lambda: channel,  # type: ignore[arg-type,return-value]
        ) as client,
        pytest.raises(TypeError, match=r"must return a grpc\.aio\.Channel"),
    ):
        client.wait_all([name], timeout=5)


async def test_async_client_interceptors(emu: Emulator) -> None:
    recorder = AsyncRecorder()
    names = [emu.start_operation(PARENT, duration=0) for _ in range(2)]
    async with AsyncOperationsClient(emu.target, interceptors=[recorder], poll_policy=FAST) as client:
        await client.get(names[0])
        await client.wait_all(names, timeout=30)
    assert recorder.methods[0] == "GetOperation" and len(recorder.methods) >= 2
    async with AsyncOperationsClient(grpc.aio.insecure_channel(emu.target)) as given:
        pass
    with pytest.raises(ValueError, match="interceptors"):
        AsyncOperationsClient(grpc.aio.insecure_channel(emu.target), interceptors=[recorder])
    assert given is not None
