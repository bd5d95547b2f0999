"""`write(space, batch)` for stores without transactions: the Qdrant family (Edge, server).

Two writers of one record may race (two workers; a worker and an HTTP call; a redelivery).
Each write carries the record's version; the newest version must win, and neither writer
may leave points of the other behind. Each adapter gives four primitives
(`VersionedPrimitives`), and this module settles races with them, once for both:

1. A record whose stored chunk 0 is newer than the write (read inside the write, by a sole
   writer) is `stale`: nothing is written.
2. Conditional upsert: a stored point of a newer version stays as it is. Chunk 0 goes last:
   it is what reads take for the record, so a write cut short between two store calls never
   leaves a chunk 0 whose other chunks are missing (a redelivery would find the record stored
   and write nothing).
3. Chunk 0 is the arbiter: re-read, whoever's version it holds owns the record. A write that
   lost removes the points it wrote (`exact_version`); the winner removes every point of the
   record it `superseded` (older versions, and its own version's chunks past its count).

A first write (nothing stored before it) cleans up too: a concurrent older writer that also
found nothing may have written and re-read its chunk 0 before this write replaced it; that
writer believes it won and leaves its chunks past this write's count
(tests/core/test_ingest_races.py). Only a sole writer can rule that out (`sole_writer=True`:
a store that makes every write to its points, as Edge does under the data-dir lock). It
claims the records of each batch (claims.py) and reads their chunk 0s inside the claim; a
record no other batch wrote meanwhile (uncontended) needs no re-read (nothing but this write
changed it since the read, and the conditional write replaced what was read), and, when
nothing was stored, no cleanup either: the common case of a bulk load costs one read.

Each step is timed as `store_seconds{op}`, under the names the calls had when the ingestor
made them (upsert_chunks, delete_records, delete_older_versions, ...).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from vecpipe import metrics
from vecpipe.models import ChunkPoint, EmbeddingSpace, StoredRecord
from vecpipe.store import conditions as cond
from vecpipe.store.batching import batched
from vecpipe.store.claims import Claim, WriteClaims
from vecpipe.store.payload import metadata_payload
from vecpipe.store.writes import (
    RecordKey,
    UpdateMetadata,
    UpsertRecord,
    WriteBatch,
    WriteResult,
)

IDS_PER_DELETE = 256
"""Record ids per delete of whole records."""
RECORDS_PER_CLEANUP = 16
"""Records per delete of superseded points. Its condition is one clause per record and costs
grow with the square of their number (Edge, 256 one-chunk records: one delete 217 ms, 16
deletes of 16 25 ms); groups of 16 keep it linear."""


class VersionedPrimitives(Protocol):
    """What an adapter of the Qdrant family gives `VersionedWriter`. Every call is confined
    to one tenant's points: the adapter adds the tenant condition to `where`."""

    async def stored_records(
        self, space: EmbeddingSpace, tenant_id: str, record_ids: Sequence[str]
    ) -> dict[str, StoredRecord]:
        """The records' chunk 0s (missing records are absent from the result)."""

    async def upsert_chunks(self, space: EmbeddingSpace, points: Sequence[ChunkPoint]) -> None:
        """Write chunk points, in order, every vector checked first (vectors.py); a stored
        point of a newer version than the incoming one is left as it is."""

    async def delete_where(
        self, space: EmbeddingSpace, tenant_id: str, where: cond.Condition, *, weight: int = 1
    ) -> None:
        """Delete the tenant's points `where` selects (`weight`: about how many records it
        names, for the adapter's bookkeeping)."""

    async def set_payload_where(
        self,
        space: EmbeddingSpace,
        tenant_id: str,
        where: cond.Condition,
        payload: Mapping[str, Any],
    ) -> None:
        """Set top-level payload keys (each replaced whole) on the tenant's points `where`
        selects."""


