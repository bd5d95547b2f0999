"""WriteBatch: one write per record, an upsert holds one whole record at one version."""

from __future__ import annotations

import pytest

from tests.store.contract import record_points, vec
from vecpipe.errors import ValidationError
from vecpipe.store.writes import DeleteRecord, UpdateMetadata, UpsertRecord, WriteBatch


def test_points_group_into_one_upsert_per_record() -> None:
    batch = WriteBatch.of_points(
        record_points("t1", "r1", [vec(a=1), vec(b=1)]) + record_points("t2", "r1", [vec(a=1)])
    )
    assert [(u.key, u.chunk_count) for u in batch.upserts] == [(("t1", "r1"), 2), (("t2", "r1"), 1)]
    assert batch.keys == {("t1", "r1"), ("t2", "r1")}


def test_deletes_name_each_record_once() -> None:
    batch = WriteBatch.deletes("t1", ["a", "b", "a"])
    assert batch.deleted == [DeleteRecord("t1", "a"), DeleteRecord("t1", "b")]
    assert not WriteBatch.deletes("t1", [])


def test_a_batch_refuses_two_writes_of_one_record() -> None:
    with pytest.raises(ValidationError, match="one write per record"):
        WriteBatch([DeleteRecord("t", "r"), UpdateMetadata("t", "r", {}, 1)])


def test_an_upsert_is_one_whole_record_at_one_version() -> None:
    points = record_points("t", "r", [vec(a=1), vec(b=1), vec(c=1)], version=2)
    with pytest.raises(ValidationError, match=r"chunks 0\.\.n-1"):
        UpsertRecord(points[1:])
    with pytest.raises(ValidationError, match="one record and version"):
        UpsertRecord(points[:1] + record_points("t", "r", [vec(a=1), vec(b=1)], version=3)[1:])
    with pytest.raises(ValidationError):
        UpsertRecord([])
    assert UpsertRecord(reversed(points)).version == 2
