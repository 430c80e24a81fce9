"""STAT7: canonical form, addresses, coordinates and URIs."""

from __future__ import annotations

import enum
import hashlib
import json
import math
from datetime import UTC, datetime, timedelta, timezone
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from seedmmo.core.stat7 import (
    HORIZONS,
    REALMS,
    Stat7,
    Stat7Error,
    Stat7Uri,
    address,
    canonical_bytes,
    format_float,
    identity_address,
    identity_document,
)
from seedmmo.errors import InvalidField

# --------------------------------------------------------------------------- worked examples


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1e-05, "0.00001"),
        (1.5e-08, "0.00000002"),  # half-even on repr's digits: 1.5 -> 2
        (2.5e-08, "0.00000002"),  # ... and 2.5 -> 2
        (2.0, "2.0"),
        (-0.0, "0.0"),
        (-1e-9, "0.0"),  # rounds to zero: no negative zero
        (0.1, "0.1"),
        (0.123456785, "0.12345678"),
        (0.123456795, "0.1234568"),
        (1e20, "100000000000000000000.0"),
        (-3.25, "-3.25"),
        (1.7976931348623157e308, "1" + "7976931348623157" + "0" * 292 + ".0"),
    ],
)
def test_float_formatting_examples(value: float, text: str) -> None:
    assert format_float(value) == text


def test_canonical_bytes_example_from_docs() -> None:
    doc = {"b": 1e-05, "a": [True, None, -0.0]}
    assert canonical_bytes(doc) == b'{"a":[true,null,0.0],"b":0.00001}'
    assert address(doc) == hashlib.sha256(canonical_bytes(doc)).hexdigest()
    assert address(doc).startswith("b0385ab12c6257af")


def test_nested_keys_sorted_and_no_whitespace() -> None:
    doc = {"z": {"b": 1, "a": [{"d": 2, "c": "é"}]}, "a": "x y"}
    assert canonical_bytes(doc) == '{"a":"x y","z":{"a":[{"c":"é","d":2}],"b":1}}'.encode()


def test_integers_stay_integers_and_big_ints_survive() -> None:
    assert canonical_bytes([1, -1, 2**70]) == b"[1,-1,1180591620717411303424]"
    assert canonical_bytes(1.0) == b"1.0"


def test_datetimes_are_millisecond_utc() -> None:
    moment = datetime(2026, 11, 26, 20, 53, 21, 123456, tzinfo=timezone(timedelta(hours=2)))
    assert canonical_bytes({"t": moment}) == b'{"t":"2026-11-26T18:53:21.123Z"}'
    with pytest.raises(Stat7Error, match="timezone-aware"):
        canonical_bytes({"t": datetime(2026, 1, 1)})


def test_enum_subclasses_write_as_their_base() -> None:
    class Colour(enum.IntEnum):
        RED = 1

    class Name(enum.StrEnum):
        BOB = "bob"

    assert canonical_bytes([Colour.RED, Name.BOB]) == b'[1,"bob"]'


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"x": math.nan}, "$.x"),
        ({"x": [1, math.inf]}, "$.x[1]"),
        ({"x": {1, 2}}, "$.x"),
        ({"x": b"bytes"}, "$.x"),
        ({1: "int key"}, "$"),
        ({"x": "\ud800"}, "$"),
    ],
)
def test_unsupported_input_is_one_error_type_naming_the_field(doc: Any, field: str) -> None:
    with pytest.raises(Stat7Error) as caught:
        canonical_bytes(doc)
    assert caught.value.field == field
    assert isinstance(caught.value, InvalidField)
    assert caught.value.status == 422


# --------------------------------------------------------------------------- properties

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@given(json_values)
def test_canonical_bytes_is_valid_json_that_decodes_to_the_rounded_value(value: Any) -> None:
    raw = canonical_bytes(value)
    decoded = json.loads(raw)
    assert canonical_bytes(decoded) == raw  # the canonical form is a fixed point


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_float_text_is_plain_and_rounded_half_even(value: float) -> None:
    text = format_float(value)
    assert "e" not in text and "E" not in text
    _integer, _, fraction = text.partition(".")
    assert 1 <= len(fraction) <= 8
    with localcontext(prec=400, rounding=ROUND_HALF_EVEN):
        expected = round(Decimal(repr(value)), 8)
    assert Decimal(text) == expected
    assert text != "-0.0"


