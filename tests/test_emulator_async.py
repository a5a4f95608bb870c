"""The emulator from inside a running asyncio event loop, driven by grpc.aio stubs."""

from __future__ import annotations

import asyncio

import grpc
from google.longrunning import operations_pb2
from google.protobuf import duration_pb2
from google.rpc import code_pb2

from lro_grpc._generated import financialservices_v1_pb2 as fs
from lro_grpc._generated import financialservices_v1_pb2_grpc as fs_grpc
from lro_grpc._generated import operations_pb2_grpc
from lro_grpc._generated import servicemanagement_v1_pb2 as sm
from lro_grpc._generated import servicemanagement_v1_pb2_grpc as sm_grpc
from lro_grpc.emulator import DURATION_HEADER, Emulator

PARENT = "projects/p/locations/europe-west4"


def wait_request(name: str, seconds: int) -> operations_pb2.WaitOperationRequest:
    return operations_pb2.WaitOperationRequest(name=name, timeout=duration_pb2.Duration(seconds=seconds))


async def test_many_waits_are_released_by_advance() -> None:
    with Emulator(speed=0, wait_rpc=True) as emu:
        async with grpc.aio.insecure_channel(emu.target) as channel:
            aml = fs_grpc.AMLStub(channel)
            operations = operations_pb2_grpc.OperationsStub(channel)
            started = await asyncio.gather(
                *(
                    aml.CreateInstance(
                        fs.CreateInstanceRequest(parent=PARENT, instance_id=f"i-{index}"),
                        metadata=((DURATION_HEADER, str(10 + index % 5)),),
                        timeout=5,
                    )
                    for index in range(200)
                )
            )
            waits = [
                asyncio.ensure_future(operations.WaitOperation(wait_request(op.name, 30), timeout=30)) for op in started
            ]
            await asyncio.sleep(0.1)
            assert not any(wait.done() for wait in waits)
            await asyncio.to_thread(emu.advance, 15)
            finished = await asyncio.gather(*waits)
    assert all(op.done and op.HasField("response") for op in finished)
    assert [op.name for op in finished] == [op.name for op in started]


async def test_a_newer_rollout_releases_a_wait_on_the_one_it_cancels() -> None:
    with Emulator(speed=0, wait_rpc=True) as emu:
        async with grpc.aio.insecure_channel(emu.target) as channel:
            manager = sm_grpc.ServiceManagerStub(channel)
            operations = operations_pb2_grpc.OperationsStub(channel)
            operation = await manager.CreateServiceRollout(
                sm.CreateServiceRolloutRequest(service_name="svc.example.com"), timeout=5
            )
            wait = asyncio.ensure_future(operations.WaitOperation(wait_request(operation.name, 30), timeout=30))
            await asyncio.sleep(0.1)
            assert not wait.done()
            await manager.CreateServiceRollout(
                sm.CreateServiceRolloutRequest(service_name="svc.example.com"), timeout=5
            )
            cancelled = await asyncio.wait_for(wait, 5)
            emu.advance(1)
    assert cancelled.done
    assert cancelled.error.code == code_pb2.CANCELLED


async def test_stop_releases_pending_waits() -> None:
    emu = Emulator(speed=0, wait_rpc=True).start()
    try:
        async with grpc.aio.insecure_channel(emu.target) as channel:
            aml = fs_grpc.AMLStub(channel)
            operation = await aml.CreateInstance(fs.CreateInstanceRequest(parent=PARENT, instance_id="a"), timeout=5)
            wait = asyncio.ensure_future(
                operations_pb2_grpc.OperationsStub(channel).WaitOperation(wait_request(operation.name, 60), timeout=60)
            )
            await asyncio.sleep(0.1)
            await asyncio.to_thread(emu.stop)
            answered = await asyncio.wait_for(wait, 5)
    finally:
        emu.stop()
    assert answered.name == operation.name
    assert not answered.done
