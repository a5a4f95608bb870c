"""Operation names and list parents: parsing, validation, error messages."""

from __future__ import annotations

import dataclasses

import pytest

from lro_grpc.errors import InvalidNameError, LroError
from lro_grpc.names import (
    FINANCIAL_SERVICES_LOCATIONS,
    MAX_NAME_LENGTH,
    MAX_ROUTING_HEADER_BYTES,
    OperationName,
    parse_operation_name,
    routing_header_value,
    validate_list_parent,
    validate_operation_name,
)


def test_seed_locations_are_data() -> None:
    assert FINANCIAL_SERVICES_LOCATIONS == (
        "us-central1",
        "us-east1",
        "asia-south1",
        "europe-west1",
        "europe-west2",
        "europe-west4",
        "northamerica-northeast1",
        "southamerica-east1",
    )


def test_financial_services_name() -> None:
    parsed = parse_operation_name("projects/my-proj/locations/us-central1/operations/op-123")
    assert parsed == OperationName(
        name="projects/my-proj/locations/us-central1/operations/op-123",
        api="financialservices",
        operation_id="op-123",
        project="my-proj",
        location="us-central1",
    )
    assert parsed.parent == "projects/my-proj/locations/us-central1"


def test_service_management_name_with_dots_and_colon() -> None:
    name = "operations/rollouts.endpointsapis.appspot.com:2016-07-16r2"
    parsed = parse_operation_name(name)
    assert parsed.api == "servicemanagement"
    assert parsed.operation_id == "rollouts.endpointsapis.appspot.com:2016-07-16r2"
    assert parsed.project is None
    assert parsed.location is None
    assert parsed.parent == "operations"
    assert str(parsed) == name


@pytest.mark.parametrize(
    "name",
    [
        "operations/a_b-c.d:e",
        "operations/x",
        "projects/123456789/locations/mars-north7/operations/operation-1700000000000-abc",
        "projects/PROJECT_ID/locations/LOCATION/operations/OPERATION_ID",
        "projects/p/locations/l/operations/a.b:c_d-e",
    ],
)
def test_valid_names_are_returned_unchanged(name: str) -> None:
    assert validate_operation_name(name) is name
    # ... also when an equal string, another object, was checked before (parses are kept).
    again = "".join(name)
    assert again is not name
    assert validate_operation_name(again) is again
    assert parse_operation_name(again) == parse_operation_name(name)


def test_unknown_location_is_accepted() -> None:
    parsed = parse_operation_name("projects/p/locations/antarctica-south1/operations/o")
    assert parsed.location == "antarctica-south1"
    assert parsed.location not in FINANCIAL_SERVICES_LOCATIONS


@pytest.mark.parametrize(
    "name",
    [
        "",
        "operations",
        "operations/",
        "/operations/x",
        "operations/x/",
        "operations//x",
        "operations/a/b",
        "operation/x",
        "Operations/x",
        "operations/ x",
        "operations/x\n",
        "operations/x\ty",
        "operations/x\x00",
        "projects/p/locations/l/operations/",
        "projects/p/locations/l/operations/o/",
        "projects//locations/l/operations/o",
        "projects/p/locations//operations/o",
        "projects/p/locations/l/operations",
        "projects/p/locations/l",
        "projects/p/regions/l/operations/o",
        "projects/p/locations/l/ops/o",
        "projects/p/locations/l/operations/o/extra",
        "https://financialservices.googleapis.com/v1/projects/p/locations/l/operations/o",
        "locations/l/operations/o",
    ],
)
def test_invalid_names_raise_naming_the_value(name: str) -> None:
    with pytest.raises(InvalidNameError) as caught:
        parse_operation_name(name)
    message = str(caught.value)
    assert repr(name) in message
    assert "operations/{operation_id}" in message
    assert "projects/{project}/locations/{location}/operations/{operation_id}" in message
    assert caught.value.name == name
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, LroError)
    with pytest.raises(InvalidNameError):
        validate_operation_name(name)


