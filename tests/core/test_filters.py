"""The filter language parsed into condition trees; what trees select: tests/store/contract.py."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from vecpipe.core.filters import MAX_FILTER_CLAUSES, MAX_FILTER_DEPTH, parse_filter
from vecpipe.errors import LimitExceeded, ValidationError
from vecpipe.store.conditions import (
    RECORD,
    And,
    DateRange,
    Eq,
    In,
    IsEmpty,
    Not,
    Or,
    Range,
    Text,
    meta,
)


def test_the_shorthand_is_unchanged() -> None:
    assert parse_filter(None) is None
    assert parse_filter({}) is None
    assert parse_filter({"a.b": "x", "n": [1, True, "s"]}) == And(
        Eq(meta("a.b"), "x"), In(meta("n"), (1, True, "s"))
    )
    assert parse_filter({"k": [False]}) == Eq(meta("k"), False)


def test_operators_parse_into_trees() -> None:
    n = meta("n")
    assert parse_filter({"n": {"$gte": 1, "$lt": 2.5}}) == Range(n, gte=1, lt=2.5)
    assert parse_filter({"n": {"$ne": 1, "$exists": True}}) == And(Not(Eq(n, 1)), Not(IsEmpty(n)))
    assert parse_filter({"n": {"$nin": [1, 2]}}) == Not(In(n, (1, 2)))
    assert parse_filter({"n": {"$exists": False}}) == IsEmpty(n)
    assert parse_filter({"t": {"$text": "ERR_X"}}) == Text(meta("t"), "ERR_X")
    assert parse_filter({"id": {"$in": ["a"]}}) == Eq(RECORD, "a")
    assert parse_filter({"$or": [{"a": 1}, {"$not": {"b": 2}}]}) == Or(
        Eq(meta("a"), 1), Not(Eq(meta("b"), 2))
    )
    assert parse_filter({"$and": [{"a": 1}]}) == Eq(meta("a"), 1)


def test_datetimes_are_instants_and_naive_ones_utc() -> None:
    parsed = parse_filter({"at": {"$gte": "2024-01-01", "$lt": "2024-02-01T00:00:00+02:00"}})
    assert isinstance(parsed, DateRange)
    assert parsed.gte == datetime(2024, 1, 1, tzinfo=UTC)
    assert parsed.iso(parsed.lt) == "2024-01-31T22:00:00Z"


@pytest.mark.parametrize(
    "flt",
    [
        {"$or": [{"k": i} for i in range(10_000)]},
        {"$or": [{f"k{j}": {"$in": [1], "$ne": 2} for j in range(16)}] * 16},
        {"k": list(range(257))},
        {f"k{i}": 1 for i in range(17)},
    ],
)
def test_size_limits(flt: dict[str, Any]) -> None:
    with pytest.raises(LimitExceeded):
        parse_filter(flt)


def test_nesting_is_bounded_before_it_can_recurse_deeply() -> None:
    deep: dict[str, Any] = {"a": 1}
    for _ in range(MAX_FILTER_DEPTH - 1):
        deep = {"$not": deep}
    assert parse_filter(deep) is not None
    with pytest.raises(LimitExceeded, match="nest"):
        parse_filter({"$not": deep})
    assert MAX_FILTER_CLAUSES >= 64


@pytest.mark.parametrize(
    "flt",
    [
        {"n": {"$gt": float("nan")}},
        {"n": 1.5},
        {"n": {"$eq": [1]}},
        {"n": {}},
        {"$and": []},
        {"$or": [{}]},
        {"$and": {"a": 1}},
        "x",
        [{"a": 1}],
        {"at": {"$gt": "2024-13-01"}},
    ],
)
def test_bad_filters_are_validation_errors(flt: Any) -> None:
    with pytest.raises(ValidationError):
        parse_filter(flt)


def test_the_keys_a_keyword_index_helps() -> None:
    from vecpipe.store.conditions import keyword_keys, range_keys

    where = parse_filter(
        {"lang": "en", "$or": [{"n": 1}, {"$not": {"src.kind": {"$in": ["a", 2]}}}], "id": "x"}
    )
    assert keyword_keys(where) == {"lang", "src.kind"}
    assert keyword_keys(None) == set()
    ranged = parse_filter({"$or": [{"n": {"$gt": 1}}, {"$not": {"m": {"$lte": 2.5}}}], "k": 1})
    assert range_keys(ranged) == {"n", "m"}
