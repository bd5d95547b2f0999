"""WriteBatch and WriteResult: what `store.write(space, batch)` takes and answers.

A batch holds at most one write per record (tenant, record id): an upsert (every chunk point
of the record, at one version), a metadata-only update, or a delete. How a backend applies
it, and settles races between two writers of one record, is its own business (versioned.py
for the Qdrant family); what it answers per record is:

    written   the record now holds this write (or a later write of the same version)
    stale     a newer version of the record is stored: this write left nothing behind
    deleted   the record's points are gone (whether it had any or not: the caller, who read
              the record before, knows which; a store would need a read to tell)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from vecpipe.errors import ValidationError
from vecpipe.models import ChunkPoint

RecordKey = tuple[str, str]
"""(tenant_id, record_id)"""
WriteStatus = Literal["written", "stale", "deleted"]
WriteResult = dict[RecordKey, WriteStatus]


@dataclass(frozen=True)
class UpsertRecord:
    """Every chunk point of one record, of one version, chunk 0 included."""

    points: tuple[ChunkPoint, ...]

    def __init__(self, points: Iterable[ChunkPoint]) -> None:
        items = tuple(points)
        if not items:
            raise ValidationError("an upsert needs the record's points")
        first = items[0]
        for point in items:
            if (point.tenant_id, point.record_id, point.version) != (
                first.tenant_id,
                first.record_id,
                first.version,
            ):
                raise ValidationError("an upsert holds the points of one record and version")
        if sorted(p.chunk_index for p in items) != list(range(len(items))):
            raise ValidationError("an upsert holds chunks 0..n-1 of its record, each once")
        object.__setattr__(self, "points", items)

    @property
    def key(self) -> RecordKey:
        return (self.points[0].tenant_id, self.points[0].record_id)

    @property
    def version(self) -> int:
        return self.points[0].version

    @property
    def chunk_count(self) -> int:
        return len(self.points)


@dataclass(frozen=True)
class UpdateMetadata:
    """Replace the metadata (and version) of every chunk of a record whose version is not
    newer; vectors and texts untouched."""

    tenant_id: str
    record_id: str
    metadata: Mapping[str, Any]
    version: int

    @property
    def key(self) -> RecordKey:
        return (self.tenant_id, self.record_id)


@dataclass(frozen=True)
class DeleteRecord:
    tenant_id: str
    record_id: str

    @property
    def key(self) -> RecordKey:
        return (self.tenant_id, self.record_id)


RecordWrite = UpsertRecord | UpdateMetadata | DeleteRecord


@dataclass(frozen=True)
class WriteBatch:
    """Writes of distinct records, in any tenants."""

    writes: tuple[RecordWrite, ...] = ()

    def __init__(self, writes: Iterable[RecordWrite] = ()) -> None:
        items = tuple(writes)
        if len({write.key for write in items}) != len(items):
            raise ValidationError("a write batch holds one write per record")
        object.__setattr__(self, "writes", items)

    @classmethod
    def of_points(cls, points: Sequence[ChunkPoint]) -> WriteBatch:
        """Upserts of the records these points make up (each record's points, all of them)."""
        by_record: dict[RecordKey, list[ChunkPoint]] = {}
        for point in points:
            by_record.setdefault((point.tenant_id, point.record_id), []).append(point)
        return cls(UpsertRecord(record_points) for record_points in by_record.values())

    @classmethod
    def deletes(cls, tenant_id: str, record_ids: Iterable[str]) -> WriteBatch:
        return cls(DeleteRecord(tenant_id, record_id) for record_id in dict.fromkeys(record_ids))

    @property
    def keys(self) -> set[RecordKey]:
        return {write.key for write in self.writes}

    @property
    def upserts(self) -> list[UpsertRecord]:
        return [w for w in self.writes if isinstance(w, UpsertRecord)]

    @property
    def updates(self) -> list[UpdateMetadata]:
        return [w for w in self.writes if isinstance(w, UpdateMetadata)]

    @property
    def deleted(self) -> list[DeleteRecord]:
        return [w for w in self.writes if isinstance(w, DeleteRecord)]

    def __bool__(self) -> bool:
        return bool(self.writes)
