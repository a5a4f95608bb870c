"""AsyncOperationsClient.as_completed / wait_all against the emulator (mirror of test_client_batch.py)."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from test_client_batch import FAST, _create, _create_rollout

from lro_grpc import AsyncOperation, AsyncOperationsClient, BatchProgress, BatchTimeoutError, PollPolicy
from lro_grpc._generated import financialservices_v1_pb2 as fs
from lro_grpc.emulator import Emulator


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator() as emu:
        yield emu


async def test_as_completed_yields_bound_handles_in_finishing_order(emulator: Emulator) -> None:
    names = _create(emulator.target, [1.6, 0.1, 0.8])  # 0.7 s apart: in order on a loaded machine too
    async with AsyncOperationsClient(emulator.target) as client:
        seen = [op async for op in client.as_completed(names, timeout=10, poll_policy=FAST)]
        assert [op.name for op in seen] == [names[1], names[2], names[0]]
        assert all(isinstance(op, AsyncOperation) and op.done for op in seen)
        assert isinstance(seen[0].response, fs.Instance)
        await seen[0].refresh()  # bound to this client: usable for further RPCs
        assert seen[0].done


async def test_wait_all_keeps_input_order_and_reports_failures_as_results(emulator: Emulator) -> None:
    names = _create(emulator.target, [0.3, 0.1, 0.2], fail=1)
    progress: list[BatchProgress] = []
    async with AsyncOperationsClient(emulator.target) as client:
        results = await client.wait_all(names, timeout=10, poll_policy=FAST, progress=progress.append)
    assert [op.name for op in results] == names
    assert results[1].error is not None and results[1].error.code is grpc.StatusCode.FAILED_PRECONDITION
    assert results[0].error is None and results[2].error is None
    assert progress[-1].done == 3 and progress[-1].failed == 1 and progress[-1].pending == 0


async def test_default_polling_follows_each_operations_api_preset(emulator: Emulator) -> None:
    rollout = _create_rollout(emulator.target, 0.2)
    async with AsyncOperationsClient(emulator.target) as client:
        with pytest.raises(BatchTimeoutError) as caught:
            await client.wait_all([rollout], timeout=1.5)
        assert caught.value.pending_names == [rollout]
        assert [op.done for op in await client.wait_all([rollout], timeout=5, poll_policy=FAST)] == [True]


async def test_malformed_names_fail_before_any_rpc(emulator: Emulator) -> None:
    async with AsyncOperationsClient(emulator.target) as client:
        with pytest.raises(ValueError, match="not/a/name"):
            await client.wait_all(["not/a/name"])


async def test_poll_policy_is_type_checked(emulator: Emulator) -> None:
    async with AsyncOperationsClient(emulator.target) as client:
        with pytest.raises(TypeError, match="poll_policy"):
            await client.wait_all(["operations/x"], poll_policy="fast")  # type: ignore[arg-type]
    assert PollPolicy  # the same policy type as the sync client's