@pytest.mark.parametrize("value", [None, 42, b"operations/x", ["operations/x"]])
def test_non_str_names_raise_type_error(value: object) -> None:
    with pytest.raises(TypeError, match="operation name must be a str") as caught:
        parse_operation_name(value)
    assert repr(value) in str(caught.value)
    with pytest.raises(TypeError):
        validate_operation_name(value)


@pytest.mark.parametrize("parent", ["", "operations", "projects/p/locations/us-central1", "projects/1/locations/x-y9"])
def test_valid_list_parents(parent: str) -> None:
    assert validate_list_parent(parent) is parent


@pytest.mark.parametrize(
    "parent",
    [
        "operations/",
        "/operations",
        "projects/p/locations/l/",
        "projects/p/locations/",
        "projects//locations/l",
        "projects/p",
        "projects/p/locations/l/operations",
        "projects/p/locations/l/operations/o",
        "operations/x",
        " operations",
        "projects/p/locations/l\n",
    ],
)
def test_invalid_list_parents(parent: str) -> None:
    with pytest.raises(InvalidNameError) as caught:
        validate_list_parent(parent)
    assert repr(parent) in str(caught.value)
    assert "projects/{project}/locations/{location}" in str(caught.value)
    assert caught.value.name == parent


@pytest.mark.parametrize("value", [None, 0, b"operations"])
def test_non_str_parent_raises_type_error(value: object) -> None:
    with pytest.raises(TypeError, match="list parent must be a str"):
        validate_list_parent(value)


def test_parent_of_parsed_name_is_a_valid_list_parent() -> None:
    for name in ("projects/p/locations/europe-west4/operations/o", "operations/x:y"):
        assert validate_list_parent(parse_operation_name(name).parent)


def test_operation_name_is_frozen() -> None:
    parsed = parse_operation_name("operations/x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        parsed.operation_id = "y"  # type: ignore[misc]


def test_a_segment_is_rejected_exactly_when_a_character_is_whitespace_or_unprintable() -> None:
    samples = [chr(code) for code in range(0x250)] + [
        "\u1680",
        "\u2000",
        "\u2028",
        "\u2029",
        "\u202f",
        "\u3000",
        "\ufeff",
    ]
    for char in samples:
        if char == "/":
            continue
        name = f"operations/x{char}y"
        bad = char.isspace() or not char.isprintable()
        if bad:
            with pytest.raises(InvalidNameError):
                parse_operation_name(name)
        else:
            assert parse_operation_name(name).operation_id == f"x{char}y"


def test_names_beyond_the_maximum_length_are_rejected() -> None:
    longest = "operations/" + "x" * (MAX_NAME_LENGTH - len("operations/"))
    assert validate_operation_name(longest) == longest
    with pytest.raises(InvalidNameError, match=f"{MAX_NAME_LENGTH + 1} characters") as caught:
        validate_operation_name(longest + "x")
    assert caught.value.name == longest + "x"
    assert len(str(caught.value)) < 300  # the message shortens the value; the exception keeps it whole
    parent = "projects/" + "p" * MAX_NAME_LENGTH + "/locations/l"
    with pytest.raises(InvalidNameError, match="list parent"):
        validate_list_parent(parent)


def test_every_ascii_name_of_allowed_length_fits_the_routing_header() -> None:
    # ':' is percent-encoded to 3 bytes, the most any ASCII character takes.
    worst = "operations/" + ":" * (MAX_NAME_LENGTH - len("operations/"))
    assert validate_operation_name(worst) == worst
    assert len(routing_header_value(worst).encode()) <= MAX_ROUTING_HEADER_BYTES


def test_non_ascii_name_whose_routing_header_is_too_large_is_rejected() -> None:
    name = "operations/" + "\u00e9" * 700  # 711 characters, 4,216 bytes once encoded
    with pytest.raises(InvalidNameError, match=r"routing header would be 4216 bytes"):
        validate_operation_name(name)
    fits = "operations/" + "\u00e9" * 600
    assert validate_operation_name(fits) == fits
