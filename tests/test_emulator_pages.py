"""The emulator's ListOperations pages, built from operations' renderings kept while valid.

Every operation a page shows must be what GetOperation (which renders afresh)
shows at the same moment, however the operation changed since a page last
showed it: finished, failed, cancelled, deleted, time moved on.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from google.longrunning import operations_pb2
from google.protobuf import any_pb2

from lro_grpc._generated import financialservices_v1_pb2 as fs
from lro_grpc._generated import operations_pb2_grpc
from lro_grpc.emulator import Emulator, Faults
from lro_grpc.emulator import _model as model
from lro_grpc.emulator._pages import RenderedOperations, framed_entry

PARENT = "projects/pages/locations/us-central1"


def reference_render(record: model.OperationRecord, now: float) -> operations_pb2.Operation:
    """The rendering as written before pages kept renderings: every field packed afresh."""
    done = record.is_done(now)
    operation = operations_pb2.Operation(name=record.name, done=done)
    if record.api == model.FINANCIAL_SERVICES:
        metadata = fs.OperationMetadata.FromString(record.metadata)
        if done:
            model.set_time(metadata.end_time, record.end_at)
        metadata.requested_cancellation = record.cancel_requested_at is not None
        operation.metadata.Pack(metadata)
    else:
        operation.metadata.CopyFrom(model.render(record, now).metadata)  # its own path, unchanged
    if done:
        if record.outcome == model.SUCCESS:
            operation.response.ParseFromString(record.response)
        else:
            operation.error.CopyFrom(model.render(record, now).error)
    return operation


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(ui=False, start_time=1_700_000_000.0) as emu:
        yield emu


def list_all(target: str, filter_text: str = "", page_size: int = 3) -> list[operations_pb2.Operation]:
    with grpc.insecure_channel(target) as channel:
        stub = operations_pb2_grpc.OperationsStub(channel)
        token, shown = "", []
        while True:
            page = stub.ListOperations(
                operations_pb2.ListOperationsRequest(
                    name=PARENT, filter=filter_text, page_size=page_size, page_token=token
                )
            )
            shown.extend(page.operations)
            token = page.next_page_token
            if not token:
                return shown


def got(target: str, name: str) -> operations_pb2.Operation:
    with grpc.insecure_channel(target) as channel:
        return operations_pb2_grpc.OperationsStub(channel).GetOperation(operations_pb2.GetOperationRequest(name=name))


def test_rendering_in_place_gives_the_bytes_packing_gives(emulator: Emulator) -> None:
    running, asked, succeeded, failed, cancelled = (emulator.start_operation(PARENT, duration=60) for _ in range(5))
    short = emulator.start_operation(PARENT, duration=1)
    emulator.cancel(short)  # within the grace: asked to cancel, still running
    emulator.succeed(succeeded)
    emulator.fail(failed, "ABORTED", "no")
    emulator.cancel(cancelled)
    store = emulator._running().store
    now = emulator.clock.now()
    for name in (running, asked, succeeded, failed, cancelled, short):
        record = store.get(name)
        assert record is not None
        rendered = model.render(record, now)
        assert rendered.SerializeToString() == reference_render(record, now).SerializeToString(), name
    record = store.get(running)
    assert record is not None
    packed = any_pb2.Any()
    packed.Pack(fs.OperationMetadata.FromString(record.metadata))
    assert model.render(record, now).metadata == packed


def test_pages_show_what_getoperation_shows_after_every_kind_of_change(emulator: Emulator) -> None:
    names = [emulator.start_operation(PARENT, duration=60 + index) for index in range(8)]
    first = list_all(emulator.target)
    assert [operation.name for operation in first] == names
    assert not any(operation.done for operation in first)

    emulator.succeed(names[0])
    emulator.fail(names[1], "ABORTED", "gone wrong")
    emulator.cancel(names[2])  # due in more than the grace: cancelled now
    emulator.delete(names[3])
    emulator.advance(64.5)  # names[4] (64 s) ends on its own, names[5] (65 s) not yet
    shown = list_all(emulator.target)

    assert [operation.name for operation in shown] == names[:3] + names[4:]
    for operation in shown:
        assert operation == got(emulator.target, operation.name), operation.name
    by_name = {operation.name: operation for operation in shown}
    assert by_name[names[0]].HasField("response")
    assert by_name[names[1]].error.code == grpc.StatusCode.ABORTED.value[0]
    assert by_name[names[2]].error.code == grpc.StatusCode.CANCELLED.value[0]
    assert by_name[names[4]].done and not by_name[names[5]].done
    assert [operation.name for operation in list_all(emulator.target, "done=true")] == [
        names[0],
        names[1],
        names[2],
        names[4],
    ]
    assert [operation.name for operation in list_all(emulator.target, "done=false")] == names[5:]


def test_a_cancel_request_within_the_grace_shows_on_the_next_page(emulator: Emulator) -> None:
    name = emulator.start_operation(PARENT, duration=1)  # within the cancel grace: it finishes anyway
    assert not list_all(emulator.target)[0].done
    emulator.cancel(name)
    operation = list_all(emulator.target)[0]
    metadata = fs.OperationMetadata()
    operation.metadata.Unpack(metadata)
    assert metadata.requested_cancellation and not operation.done
    assert operation == got(emulator.target, name)


def test_an_unchanged_listing_renders_nothing_again(emulator: Emulator) -> None:
    names = [emulator.start_operation(PARENT, duration=600) for _ in range(5)]
    rendered = emulator._running().rendered
    list_all(emulator.target)
    before = rendered.rendered
    assert before >= len(names)
    again = list_all(emulator.target)
    assert rendered.rendered == before
    assert [operation.name for operation in again] == names
    emulator.succeed(names[2])
    list_all(emulator.target)
    assert rendered.rendered == before + 1  # the one that changed, no other


def test_pages_stay_right_past_the_capacity(emulator: Emulator) -> None:
    names = [emulator.start_operation(PARENT, duration=600) for _ in range(7)]
    emulator._running().rendered = RenderedOperations(capacity=3)
    for _ in range(2):
        shown = list_all(emulator.target, page_size=4)
        assert [operation.name for operation in shown] == names
        assert len(emulator._running().rendered) <= 3


def test_the_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="capacity must be >= 1, got 0"):
        RenderedOperations(capacity=0)


def test_left_out_running_operations_are_still_left_out_and_finished_ones_never(emulator: Emulator) -> None:
    names = [emulator.start_operation(PARENT, duration=600) for _ in range(20)]
    finished = [emulator.start_operation(PARENT, duration=0) for _ in range(5)]
    emulator.faults = Faults(list_omit_running=1.0)
    shown = list_all(emulator.target, page_size=10)
    assert [operation.name for operation in shown] == finished
    assert not set(names) & {operation.name for operation in shown}


def test_a_framed_entry_is_one_operations_field_of_a_page() -> None:
    operation = operations_pb2.Operation(name="x" * 300, done=True)  # a length past one varint byte
    page = operations_pb2.ListOperationsResponse.FromString(framed_entry(operation) * 2)
    assert list(page.operations) == [operation, operation]