class VersionedWriter:
    """`write(space, batch)` over an adapter's primitives; see the module docstring."""

    def __init__(self, store: VersionedPrimitives, *, sole_writer: bool) -> None:
        self._store = store
        self._claims = WriteClaims() if sole_writer else None

    async def write(self, space: EmbeddingSpace, batch: WriteBatch) -> WriteResult:
        if not batch:
            return {}
        if self._claims is None:
            return await self._write(space, batch, None)
        with self._claims.claim(batch.keys) as claim:
            return await self._write(space, batch, claim)

    async def _write(
        self, space: EmbeddingSpace, batch: WriteBatch, claim: Claim | None
    ) -> WriteResult:
        # Upserts first: every vector is checked before anything of the batch is written.
        result = await self._upsert(space, batch.upserts, claim) if batch.upserts else {}
        for update in batch.updates:
            await update_metadata(self._store, space, update)
            result[update.key] = "written"
        by_tenant: dict[str, list[str]] = {}
        for delete in batch.deleted:
            by_tenant.setdefault(delete.tenant_id, []).append(delete.record_id)
            result[delete.key] = "deleted"
        for tenant_id, record_ids in by_tenant.items():
            await delete_records(self._store, space, tenant_id, record_ids)
        return result

    async def _upsert(
        self, space: EmbeddingSpace, upserts: Sequence[UpsertRecord], claim: Claim | None
    ) -> WriteResult:
        result: WriteResult = {}
        before = await self._chunk_zeros(space, upserts) if claim is not None else {}
        current: list[UpsertRecord] = []
        for upsert in upserts:
            old = before.get(upsert.key)
            if old is not None and old.version > upsert.version:
                result[upsert.key] = "stale"  # a newer version is stored already
            else:
                current.append(upsert)
        if current:
            points = [point for upsert in current for point in upsert.points]
            points.sort(key=lambda point: point.chunk_index == 0)  # chunk 0s last (stable)
            await upsert_chunks(self._store, space, points)
            result.update(await self._arbitrate(space, current, before, claim))
        return result

    async def _arbitrate(
        self,
        space: EmbeddingSpace,
        written: Sequence[UpsertRecord],
        before: Mapping[RecordKey, StoredRecord],
        claim: Claim | None,
    ) -> WriteResult:
        """After the conditional upsert: who owns each record (its chunk 0 tells), and the
        points the loser or the winner must remove."""
        alone = set() if claim is None else {u.key for u in written} - claim.contended
        now = await self._chunk_zeros(space, [u for u in written if u.key not in alone])
        result: WriteResult = {}
        lost: dict[str, dict[str, int]] = {}
        won: dict[str, dict[str, tuple[int, int]]] = {}
        for upsert in written:
            (tenant_id, record_id), stored = upsert.key, now.get(upsert.key)
            if upsert.key not in alone and stored is not None and stored.version != upsert.version:
                lost.setdefault(tenant_id, {})[record_id] = upsert.version
                result[upsert.key] = "stale"  # superseded by a newer version
                continue
            result[upsert.key] = "written"
            if claim is not None:
                claim.settled.add(upsert.key)
            if upsert.key in alone and upsert.key not in before:
                continue  # a first write, alone: nothing older can exist
            won.setdefault(tenant_id, {})[record_id] = (upsert.version, upsert.chunk_count)
        for tenant_id, versions in lost.items():
            await delete_versions(self._store, space, tenant_id, versions)
        for tenant_id, superseding in won.items():
            await delete_superseded(self._store, space, tenant_id, superseding)
        return result

    async def _chunk_zeros(
        self, space: EmbeddingSpace, upserts: Sequence[UpsertRecord]
    ) -> dict[RecordKey, StoredRecord]:
        by_tenant: dict[str, list[str]] = {}
        for upsert in upserts:
            by_tenant.setdefault(upsert.key[0], []).append(upsert.key[1])
        found: dict[RecordKey, StoredRecord] = {}
        for tenant_id, record_ids in by_tenant.items():
            stored = await self._store.stored_records(space, tenant_id, record_ids)
            found.update(((tenant_id, rid), record) for rid, record in stored.items())
        return found


# ---------------------------------------------------------------------------- the steps


async def upsert_chunks(
    store: VersionedPrimitives, space: EmbeddingSpace, points: Sequence[ChunkPoint]
) -> None:
    with metrics.store_timer("upsert_chunks"):
        await store.upsert_chunks(space, points)


async def update_metadata(
    store: VersionedPrimitives, space: EmbeddingSpace, update: UpdateMetadata
) -> None:
    """Every chunk of the record whose version is not newer gets the metadata and version."""
    where = cond.And(cond.record(update.record_id), cond.not_newer_than(update.version))
    payload = metadata_payload(update.metadata, update.version)
    with metrics.store_timer("update_metadata"):
        await store.set_payload_where(space, update.tenant_id, where, payload)


async def delete_records(
    store: VersionedPrimitives, space: EmbeddingSpace, tenant_id: str, record_ids: Sequence[str]
) -> None:
    """Every point of these records, whatever its version."""
    for batch in batched(list(dict.fromkeys(record_ids)), IDS_PER_DELETE):
        with metrics.store_timer("delete_records"):
            await store.delete_where(space, tenant_id, cond.records(batch), weight=len(batch))


async def delete_versions(
    store: VersionedPrimitives, space: EmbeddingSpace, tenant_id: str, versions: Mapping[str, int]
) -> None:
    """The points of exactly the given version of each record: writes that lost a race."""
    for group in batched(list(versions.items()), RECORDS_PER_CLEANUP):
        where = cond.any_of(cond.exact_version(record_id, v) for record_id, v in group)
        with metrics.store_timer("delete_record_version"):
            await store.delete_where(space, tenant_id, where, weight=len(group))


async def delete_superseded(
    store: VersionedPrimitives,
    space: EmbeddingSpace,
    tenant_id: str,
    written: Mapping[str, tuple[int, int]],
) -> None:
    """What winning writes left stale: `written` maps each record to the (version, chunk
    count) that won (conditions.superseded)."""
    for group in batched(list(written.items()), RECORDS_PER_CLEANUP):
        where = cond.any_of(cond.superseded(record_id, v, n) for record_id, (v, n) in group)
        with metrics.store_timer("delete_older_versions"):
            await store.delete_where(space, tenant_id, where, weight=len(group))
