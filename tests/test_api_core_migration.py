"""The way in from google-api-core: Operation.from_api_core, cancelled(), exception().

Google's official Financial Services client (google-api-core underneath) starts the
operations on the emulator; lro_grpc handles built from its operation futures must
agree with what api-core itself reports.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from google.api_core import exceptions
from google.api_core import operation as api_core_operation
from google.cloud import financialservices_v1
from google.cloud.financialservices_v1.services.aml.transports import AMLGrpcTransport

from lro_grpc import (
    AsyncOperation,
    AsyncOperationsClient,
    Operation,
    OperationCancelledError,
    OperationError,
    OperationsClient,
    PollPolicy,
)
from lro_grpc.emulator import DURATION_HEADER, OUTCOME_HEADER, Emulator
from lro_grpc.types import financialservices_v1 as fs

PARENT = "projects/demo-project/locations/us-central1"
FAST = PollPolicy(initial=0.05, multiplier=1.0, maximum=0.05, jitter=0.0)


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(speed=20) as emulator:  # 4 simulated seconds pass in 0.2 s
        yield emulator


@pytest.fixture
def aml(emu: Emulator) -> Iterator[financialservices_v1.AMLClient]:
    with grpc.insecure_channel(emu.target) as channel:
        yield financialservices_v1.AMLClient(transport=AMLGrpcTransport(channel=channel))


def create(
    aml: financialservices_v1.AMLClient, instance_id: str, *extra: tuple[str, str]
) -> api_core_operation.Operation:
    return aml.create_instance(
        request={"parent": PARENT, "instance_id": instance_id, "instance": {"kms_key": "projects/k/cryptoKeys/key"}},
        metadata=list(extra),
    )


def test_from_api_core_carries_the_state_and_shares_the_official_clients_channel(
    aml: financialservices_v1.AMLClient,
) -> None:
    future = create(aml, "aml-1", (DURATION_HEADER, "2"))
    assert isinstance(future, api_core_operation.Operation)
    # The official client's channel, credentials and all, serves our client too.
    with OperationsClient(aml.transport.grpc_channel) as client:
        handle = Operation.from_api_core(future, client=client)
        assert handle.name == future.operation.name
        assert handle.raw == future.operation and handle.raw is not future.operation
        assert not handle.done and handle.metadata is not None
        assert handle.metadata.verb == future.metadata.verb == "create"
        instance = handle.result(timeout=30, poll_policy=FAST)
        official = future.result(timeout=30)
    assert isinstance(instance, fs.Instance)
    assert (instance.name, instance.state) == (official.name, fs.Instance.State.ACTIVE)
    assert instance.update_time.ToDatetime() == official.update_time.replace(tzinfo=None)
    assert not handle.cancelled() and handle.exception() is None


def test_unbound_handle_says_how_to_bind_it(aml: financialservices_v1.AMLClient) -> None:
    handle = Operation.from_api_core(create(aml, "aml-2"))
    assert handle.client is None and not handle.done
    with pytest.raises(RuntimeError, match="not bound to a client"):
        handle.result(timeout=1)


def test_cancelled_and_exception_agree_with_api_core(emu: Emulator, aml: financialservices_v1.AMLClient) -> None:
    long_running = create(aml, "aml-3", (DURATION_HEADER, "600"))
    failing = create(aml, "aml-4", (DURATION_HEADER, "0"), (OUTCOME_HEADER, "fail"))
    with OperationsClient(emu.target) as client:
        cancelled = Operation.from_api_core(long_running, client=client)
        assert not cancelled.cancelled()
        cancelled.cancel()
        error = cancelled.exception(timeout=30, poll_policy=FAST)
        assert isinstance(error, OperationCancelledError)
        assert cancelled.cancelled() and long_running.cancelled()

        failed = Operation.from_api_core(failing, client=client)
        error = failed.exception(timeout=30, poll_policy=FAST)
        official_error = failing.exception(timeout=30)
    assert isinstance(error, OperationError) and not isinstance(error, OperationCancelledError)
    assert isinstance(official_error, exceptions.FailedPrecondition)
    assert error.code == grpc.StatusCode.FAILED_PRECONDITION
    assert error.message == official_error.message
    assert not failed.cancelled()


async def test_async_handle_from_api_core(emu: Emulator, aml: financialservices_v1.AMLClient) -> None:
    future = create(aml, "aml-5", (DURATION_HEADER, "1"), (OUTCOME_HEADER, "fail"))
    async with AsyncOperationsClient(emu.target) as client:
        handle = AsyncOperation.from_api_core(future, client=client)
        error = await handle.exception(timeout=30, poll_policy=FAST)
    assert isinstance(handle, AsyncOperation)
    assert error is not None and error.code == grpc.StatusCode.FAILED_PRECONDITION


@pytest.mark.parametrize("value", [None, "operations/x", object()])
def test_from_api_core_rejects_other_values(value: object) -> None:
    with pytest.raises(TypeError, match=r"google\.api_core\.operation\.Operation"):
        Operation.from_api_core(value)
