"""The condition tree: its checks, the system conditions, and the API's filter parsed into it.

What trees select is held to one meaning on every backend by tests/store/contract.py and
test_congruence.py; here, what the builders build.
"""

from __future__ import annotations

import math

import pytest

from vecpipe.errors import LimitExceeded, ValidationError
from vecpipe.store.conditions import (
    CHUNK,
    MAX_FILTER_KEYS,
    MAX_FILTER_VALUES,
    RECORD,
    TENANT,
    VERSION,
    And,
    Eq,
    Field,
    In,
    IsEmpty,
    Or,
    Range,
    chunk_zeros,
    for_tenant,
    meta,
    not_newer_than,
    parse_metadata_filter,
    superseded,
)


def test_metadata_filters_parse() -> None:
    assert parse_metadata_filter(None) is None
    assert parse_metadata_filter({"a.b-c_1": "x", "n": [1, True, "s"]}) == And(
        Eq(meta("a.b-c_1"), "x"),
        In(meta("n"), (1, True, "s")),
    )


def test_metadata_filter_limits() -> None:
    with pytest.raises(LimitExceeded):
        parse_metadata_filter({f"k{i}": 1 for i in range(MAX_FILTER_KEYS + 1)})
    with pytest.raises(LimitExceeded):
        parse_metadata_filter({"k": list(range(MAX_FILTER_VALUES + 1))})
    with pytest.raises(ValidationError, match="invalid key"):
        parse_metadata_filter({"bad key": 1})


def test_a_single_filter_key_is_its_condition_and_one_value_an_equality() -> None:
    assert parse_metadata_filter({"k": [False]}) == Eq(meta("k"), False)
    with pytest.raises(ValidationError, match="not dict"):
        parse_metadata_filter({"k": {"a": 1}})


@pytest.mark.parametrize(
    "build",
    [
        lambda: In(meta("k"), []),
        lambda: And(),
        lambda: Or(),
        lambda: Range(meta("k")),
        lambda: Range(meta("k"), gt=True),
        lambda: Range(meta("k"), lt=math.nan),
        lambda: Eq(meta("k"), 1.5),  # type: ignore[arg-type]
        lambda: Eq(meta("k"), 2**64),
        lambda: In(meta("k"), [None]),  # type: ignore[list-item]
        lambda: Field("secret"),
        lambda: meta("a..b"),
    ],
)
def test_trees_refuse_what_no_backend_could_run(build: object) -> None:
    with pytest.raises(ValidationError):
        build()  # type: ignore[operator]


def test_fields_name_their_payload_paths() -> None:
    assert [f.path for f in (TENANT, RECORD, CHUNK, VERSION)] == [
        "tenant_id",
        "record_id",
        "chunk_index",
        "version",
    ]
    assert meta("a.b").path == "metadata.a.b"


def test_the_tenant_comes_first_in_what_the_store_runs() -> None:
    assert for_tenant("t") == Eq(TENANT, "t")
    assert for_tenant("t", chunk_zeros()) == And(Eq(TENANT, "t"), Eq(CHUNK, 0))


def test_what_a_winning_write_supersedes() -> None:
    """Older versions (or none), and its own version's chunks past its count; never newer."""
    assert not_newer_than(5) == Or(IsEmpty(VERSION), Range(VERSION, lte=5))
    assert superseded("r", 5, 2) == And(
        Eq(RECORD, "r"),
        Or(
            Or(IsEmpty(VERSION), Range(VERSION, lt=5)),
            And(Range(CHUNK, gte=2), Or(IsEmpty(VERSION), Range(VERSION, lte=5))),
        ),
    )
