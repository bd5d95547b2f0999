"""The shared point layout: deterministic ids, payload, metadata filters, vectors."""

from __future__ import annotations

import json
import math
import uuid

import pytest

from vecpipe.errors import LimitExceeded, ValidationError
from vecpipe.models import ChunkPoint
from vecpipe.store.payload import (
    MAX_FILTER_KEYS,
    MAX_FILTER_VALUES,
    POINT_ID_NAMESPACE,
    MetadataMatch,
    checked_vector,
    chunk_payload,
    parse_metadata_filter,
    point_id,
    stored_record,
)


def test_point_ids_are_fixed_forever() -> None:
    # Golden values: if these change, every stored point is orphaned.
    assert point_id("acme", "doc-1", 0) == "13483a88-1bad-5bed-832f-a4071ba40528"
    assert point_id("acme", "doc-1", 1) == "d386f3fc-3cac-5c67-9410-c200f5c6d1ff"


@pytest.mark.parametrize(
    ("tenant_id", "record_id", "chunk_index"),
    [
        ("acme", "doc-1", 0),
        ("t", 'quote " backslash \\ newline \n tab \t', 7),
        ("ünïcode", "emoji 😀, CJK 漢字, separators \u2028\u2029", 123456789012),
        ("", "", 0),
        ("controls \x00\x1f\x7f", "a, b", 2),
    ],
)
def test_point_ids_are_uuid5_of_the_json_of_their_parts(
    tenant_id: str, record_id: str, chunk_index: int
) -> None:
    name = json.dumps([tenant_id, record_id, chunk_index], ensure_ascii=False)
    expected = str(uuid.uuid5(POINT_ID_NAMESPACE, name))
    assert point_id(tenant_id, record_id, chunk_index) == expected


def test_point_ids_do_not_collide_across_parts() -> None:
    ids = {
        point_id("a", "b", 0),
        point_id("b", "a", 0),
        point_id("a", "b", 1),
        point_id("a.b", "", 0),
        point_id("a", 'b", "c', 0),
        point_id("a", "b", 10),
        point_id("a", "b1", 0),
    }
    assert len(ids) == 7


def _point(index: int) -> ChunkPoint:
    return ChunkPoint("t", "r", index, 2, f"chunk {index}", "full text", "h", {"k": 1}, [1.0])


def test_only_chunk_zero_carries_the_full_text() -> None:
    first, second = chunk_payload(_point(0)), chunk_payload(_point(1))
    assert first["text"] == "full text"
    assert "text" not in second
    assert second["chunk_text"] == "chunk 1"
    record = stored_record(first)
    assert (record.text, record.metadata, record.chunk_count) == ("full text", {"k": 1}, 2)


def test_metadata_filters_parse() -> None:
    assert parse_metadata_filter(None) == []
    assert parse_metadata_filter({"a.b-c_1": "x", "n": [1, True, "s"]}) == [
        MetadataMatch("metadata.a.b-c_1", ("x",)),
        MetadataMatch("metadata.n", (1, True, "s")),
    ]


def test_metadata_filter_limits() -> None:
    with pytest.raises(LimitExceeded):
        parse_metadata_filter({f"k{i}": 1 for i in range(MAX_FILTER_KEYS + 1)})
    with pytest.raises(LimitExceeded):
        parse_metadata_filter({"k": list(range(MAX_FILTER_VALUES + 1))})
    with pytest.raises(ValidationError, match="invalid key"):
        parse_metadata_filter({"bad key": 1})


def test_vectors_are_checked() -> None:
    assert checked_vector([1, 2], 2) == [1.0, 2.0]
    with pytest.raises(ValidationError):
        checked_vector([1.0], 2)
    with pytest.raises(ValidationError):
        checked_vector([1.0, math.nan], 2)
