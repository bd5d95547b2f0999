"""VersionedWriter: the calls a write costs. Its outcomes under races are checked on both real
backends (tests/core/test_ingest_races.py, tests/store/contract.py); here, that a sole writer
spends no re-read and no cleanup where none can be needed, and a shared one always does."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tests.store.contract import SPACE, record_points, vec
from vecpipe.models import ChunkPoint, EmbeddingSpace, StoredRecord
from vecpipe.store.conditions import Condition
from vecpipe.store.payload import chunk_payload, stored_record
from vecpipe.store.versioned import VersionedWriter
from vecpipe.store.writes import WriteBatch


class Recorder:
    """Primitives over a dict of chunk 0s (upserts conditional, as the adapters' are),
    recording each call by name."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.chunk_zeros: dict[tuple[str, str], StoredRecord] = {}

    async def stored_records(
        self, space: EmbeddingSpace, tenant_id: str, record_ids: Sequence[str]
    ) -> dict[str, StoredRecord]:
        self.calls.append("read")
        found = {rid: self.chunk_zeros.get((tenant_id, rid)) for rid in record_ids}
        return {rid: record for rid, record in found.items() if record is not None}

    async def upsert_chunks(self, space: EmbeddingSpace, points: Sequence[ChunkPoint]) -> None:
        self.calls.append("upsert")
        assert points[-1].chunk_index == 0  # chunk 0 last
        for point in points:
            key = (point.tenant_id, point.record_id)
            stored = self.chunk_zeros.get(key)
            if point.chunk_index == 0 and (stored is None or stored.version <= point.version):
                self.chunk_zeros[key] = stored_record(chunk_payload(point))

    async def delete_where(
        self, space: EmbeddingSpace, tenant_id: str, where: Condition, *, weight: int = 1
    ) -> None:
        self.calls.append("delete")

    async def set_payload_where(
        self, space: EmbeddingSpace, tenant_id: str, where: Condition, payload: Mapping[str, Any]
    ) -> None:
        self.calls.append("set_payload")


def batch(version: int) -> WriteBatch:
    return WriteBatch.of_points(record_points("t", "r", [vec(a=1), vec(b=1)], version=version))


async def test_a_sole_writer_reads_once_and_cleans_up_only_after_a_rewrite() -> None:
    store = Recorder()
    writer = VersionedWriter(store, sole_writer=True)
    assert await writer.write(SPACE, batch(1)) == {("t", "r"): "written"}
    assert store.calls == ["read", "upsert"]  # a first write, alone
    store.calls.clear()
    assert await writer.write(SPACE, batch(2)) == {("t", "r"): "written"}
    assert store.calls == ["read", "upsert", "delete"]  # what version 1 left
    store.calls.clear()
    assert await writer.write(SPACE, batch(1)) == {("t", "r"): "stale"}
    assert store.calls == ["read"]  # a newer version is stored: nothing written


async def test_a_shared_writer_always_rereads_and_cleans_up() -> None:
    store = Recorder()
    writer = VersionedWriter(store, sole_writer=False)
    assert await writer.write(SPACE, batch(1)) == {("t", "r"): "written"}
    assert store.calls == ["upsert", "read", "delete"]
    store.calls.clear()
    store.chunk_zeros[("t", "r")] = stored_record(chunk_payload(batch(5).upserts[0].points[0]))
    assert await writer.write(SPACE, batch(2)) == {("t", "r"): "stale"}  # lost to version 5
    assert store.calls == ["upsert", "read", "delete"]  # and removed what it wrote
