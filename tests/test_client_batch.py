"""OperationsClient.as_completed / wait_all against the emulator (mirrored in test_async_client_batch.py)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import grpc
import pytest

from lro_grpc import BatchProgress, BatchTimeoutError, Operation, OperationsClient, PollPolicy
from lro_grpc._generated import financialservices_v1_pb2 as fs
from lro_grpc._generated import financialservices_v1_pb2_grpc as fs_grpc
from lro_grpc._generated import servicemanagement_v1_pb2 as sm
from lro_grpc._generated import servicemanagement_v1_pb2_grpc as sm_grpc
from lro_grpc.emulator import DURATION_HEADER, OUTCOME_HEADER, Emulator

FAST = PollPolicy(initial=0.05, multiplier=1.0, maximum=0.05, jitter=0.0)


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator() as emu:
        yield emu


def _create(target: str, durations: list[float], *, fail: int | None = None) -> list[str]:
    with grpc.insecure_channel(target) as channel:
        aml = fs_grpc.AMLStub(channel)
        names = []
        for index, duration in enumerate(durations):
            metadata = [(DURATION_HEADER, str(duration))]
            if index == fail:
                metadata.append((OUTCOME_HEADER, "fail"))
            request = fs.CreateInstanceRequest(parent="projects/p/locations/us-east1", instance_id=f"inst-{index}")
            names.append(aml.CreateInstance(request, metadata=metadata).name)
        return names


def _create_rollout(target: str, duration: float) -> str:
    with grpc.insecure_channel(target) as channel:
        manager = sm_grpc.ServiceManagerStub(channel)
        request = sm.CreateServiceRolloutRequest(service_name="svc.example.com", rollout=sm.Rollout())
        return str(manager.CreateServiceRollout(request, metadata=[(DURATION_HEADER, str(duration))]).name)


def test_as_completed_yields_bound_handles_in_finishing_order(emulator: Emulator) -> None:
    names = _create(emulator.target, [1.6, 0.1, 0.8])  # 0.7 s apart: in order on a loaded machine too
    with OperationsClient(emulator.target) as client:
        seen = [op for op in client.as_completed(names, timeout=10, poll_policy=FAST)]
        assert [op.name for op in seen] == [names[1], names[2], names[0]]
        assert all(isinstance(op, Operation) and op.done for op in seen)
        assert isinstance(seen[0].response, fs.Instance)
        seen[0].refresh()  # bound to this client: usable for further RPCs
        assert seen[0].done


def test_wait_all_keeps_input_order_and_reports_failures_as_results(emulator: Emulator) -> None:
    names = _create(emulator.target, [0.3, 0.1, 0.2], fail=1)
    progress: list[BatchProgress] = []
    with OperationsClient(emulator.target) as client:
        results = client.wait_all(names, timeout=10, poll_policy=FAST, progress=progress.append)
    assert [op.name for op in results] == names
    assert results[1].error is not None and results[1].error.code is grpc.StatusCode.FAILED_PRECONDITION
    assert results[0].error is None and results[2].error is None
    assert progress[-1].done == 3 and progress[-1].failed == 1 and progress[-1].pending == 0


def test_default_polling_follows_each_operations_api_preset(emulator: Emulator) -> None:
    # Service Management's preset polls every 10 s: an operation finishing after 0.2 s
    # is seen running at the first poll and not looked at again within 1.5 s.
    rollout = _create_rollout(emulator.target, 0.2)
    with OperationsClient(emulator.target) as client:
        with pytest.raises(BatchTimeoutError) as caught:
            client.wait_all([rollout], timeout=1.5)
        assert caught.value.pending_names == [rollout]
        assert [op.done for op in client.wait_all([rollout], timeout=5, poll_policy=FAST)] == [True]


def test_close_stops_the_background_loop(emulator: Emulator) -> None:
    names = _create(emulator.target, [0.05])
    before = set(threading.enumerate())
    client = OperationsClient(emulator.target)
    assert [op.done for op in client.wait_all(names, timeout=5, poll_policy=FAST)] == [True]
    assert set(threading.enumerate()) - before, "the batch waiter runs on a background thread"
    client.close()
    leftover = [thread for thread in set(threading.enumerate()) - before if thread.is_alive()]
    for thread in leftover:
        thread.join(timeout=2)
    assert not [thread for thread in leftover if thread.is_alive()]
    with pytest.raises(RuntimeError, match="closed"):
        client.wait_all(names)


def test_client_on_a_ready_channel_explains_why_batches_are_unavailable(emulator: Emulator) -> None:
    with (
        grpc.insecure_channel(emulator.target) as channel,
        OperationsClient(channel) as client,
        pytest.raises(RuntimeError, match=r"ready grpc\.Channel"),
    ):
        client.wait_all(["operations/x"])


def test_malformed_names_fail_before_any_rpc(emulator: Emulator) -> None:
    with OperationsClient(emulator.target) as client, pytest.raises(ValueError, match="not/a/name"):
        client.wait_all(["not/a/name"])