@given(st.dictionaries(st.text(max_size=6), json_scalars, max_size=6), st.randoms())
def test_key_order_does_not_change_the_address(doc: dict[str, Any], rnd: Any) -> None:
    items = list(doc.items())
    rnd.shuffle(items)
    assert address(dict(items)) == address(doc)


@given(
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(min_value=-4e-10, max_value=4e-10),
)
def test_float_noise_below_the_eighth_decimal_does_not_change_the_address(
    units: int, noise: float
) -> None:
    value = units / 10**8  # a value exactly on the 8-decimal grid (as near as a float gets)
    noisy = value + noise
    assume(math.isfinite(noisy))
    assert address({"v": noisy}) == address({"v": value})


@given(json_values, json_values)
def test_different_content_gives_different_addresses(a: Any, b: Any) -> None:
    assume(canonical_bytes(a) != canonical_bytes(b))
    assert address(a) != address(b)


# --------------------------------------------------------------------------- coordinates

unit = st.floats(min_value=-1, max_value=1, allow_nan=False)
coordinates = st.builds(
    Stat7.of,
    realm=st.sampled_from(REALMS),
    lineage=st.integers(min_value=0, max_value=2**40),
    adjacency=st.lists(st.text(min_size=1, max_size=10), max_size=5),
    horizon=st.sampled_from(HORIZONS),
    resonance=unit,
    velocity=unit,
    density=st.floats(min_value=0, max_value=1),
)


@given(coordinates)
def test_coordinates_round_trip(coordinate: Stat7) -> None:
    assert Stat7.from_dict(coordinate.to_dict()) == coordinate
    wire = json.loads(canonical_bytes(coordinate.to_dict()))
    assert Stat7.from_dict(wire) == coordinate


@given(coordinates, st.dictionaries(st.text(max_size=6), json_values, max_size=4))
def test_the_fast_identity_address_is_the_generic_one(coordinate: Stat7, state: Any) -> None:
    assert coordinate.canonical_bytes() == canonical_bytes(coordinate.to_dict())
    fields = {"created_at": "2026-11-26T00:00:00.000Z", "entity_type": "npc", "id": "n1"}
    generic = address(identity_document(**fields, stat7=coordinate, state=state))
    assert identity_address(**fields, stat7=coordinate, state=state) == generic


def test_adjacency_is_sorted_and_unique() -> None:
    assert Stat7.of("data", adjacency=["b", "a", "b"]).adjacency == ("a", "b")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"realm": "heaven"}, "stat7.realm"),
        ({"realm": "data", "lineage": -1}, "stat7.lineage"),
        ({"realm": "data", "lineage": True}, "stat7.lineage"),
        ({"realm": "data", "lineage": 1.0}, "stat7.lineage"),
        ({"realm": "data", "horizon": "dusk"}, "stat7.horizon"),
        ({"realm": "data", "resonance": 1.5}, "stat7.resonance"),
        ({"realm": "data", "velocity": math.nan}, "stat7.velocity"),
        ({"realm": "data", "velocity": math.inf}, "stat7.velocity"),
        ({"realm": "data", "density": -0.1}, "stat7.density"),
        ({"realm": "data", "density": "0.5"}, "stat7.density"),
        ({"realm": "data", "density": False}, "stat7.density"),
        ({"realm": "data", "adjacency": "a"}, "stat7.adjacency"),
        ({"realm": "data", "adjacency": ["ok", ""]}, "stat7.adjacency[1]"),
        ({"realm": "data", "colour": 1}, "stat7.colour"),
        ({"lineage": 1}, "stat7.realm"),
    ],
)
def test_invalid_coordinates_name_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(Stat7Error) as caught:
        Stat7.from_dict(body)
    assert caught.value.field == field
    assert field in caught.value.message


