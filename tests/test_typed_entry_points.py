"""response_type=/metadata_type= on the clients' entry points, and response_as()/metadata_as() on handles."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from google.cloud import financialservices_v1

from lro_grpc import (
    AsyncOperationsClient,
    BatchTimeoutError,
    OperationsClient,
    PollPolicy,
    TypeMismatchError,
)
from lro_grpc.emulator import Emulator
from lro_grpc.types import financialservices_v1 as fs
from lro_grpc.types import servicemanagement_v1 as sm

PARENT = "projects/p/locations/us-central1"
FAST = PollPolicy(initial=0.02, multiplier=1.0, maximum=0.02, jitter=0.0)
FS_URL = "type.googleapis.com/google.cloud.financialservices.v1.OperationMetadata"
SM_URL = "type.googleapis.com/google.api.servicemanagement.v1.OperationMetadata"


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(speed=0) as emulator:
        yield emulator


@pytest.fixture
def client(emu: Emulator) -> Iterator[OperationsClient]:
    with OperationsClient(emu.target, poll_policy=FAST) as sync_client:
        yield sync_client


def test_get_wait_and_operation_decode_into_the_given_classes(emu: Emulator, client: OperationsClient) -> None:
    name = emu.start_operation(PARENT, duration=5)
    op = client.get(name, response_type=fs.Instance, metadata_type=fs.OperationMetadata)
    assert isinstance(op.metadata, fs.OperationMetadata) and op.metadata.verb == "create"
    emu.advance(5)
    done = client.wait(name, response_type=fs.Instance, metadata_type=fs.OperationMetadata, timeout=10)
    assert isinstance(done.response, fs.Instance) and done.response.state == fs.Instance.State.ACTIVE
    handle = client.operation(name, response_type=fs.Instance)
    assert isinstance(handle.result(timeout=10), fs.Instance)


def test_another_type_raises_naming_both_type_urls(emu: Emulator, client: OperationsClient) -> None:
    name = emu.start_operation(PARENT, duration=5)
    op = client.get(name, metadata_type=sm.OperationMetadata)  # the poll itself succeeds
    with pytest.raises(TypeMismatchError) as caught:
        _ = op.metadata
    assert isinstance(caught.value, TypeError)
    assert (caught.value.type_url, caught.value.expected_type_url) == (FS_URL, SM_URL)
    assert FS_URL in str(caught.value) and SM_URL in str(caught.value) and name in str(caught.value)
    emu.advance(5)
    with pytest.raises(TypeMismatchError, match="Instance"):
        client.operation(name, response_type=fs.OperationMetadata).result(timeout=10)


@pytest.mark.parametrize("bad", [fs.Instance(), "Instance", int, financialservices_v1.Instance])
def test_a_non_message_class_is_refused_before_any_rpc(client: OperationsClient, bad: object) -> None:
    # (The proto-plus class is for response_as(); the entry points take protobuf classes.)
    with pytest.raises(TypeError, match="response_type must be a protobuf message class"):
        client.get("projects/p/locations/l/operations/never-fetched", response_type=bad)  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="metadata_type must be a protobuf message class"):
        client.wait_all(["operations/x"], metadata_type=bad)  # type: ignore[call-overload]


def test_response_as_and_metadata_as_take_any_message_class(emu: Emulator, client: OperationsClient) -> None:
    name = emu.start_operation(PARENT, duration=0)
    op = client.get(name)
    official = op.response_as(financialservices_v1.Instance)  # Google's proto-plus class
    assert isinstance(official, financialservices_v1.Instance)
    assert official.name == op.response.name and official.state == financialservices_v1.Instance.State.ACTIVE
    metadata = op.metadata_as(financialservices_v1.OperationMetadata)
    assert isinstance(metadata, financialservices_v1.OperationMetadata) and metadata.verb == "create"
    pb = op.response_as(financialservices_v1.Instance.pb())  # the protobuf class underneath it
    assert pb is not None and pb.name == official.name
    assert isinstance(op.response_as(fs.Instance), fs.Instance)
    with pytest.raises(TypeMismatchError, match=SM_URL.replace(".", r"\.")):
        op.metadata_as(sm.OperationMetadata)
    with pytest.raises(TypeError, match="message class"):
        op.response_as(dict)
    assert client.operation(name).response_as(fs.Instance) is None  # nothing fetched: no response yet


def test_batches_type_their_results_and_their_pending_operations(emu: Emulator, client: OperationsClient) -> None:
    names = [emu.start_operation(PARENT, duration=0) for _ in range(3)]
    results = client.wait_all(names, response_type=fs.Instance, metadata_type=fs.OperationMetadata, timeout=30)
    assert all(isinstance(op.response, fs.Instance) for op in results)
    seen = list(client.as_completed(names, response_type=fs.Instance, timeout=30, poll_policy=FAST))
    assert sorted(op.name for op in seen) == sorted(names)
    assert all(isinstance(op.response, fs.Instance) for op in seen)

    running = emu.start_operation(PARENT, duration=600)
    with pytest.raises(BatchTimeoutError) as caught:
        client.wait_all([running], metadata_type=sm.OperationMetadata, timeout=0.3, poll_policy=FAST)
    assert caught.value.pending[0].name == running
    with pytest.raises(TypeMismatchError):  # the pending handle carries the asked-for type too
        _ = caught.value.pending[0].metadata


async def test_async_entry_points(emu: Emulator) -> None:
    names = [emu.start_operation(PARENT, duration=0) for _ in range(2)]
    async with AsyncOperationsClient(emu.target, poll_policy=FAST) as client:
        op = await client.get(names[0], response_type=fs.Instance, metadata_type=fs.OperationMetadata)
        assert isinstance(op.response, fs.Instance)
        waited = await client.wait(names[0], metadata_type=sm.OperationMetadata, timeout=5)
        with pytest.raises(TypeMismatchError):
            _ = waited.metadata
        results = await client.wait_all(names, response_type=fs.Instance, timeout=30)
        assert all(isinstance(result.response, fs.Instance) for result in results)
        seen = [op async for op in client.as_completed(names, response_type=fs.Instance, timeout=30)]
        assert len(seen) == 2 and all(isinstance(result.response, fs.Instance) for result in seen)


def test_batch_timeout_error_says_server_unreachable_when_every_last_look_failed() -> None:
    from lro_grpc import RpcError

    def down(name: str) -> RpcError:
        return RpcError(
            grpc.StatusCode.UNAVAILABLE,
            "failed to connect to all addresses",
            method="GetOperation",
            operation_name=name,
        )

    names = ["operations/a", "operations/b"]
    error = BatchTimeoutError(
        "2 operation(s) still running", pending=[], pending_names=names, last_errors=[down(name) for name in names]
    )
    assert error.server_unreachable and error.last_errors[1] is not None
    assert str(error).startswith("2 operation(s) still running; server unreachable: GetOperation for 'operations/a'")
    assert "failed to connect to all addresses" in str(error)

    answered = BatchTimeoutError(
        "2 operation(s) still running", pending=[], pending_names=names, last_errors=[down(names[0]), None]
    )
    assert not answered.server_unreachable and "unreachable" not in str(answered)
    assert BatchTimeoutError("x", pending=[], pending_names=names).last_errors == [None, None]
    with pytest.raises(ValueError, match="1 entries for 2 pending"):
        BatchTimeoutError("x", pending=[], pending_names=names, last_errors=[None])
