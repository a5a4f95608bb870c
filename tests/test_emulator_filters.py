"""The emulator's ListOperations grammars: the parser alone, then every documented example over loopback."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import grpc
import pytest
from google.longrunning import operations_pb2

from lro_grpc._generated import operations_pb2_grpc
from lro_grpc._generated import servicemanagement_v1_pb2 as sm
from lro_grpc._generated import servicemanagement_v1_pb2_grpc as sm_grpc
from lro_grpc.emulator import DURATION_HEADER, OUTCOME_HEADER, Emulator
from lro_grpc.emulator import _filters as filters
from lro_grpc.emulator import _listing as listing
from lro_grpc.emulator import _model as model
from lro_grpc.emulator._store import OperationStore

FS = "financialservices"
SM = "servicemanagement"
SERVICE = "endpointsapis.appspot.com"
OTHER_SERVICE = "other.example.com"
# The reference's examples compare against 2017-02-01: start the clock the day before.
START = datetime(2017, 1, 31, 12, 0, tzinfo=timezone.utc)
FEB_1 = datetime(2017, 2, 1, tzinfo=timezone.utc).timestamp()

# operations.list reference, https://cloud.google.com/service-infrastructure/docs/service-management/reference/rest/v1/operations/list
# ("{some-service}" filled in).
REFERENCE_EXAMPLES = (
    f"serviceName={SERVICE}",
    f'serviceName={SERVICE} AND startTime>="2017-02-01"',
    f"serviceName={SERVICE} AND status=done",
    f'serviceName={SERVICE} AND (status=done OR startTime>="2017-02-01")',
)


# --- The grammar, without I/O ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("", ""),
        ("   ", ""),
        ("done=true", "done=True"),
        ("done = FALSE", "done=False"),
        ("  done =true  ", "done=True"),
        ('done="false"', "done=False"),
        ("done=true AND done=false", "(done=True AND done=False)"),
        ("done=true OR done=false", "(done=True OR done=False)"),
        ("(done=true)", "done=True"),
    ],
)
def test_financial_services_grammar(text: str, canonical: str) -> None:
    assert filters.parse_filter(text, api=FS).canonical() == canonical


@pytest.mark.parametrize(
    ("text", "canonical", "service"),
    [
        (REFERENCE_EXAMPLES[0], f"serviceName={SERVICE!r}", SERVICE),
        (REFERENCE_EXAMPLES[1], f"(serviceName={SERVICE!r} AND startTime>={FEB_1!r})", SERVICE),
        (REFERENCE_EXAMPLES[2], f"(serviceName={SERVICE!r} AND status='done')", SERVICE),
        (
            REFERENCE_EXAMPLES[3],
            f"(serviceName={SERVICE!r} AND (status='done' OR startTime>={FEB_1!r}))",
            SERVICE,
        ),
        ('serviceName="a.b" AND status!=failed', "(serviceName='a.b' AND status!='failed')", "a.b"),
        ("serviceName=a.b AND startTime<2017-02-01T00:00:00Z", f"(serviceName='a.b' AND startTime<{FEB_1!r})", "a.b"),
        (
            "serviceName=a.b AND startTime>'2017-02-01T02:00:00+02:00'",
            f"(serviceName='a.b' AND startTime>{FEB_1!r})",
            "a.b",
        ),
        (
            'serviceName=a.b AND startTime<="2017-02-01T00:00:00.5Z"',
            f"(serviceName='a.b' AND startTime<={FEB_1 + 0.5!r})",
            "a.b",
        ),
        # AIP-160: OR binds tighter than AND, so serviceName stays a top-level conjunct.
        (
            "serviceName=a.b AND status=done OR status=failed",
            "(serviceName='a.b' AND (status='done' OR status='failed'))",
            "a.b",
        ),
        ("(serviceName=a.b) AND status=in_progress", "(serviceName='a.b' AND status='in_progress')", "a.b"),
        ("serviceName=a.b AND serviceName=c.d", "(serviceName='a.b' AND serviceName='c.d')", None),
    ],
)
def test_service_management_grammar(text: str, canonical: str, service: str | None) -> None:
    parsed = filters.parse_filter(text, api=SM)
    assert parsed.canonical() == canonical
    assert parsed.service_name == service


@pytest.mark.parametrize(
    ("api", "text", "mentions"),
    [
        (FS, "done", "expected an operator after 'done'"),
        (FS, "done=yes", "'yes'"),
        (FS, "done!=true", "'!='"),
        (FS, "verb=create", "'verb'"),
        (FS, "done=true AND", "'done=true AND'"),
        (FS, "done=true done=false", "'done' at offset 10"),
        (FS, "(done=true", "expected ')'"),
        (FS, "done=true)", "')' at offset 9"),
        (FS, "done==true", "'=' at offset 5"),
        (FS, 'done="true', "unterminated quote"),
        (FS, "done=true and done=false", "'and' at offset 10"),
        (FS, "serviceName=a.b", "'serviceName'"),
        (SM, "", "serviceName is required"),
        (SM, "status=done", "serviceName is required"),
        (SM, "serviceName=a.b OR status=done", "serviceName must be at the top level"),
        (SM, "serviceName=a.b AND (status=done OR serviceName=c.d)", "serviceName must be at the top level"),
        (SM, "serviceName!=a.b", "serviceName does not take '!='"),
        (SM, "serviceName=a.b AND startTime=2017-02-01", "startTime does not take '='"),
        (SM, "serviceName=a.b AND startTime>=yesterday", "'yesterday'"),
        (SM, "serviceName=a.b AND status>done", "status does not take '>'"),
        (SM, "serviceName=a.b AND status=finished", "'finished'"),
        (SM, "serviceName=a.b AND done=true", "'done'"),
        (SM, "serviceName=a.b AND NOT status=done", "unsupported field 'NOT'"),
    ],
)
def test_bad_filters_name_filter_and_the_term(api: str, text: str, mentions: str) -> None:
    with pytest.raises(filters.FilterError) as caught:
        filters.parse_filter(text, api=api)
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.message.startswith("filter:")
    assert mentions in caught.value.message


def _record(service: str, start: float, duration: float, outcome: str = "success") -> model.OperationRecord:
    return model.OperationRecord(
        name=f"operations/services.{service}:{start}-{duration}-{outcome}",
        collection="operations",
        api=SM,
        method="CreateService",
        service_name=service,
        start_at=start,
        natural_end=start + duration,
        end_at=start + duration,
        outcome=outcome,
        cancel_requested_at=None,
        metadata=b"",
        response=b"",
    )


def test_sql_and_python_readings_agree() -> None:
    """``ListFilter.where`` (what the store runs) and ``ListFilter.matches`` select the same records."""
    now = FEB_1 + 3600
    records = [
        _record(service, start, duration, outcome)
        for service in (SERVICE, OTHER_SERVICE)
        for start in (FEB_1 - 3600, FEB_1, FEB_1 + 60)
        for duration in (0, 1800, 7200)
        for outcome in ("success", "fail", "cancel")
    ]
    texts = [
        *REFERENCE_EXAMPLES,
        f"serviceName={SERVICE} AND status=in_progress",
        f"serviceName={SERVICE} AND status!=done",
        f"serviceName={SERVICE} AND status=failed",
        f"serviceName={SERVICE} AND status!=failed AND startTime>'2017-02-01'",
        f"serviceName={SERVICE} AND (startTime<=2017-02-01T00:00:00Z OR status=in_progress) AND status!=failed",
        f"serviceName={SERVICE} AND serviceName={OTHER_SERVICE}",
    ]
    store = OperationStore()
    try:
        for record in records:
            store.insert(record)
        for text in texts:
            query = listing.parse_list_request(
                operations_pb2.ListOperationsRequest(name="operations", filter=text, page_size=100)
            )
            listed, _ = store.list(query, now, retention=10**9)
            expected = [record.name for record in records if query.filter.matches(record, now)]
            assert [record.name for record in listed] == expected, text
    finally:
        store.close()


def test_status_reading() -> None:
    """done = finished (any outcome); failed = finished with an error (cancelled too); in_progress = running."""
    now = FEB_1 + 100
    running = _record(SERVICE, FEB_1, 1000)
    succeeded = _record(SERVICE, FEB_1, 10)
    failed = _record(SERVICE, FEB_1, 10, "fail")
    cancelled = _record(SERVICE, FEB_1, 10, "cancel")

    def selected(status: str) -> list[model.OperationRecord]:
        parsed = filters.parse_filter(f"serviceName={SERVICE} AND {status}", api=SM)
        return [record for record in (running, succeeded, failed, cancelled) if parsed.matches(record, now)]

    assert selected("status=done") == [succeeded, failed, cancelled]
    assert selected("status=failed") == [failed, cancelled]
    assert selected("status=in_progress") == [running]
    assert selected("status!=in_progress") == [succeeded, failed, cancelled]
    assert selected("status!=failed") == [running, succeeded]


# --- Over loopback --------------------------------------------------------------------------------------


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(speed=0, start_time=START, default_duration=60) as emulator:
        yield emulator


def _submit(channel: grpc.Channel, service: str, *metadata: tuple[str, str]) -> str:
    request = sm.SubmitConfigSourceRequest(service_name=service, config_source=sm.ConfigSource())
    return str(sm_grpc.ServiceManagerStub(channel).SubmitConfigSource(request, metadata=metadata, timeout=5).name)


def _list(channel: grpc.Channel, **fields: object) -> operations_pb2.ListOperationsResponse:
    request = operations_pb2.ListOperationsRequest(**fields)
    return operations_pb2_grpc.OperationsStub(channel).ListOperations(request, timeout=5)


def test_every_reference_example_lists_what_it_says(emu: Emulator, channel: grpc.Channel) -> None:
    # 2017-01-31: one finished, one failed, one still running; then 2017-02-01: one running.
    old_done = _submit(channel, SERVICE, (DURATION_HEADER, "0"))
    old_failed = _submit(channel, SERVICE, (DURATION_HEADER, "0"), (OUTCOME_HEADER, "fail"))
    old_running = _submit(channel, SERVICE, (DURATION_HEADER, str(3 * 86400)))
    _submit(channel, OTHER_SERVICE, (DURATION_HEADER, "0"))
    emu.advance(timedelta(days=1))
    new_running = _submit(channel, SERVICE)
    _submit(channel, OTHER_SERVICE)

    def names(text: str) -> list[str]:
        return [operation.name for operation in _list(channel, name="operations", filter=text).operations]

    everything, since_feb_1, done, done_or_since_feb_1 = (names(text) for text in REFERENCE_EXAMPLES)
    assert everything == [old_done, old_failed, old_running, new_running]
    assert since_feb_1 == [new_running]
    assert done == [old_done, old_failed]
    assert done_or_since_feb_1 == [old_done, old_failed, new_running]
    assert names(f"serviceName={SERVICE} AND status=failed") == [old_failed]
    assert names(f"serviceName={SERVICE} AND status=in_progress") == [old_running, new_running]
    assert names(f"serviceName={SERVICE} AND status!=done") == [old_running, new_running]


def test_financial_services_done_terms(emu: Emulator, channel: grpc.Channel) -> None:
    from lro_grpc._generated import financialservices_v1_pb2 as fs
    from lro_grpc._generated import financialservices_v1_pb2_grpc as fs_grpc

    parent = "projects/p/locations/us-central1"
    aml = fs_grpc.AMLStub(channel)
    done = aml.CreateInstance(
        fs.CreateInstanceRequest(parent=parent, instance_id="a"), metadata=((DURATION_HEADER, "0"),), timeout=5
    ).name
    running = aml.CreateInstance(fs.CreateInstanceRequest(parent=parent, instance_id="b"), timeout=5).name

    def names(text: str) -> list[str]:
        return [operation.name for operation in _list(channel, name=parent, filter=text).operations]

    assert names("done=true") == [done]
    assert names(" done = false ") == [running]
    assert names("done=true AND done=false") == []
    assert names("done=false AND done=true") == []
    assert names("done=true OR done=false") == [done, running]


def test_service_management_pages_default_to_50_and_cap_at_100(channel: grpc.Channel) -> None:
    stub = sm_grpc.ServiceManagerStub(channel)
    futures = [
        stub.SubmitConfigSource.future(
            sm.SubmitConfigSourceRequest(service_name=SERVICE, config_source=sm.ConfigSource()), timeout=30
        )
        for _ in range(130)
    ]
    created = [future.result().name for future in futures]
    by_service = f"serviceName={SERVICE}"
    first = _list(channel, name="operations", filter=by_service)
    assert len(first.operations) == 50 and first.next_page_token
    capped = _list(channel, name="operations", filter=by_service, page_size=1000)
    assert len(capped.operations) == 100
    rest = _list(channel, name="operations", filter=by_service, page_size=1000, page_token=capped.next_page_token)
    assert len(rest.operations) == 30 and rest.next_page_token == ""
    assert sorted(operation.name for operation in [*capped.operations, *rest.operations]) == sorted(created)


def test_service_management_list_name_is_not_used(channel: grpc.Channel) -> None:
    name = _submit(channel, SERVICE)
    for list_name in ("", "operations", "not/used", "services/x"):
        listed = _list(channel, name=list_name, filter=f"serviceName={SERVICE}").operations
        assert [operation.name for operation in listed] == [name], list_name


def test_forged_and_altered_page_tokens_are_invalid_argument(channel: grpc.Channel) -> None:
    for _ in range(3):
        _submit(channel, SERVICE)
    by_service = f"serviceName={SERVICE}"
    token = _list(channel, name="operations", filter=by_service, page_size=1).next_page_token
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    assert b"operations" not in raw and by_service.encode() not in raw  # opaque
    # The old, readable shape (base64 of "<seq>:<fingerprint>") and an altered position.
    forged = base64.urlsafe_b64encode(b"0:00000000").decode()
    altered = base64.urlsafe_b64encode(bytes([raw[0] ^ 1]) + raw[1:]).decode().rstrip("=")
    for bad in (forged, altered, token[:-2], token + "AA"):
        with pytest.raises(grpc.RpcError) as caught:
            _list(channel, name="operations", filter=by_service, page_size=1, page_token=bad)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert caught.value.details().startswith("page_token:")
        assert repr(bad) in caught.value.details()
    following = _list(channel, name="operations", filter=by_service, page_size=1, page_token=token)
    assert len(following.operations) == 1


def test_page_tokens_of_one_emulator_do_not_work_on_another(channel: grpc.Channel) -> None:
    for _ in range(2):
        _submit(channel, SERVICE)
    token = _list(channel, name="operations", filter=f"serviceName={SERVICE}", page_size=1).next_page_token
    with (
        Emulator(speed=0) as other,
        grpc.insecure_channel(other.target) as other_channel,
        pytest.raises(grpc.RpcError) as caught,
    ):
        _list(other_channel, name="operations", filter=f"serviceName={SERVICE}", page_size=1, page_token=token)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "page_token" in caught.value.details()


def test_page_tokens_survive_a_restart_on_the_same_db(tmp_path: object) -> None:
    db = f"{tmp_path}/emulator.db"
    by_service = f"serviceName={SERVICE}"
    with Emulator(speed=0, db=db) as first, grpc.insecure_channel(first.target) as first_channel:
        created = [_submit(first_channel, SERVICE) for _ in range(2)]
        token = _list(first_channel, name="operations", filter=by_service, page_size=1).next_page_token
    with Emulator(speed=0, db=db) as second, grpc.insecure_channel(second.target) as second_channel:
        page = _list(second_channel, name="operations", filter=by_service, page_size=1, page_token=token)
    assert [operation.name for operation in page.operations] == created[1:]