def test_identity_document_address_covers_definition_not_counters() -> None:
    coordinate = Stat7.of("narrative", 0, ["cluster_main"], "emergence")
    doc = identity_document(
        created_at="2026-11-26T00:00:00.000Z",
        entity_type="realm",
        id="demo_tavern",
        stat7=coordinate,
        state={"realm_id": "The Golden Dragon Tavern"},
    )
    assert set(doc) == {"created_at", "entity_type", "id", "stat7", "state"}
    changed = dict(doc, state={"realm_id": "Another"})
    assert address(doc) != address(changed)


# --------------------------------------------------------------------------- URIs

addresses = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)
uris = st.builds(
    Stat7Uri,
    realm=st.sampled_from(REALMS),
    lineage=st.integers(min_value=0, max_value=2**63),
    horizon=st.sampled_from(HORIZONS),
    address=addresses,
)


@given(uris)
def test_uris_round_trip(uri: Stat7Uri) -> None:
    text = uri.format()
    assert text.startswith("stat7://")
    assert Stat7Uri.parse(text) == uri


def test_uri_of_coordinate() -> None:
    coordinate = Stat7.of("event", 12, horizon="peak")
    uri = Stat7Uri.of(coordinate, "a" * 64).format()
    assert uri == "stat7://event/12/peak/" + "a" * 64


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("http://data/0/genesis/" + "a" * 64, "uri"),
        ("stat7://data/0/genesis", "uri"),
        ("stat7://data/0/genesis/" + "A" * 64, "uri.address"),
        ("stat7://data/0/genesis/" + "a" * 63, "uri.address"),
        ("stat7://data/-1/genesis/" + "a" * 64, "uri.lineage"),
        ("stat7://data/01/genesis/" + "a" * 64, "uri.lineage"),
        ("stat7://data/\u0661/genesis/" + "a" * 64, "uri.lineage"),  # Arabic-Indic one
        ("stat7://heaven/0/genesis/" + "a" * 64, "uri.realm"),
        ("stat7://data/0/dusk/" + "a" * 64, "uri.horizon"),
        (42, "uri"),
    ],
)
def test_malformed_uris_are_rejected(text: Any, field: str) -> None:
    with pytest.raises(Stat7Error) as caught:
        Stat7Uri.parse(text)
    assert caught.value.field == field


def test_timestamps_are_utc_z() -> None:
    assert canonical_bytes(datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=UTC)) == (
        b'"2026-01-02T03:04:05.006Z"'
    )


@given(st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5, minutes=-30))])))
def test_timestamp_formats_agree_with_strftime(moment: datetime) -> None:
    from seedmmo.core.multiverse import iso_micro
    from seedmmo.core.stat7 import format_timestamp

    u = moment.astimezone(UTC)
    seconds = f"{u.year:04d}-{u.month:02d}-{u.day:02d}T{u.hour:02d}:{u.minute:02d}:{u.second:02d}"
    assert iso_micro(moment) == f"{seconds}.{u.microsecond:06d}Z"
    assert format_timestamp(moment) == f"{seconds}.{u.microsecond // 1000:03d}Z"


@given(
    st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
    st.lists(st.integers(-3_000_000, 3_000_000), max_size=20),
)
def test_timestamps_of_nearby_moments_each_have_their_own_second(
    start: datetime, steps_us: list[int]
) -> None:
    """The second's text is kept between calls: moments a few microseconds or seconds apart,
    in any order, must still each be written with their own second."""
    from seedmmo.core.multiverse import iso_micro
    from seedmmo.core.stat7 import format_timestamp

    for step in steps_us:
        moment = start + timedelta(microseconds=step)
        expected = moment.strftime("%Y-%m-%dT%H:%M:%S")
        assert iso_micro(moment) == f"{expected}.{moment.microsecond:06d}Z"
        assert format_timestamp(moment) == f"{expected}.{moment.microsecond // 1000:03d}Z"
