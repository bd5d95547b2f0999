"""Deterministic point ids: fixed forever, uuid5 of the JSON of their parts."""

from __future__ import annotations

import json
import uuid

import pytest

from vecpipe.store.point_ids import POINT_ID_NAMESPACE, point_id


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
