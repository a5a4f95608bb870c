"""A user's script, type-checked with ``mypy --strict`` against the installed wheel (tools/check_wheel.py).

It is never run: it only has to type-check, which proves the wheel ships ``py.typed``
and annotations a strict user can build on. ``assert_type`` lines state what mypy must
infer; the ``type: ignore[attr-defined]`` line must be an error (``--strict`` reports
an unused ignore otherwise), so a typo in a metadata field is caught.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any, assert_type

from lro_grpc import (
    AsyncOperation,
    AsyncOperationsClient,
    BaseOperation,
    BatchTimeoutError,
    Operation,
    OperationError,
    OperationsClient,
    PollPolicy,
    RetryPolicy,
    WaitTimeoutError,
)
from lro_grpc.emulator import Emulator
from lro_grpc.errors import OperationState
from lro_grpc.types import financialservices_v1 as fs
from lro_grpc.types.financialservices_v1 import Instance, OperationMetadata
from lro_grpc.types.financialservices_v1_grpc import AMLStub

NAME = "projects/p/locations/us-central1/operations/op-1"
POLICY = PollPolicy(initial=timedelta(seconds=5), multiplier=2, maximum=timedelta(seconds=45))
RETRY = RetryPolicy(initial=timedelta(milliseconds=100), timeout=timedelta(minutes=2))


def typed(client: OperationsClient) -> None:
    """The entry points, typed by their response_type/metadata_type keywords."""
    op = client.get(NAME, response_type=fs.Instance, metadata_type=fs.OperationMetadata)
    assert_type(op, Operation[fs.Instance, fs.OperationMetadata])
    md = op.metadata
    assert_type(md, fs.OperationMetadata | None)
    if md is not None:
        assert_type(md.verb, str)
        md.this_field_does_not_exist  # type: ignore[attr-defined]  # noqa: B018
    assert_type(op.result(timeout=600, poll_policy=POLICY), fs.Instance | None)
    assert_type(client.wait(NAME, response_type=fs.Instance, timeout=60), Operation[fs.Instance, Any])
    assert_type(client.operation(NAME, metadata_type=fs.OperationMetadata), Operation[Any, fs.OperationMetadata])
    assert_type(client.get(NAME), Operation[Any, Any])
    batch = client.wait_all([NAME], response_type=fs.Instance, metadata_type=fs.OperationMetadata, timeout=60)
    assert_type(batch, list[Operation[fs.Instance, fs.OperationMetadata]])
    completed = client.as_completed([NAME], response_type=fs.Instance, timeout=60)
    assert_type(completed, Iterator[Operation[fs.Instance, Any]])
    assert_type(op.exception(timeout=1), OperationError | None)
    assert_type(op.cancelled(), bool)


def errors(client: OperationsClient) -> None:
    """The operations an exception carries are typed."""
    try:
        client.wait_all([NAME], timeout=1)
    except BatchTimeoutError as error:
        assert_type(error.pending, list[OperationState])
        for pending in error.pending:
            assert_type(pending.metadata_as(fs.OperationMetadata), fs.OperationMetadata | None)
            if isinstance(pending, Operation):
                assert_type(pending.result(timeout=1), Any | None)
    try:
        client.wait(NAME, timeout=1)
    except WaitTimeoutError as error:
        assert_type(error.operation, OperationState | None)
    handle: BaseOperation[Any, Any] = client.get(NAME)
    state: OperationState = handle  # every handle is what an error carries
    assert_type(state.done, bool)


async def typed_async(client: AsyncOperationsClient) -> None:
    """The asynchronous client, likewise."""
    op = await client.get(NAME, response_type=fs.Instance, metadata_type=fs.OperationMetadata)
    assert_type(op, AsyncOperation[fs.Instance, fs.OperationMetadata])
    assert_type(await op.result(timeout=600), fs.Instance | None)
    results = await client.wait_all([NAME], metadata_type=fs.OperationMetadata, timeout=60)
    assert_type(results, list[AsyncOperation[Any, fs.OperationMetadata]])


def submodule_imports(client: OperationsClient, stub: AMLStub) -> None:
    """The classes imported from the types' submodules are the classes mypy types handles with."""
    op = client.get(NAME, response_type=Instance, metadata_type=OperationMetadata)
    assert_type(op, Operation[Instance, OperationMetadata])
    assert_type(op, Operation[fs.Instance, fs.OperationMetadata])
    request = fs.CreateInstanceRequest(parent="projects/p/locations/us-central1", instance_id="i1")
    assert_type(request.instance_id, str)


def proto_plus(op: Operation[Any, Any]) -> None:
    """response_as()/metadata_as() return what they are given to decode into."""
    assert_type(op.response_as(fs.Instance), fs.Instance | None)
    assert_type(op.metadata_as(fs.OperationMetadata), fs.OperationMetadata | None)


def main() -> None:
    """Against the emulator."""
    with Emulator() as emulator, OperationsClient(emulator.target, retry_policy=RETRY) as client:
        typed(client)
        errors(client)
