"""The checks every entry applies to a record: what is refused, with which error, and why."""

from __future__ import annotations

import datetime
import json
from typing import Any

import pytest

from vecpipe.errors import LimitExceeded, ValidationError
from vecpipe.models import Record
from vecpipe.record_checks import check_record, max_message_bytes
from vecpipe.settings import MAX_METADATA_DEPTH, Limits

LIMITS = Limits(max_metadata_depth=8, max_metadata_bytes=1024, max_text_bytes=100)


def nested_objects(depth: int) -> dict[str, Any]:
    """Metadata `depth` levels deep, the metadata object included."""
    value: Any = 1
    for _ in range(depth - 1):
        value = {"a": value}
    return {"a": value}


def nested_lists(depth: int) -> dict[str, Any]:
    value: Any = 1
    for _ in range(depth - 1):
        value = [value]
    return {"a": value}


def record(metadata: dict[str, Any] | None = None, text: str = "some text") -> Record:
    return Record(id="r1", text=text, metadata=metadata or {})


@pytest.mark.parametrize("shape", [nested_objects, nested_lists])
def test_metadata_at_the_depth_limit_passes_and_one_deeper_does_not(shape: Any) -> None:
    check_record(record(shape(8)), LIMITS)
    with pytest.raises(ValidationError) as refused:
        check_record(record(shape(9)), LIMITS)
    assert not isinstance(refused.value, LimitExceeded)
    message = refused.value.message
    assert message.startswith("record 'r1': metadata nested deeper than 8 levels")
    assert "VECPIPE_LIMIT_MAX_METADATA_DEPTH" in message


def test_depth_is_counted_from_the_metadata_object() -> None:
    assert nested_objects(2) == {"a": {"a": 1}}
    check_record(record({"a": 1, "b": "x"}), Limits(max_metadata_depth=1))
    with pytest.raises(ValidationError):
        check_record(record({"a": {"b": 1}}), Limits(max_metadata_depth=1))
    with pytest.raises(ValidationError):
        check_record(record({"a": []}), Limits(max_metadata_depth=1))


def test_very_deep_metadata_costs_no_recursion() -> None:
    check_record(record(nested_objects(50)), Limits(max_metadata_depth=50))
    with pytest.raises(ValidationError, match="nested deeper than 50"):
        check_record(record(nested_objects(20_000)), Limits(max_metadata_depth=50))


@pytest.mark.parametrize(
    ("value", "name"),
    [(float("nan"), "NaN"), (float("inf"), "Infinity"), (float("-inf"), "-Infinity")],
)
def test_non_finite_numbers_are_refused_wherever_they_are(value: float, name: str) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"x": value}, "metadata.x"),
        ({"a": {"b": [1, 2, value]}}, "metadata.a.b[2]"),
        ({"list": [{"deep": value}]}, "metadata.list[0].deep"),
    ]
    for metadata, where in cases:
        with pytest.raises(ValidationError) as refused:
            check_record(record(metadata), LIMITS)
        assert refused.value.message == (
            f"record 'r1': {name} is not allowed (JSON numbers are finite) at {where}"
        )


def test_json_that_overflows_to_infinity_is_refused() -> None:
    parsed = json.loads('{"big": 1e999}')
    with pytest.raises(ValidationError, match="Infinity is not allowed"):
        check_record(record(parsed), LIMITS)


def test_integers_past_64_bits_are_refused_and_the_edges_pass() -> None:
    check_record(record({"lo": -(2**63), "hi": 2**63 - 1, "f": 1.7976931348623157e308}), LIMITS)
    for value in (2**63, 2**64, -(2**63) - 1, 10**400):
        with pytest.raises(ValidationError, match="integer outside the 64-bit range"):
            check_record(record({"n": value}), LIMITS)


def test_lone_surrogates_are_refused_in_metadata_values_and_keys() -> None:
    with pytest.raises(ValidationError, match="lone UTF-16 surrogate"):
        check_record(record({"k": ["x\udc00"]}), LIMITS)
    with pytest.raises(ValidationError, match="key holds a lone UTF-16 surrogate"):
        check_record(record({"ok": {"\ud83d": 1}}), LIMITS)


def test_keys_the_engine_stores_as_sent_are_accepted() -> None:
    odd = {"": 1, "a.b": 2, "ключ 😀": 3, "nul\x00key": "nul\x00value", "k" * 500: None}
    check_record(record(odd), LIMITS)


def test_values_that_are_not_json_are_refused() -> None:
    with pytest.raises(ValidationError, match="a datetime"):
        check_record(record({"when": datetime.datetime(2024, 1, 1)}), LIMITS)
    with pytest.raises(ValidationError, match="a tuple"):
        check_record(record({"pair": (1, 2)}), LIMITS)
    with pytest.raises(ValidationError, match="keys are strings, not int"):
        check_record(record({"m": {1: "one"}}), LIMITS)


def test_sizes_are_limits_exceeded() -> None:
    with pytest.raises(LimitExceeded, match="text larger than 100 bytes"):
        check_record(record(text="é" * 51), LIMITS)  # 102 bytes in UTF-8
    with pytest.raises(LimitExceeded, match="metadata larger than 1024 bytes"):
        check_record(record({"k": "v" * 1020}), LIMITS)
    with pytest.raises(ValidationError, match="longer than 4 characters"):
        check_record(Record(id="abcde", text="x"), Limits(max_id_length=4))
    with pytest.raises(ValidationError, match="text must not be blank"):
        check_record(record(text=" \n\t"), LIMITS)


def test_a_message_bound_fits_every_record_within_the_limits() -> None:
    limits = Limits(max_text_bytes=1000, max_metadata_bytes=500, max_id_length=10)
    worst = Record(id="\U0001f600" * 10, text="\x01" * 1000, metadata={"k": "\x01" * 80})
    check_record(worst, limits)
    body = json.dumps({"v": 1, "op": "upsert", "tenant_id": "t" * 64, "record": worst.model_dump()})
    assert len(body.encode()) <= max_message_bytes(limits)


def test_the_depth_setting_stays_well_under_what_the_engine_reads_back() -> None:
    assert Limits().max_metadata_depth == 32
    assert MAX_METADATA_DEPTH < 122  # see record_checks.py: Edge's WAL fails from 122
    with pytest.raises(ValueError, match="max_metadata_depth"):
        Limits(max_metadata_depth=MAX_METADATA_DEPTH + 1)
    with pytest.raises(ValueError, match="max_metadata_depth"):
        Limits(max_metadata_depth=0)


def test_brackets_and_digits_inside_strings_are_text() -> None:
    strings = {
        "brackets": "[" * 100 + "{" * 100,
        "digits": "1" * 30,
        "escaped": 'a "quoted" \\ [[[ string with \\" and \\\\',
        "key with [[[[[[[[[[ and 12345678901234567890": "]]]]",
    }
    check_record(record(strings), LIMITS)
    check_record(record({"floats": [1e300, -1.5e-300, 12345678901234567.0, 2.0**64]}), LIMITS)


def test_long_integers_are_found_anywhere() -> None:
    for metadata in ({"a": [1, 2, 2**63]}, {"a": {"b": -(2**63) - 1}}, {"s": "x", "n": 2**70}):
        with pytest.raises(ValidationError, match="integer outside the 64-bit range"):
            check_record(record(metadata), LIMITS)
    check_record(record({"a": [-(2**63), 2**63 - 1, 10**18, -(10**18)]}), LIMITS)
