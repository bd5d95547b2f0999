"""Offboarding a tenant: everything of it goes, provably, and a repeat finishes the job.

Order matters, and every step is idempotent, so a crash anywhere is cured by calling again:

1. A tombstone (db/tombstones.py): from now on the worker drops the tenant's messages.
2. Its migration row, so a reindex in progress stops copying; a page of its records the
   migration runner of this process is copying is waited for (`Reindexes.settled`): it
   would otherwise write them back after step 4 (a runner in another process stops at its
   next page, and step 6 removes what its last one wrote).
3. Its waiting messages and dead letters (both queue backends).
4. Its points in every space the store holds (`store.spaces()`: a reindex's target space
   and spaces of configs it had before included).
5. Its tokens, jobs (with their items) and AI config.
6. The store once more: a batch the worker had taken before step 1 may have landed since.
7. Compaction: SQLite's WAL is checkpointed and truncated (deleted rows are overwritten in
   place: secure_delete); stores that keep deleted bytes in their segments until they are
   rewritten (`compact_tenant_data`, Edge) rewrite the spaces the tenant was in (every
   space, when a crash cut the previous call short after its points were deleted).
8. The tombstone turns `deleted` with the report of what went.

The report counts, it never names a record.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from vecpipe import metrics
from vecpipe.core.pipeline import Pipeline, check_tenant_id
from vecpipe.models import EmbeddingSpace
from vecpipe.store.base import VectorStore
from vecpipe.store.conditions import records as of_records

if TYPE_CHECKING:
    from vecpipe.db.engine import Database

log = logging.getLogger(__name__)

BATCH = 500


async def offboard_tenant(pipeline: Pipeline, database: Database, tenant_id: str) -> dict[str, Any]:
    """Delete everything of the tenant (see the module docstring); what was removed."""
    check_tenant_id(tenant_id)
    store = pipeline.store
    before = await database.tombstones.get(tenant_id)
    resumed = before is not None and before.state == "deleting"  # a crash cut the last call
    await database.tombstones.begin(tenant_id)
    migration = await database.reindexes.get(tenant_id)
    await database.reindexes.forget(tenant_id)
    if pipeline.reindexes is not None:
        await pipeline.reindexes.settled(tenant_id)
    purged = await pipeline.queue.purge_tenant(tenant_id)
    records, points, touched = await delete_tenant_points(pipeline.store, tenant_id)
    tokens = await database.tokens.delete_tenant(tenant_id)
    jobs = await database.jobs.delete_tenant(tenant_id)
    config = await database.configs.delete(tenant_id)
    pipeline.providers.forget(tenant_id)
    late_records, late_points, late_touched = await delete_tenant_points(pipeline.store, tenant_id)
    # A resumed call may find the points gone already, their bytes not: compact everywhere.
    to_compact = set(await store.spaces()) if resumed else touched | late_touched
    compacted = await _compact(store, to_compact)
    await database.checkpoint()
    removed: dict[str, Any] = {
        "records": records + late_records,
        "points": points + late_points,
        "spaces": sorted(s.key for s in touched | late_touched),
        "ai_config": config,
        "migration": migration is not None,
        "tokens": tokens,
        "jobs": jobs,
        "queued_messages": purged.messages,
        "dead_letters": purged.dead_letters,
        "compacted_spaces": compacted,
    }
    await database.tombstones.finish(tenant_id, removed)
    metrics.count_lifecycle(tenant_id, "offboarded", removed["records"])
    log.info(
        "tenant %s offboarded: %d records (%d points) in %d spaces, %d tokens, %d jobs, "
        "%d queued messages, %d dead letters",
        tenant_id,
        removed["records"],
        removed["points"],
        len(removed["spaces"]),
        tokens,
        jobs,
        purged.messages,
        purged.dead_letters,
    )
    return removed


async def delete_tenant_points(
    store: VectorStore, tenant_id: str
) -> tuple[int, int, set[EmbeddingSpace]]:
    """Every point of the tenant in every space: (records, points, spaces it was in)."""
    records = points = 0
    touched: set[EmbeddingSpace] = set()
    for space in await store.spaces():
        found = await store.count(space, tenant_id)
        if not found:
            continue
        points += found
        records += await _delete_in_batches(store, space, tenant_id)
        await store.delete_tenant(space, tenant_id)  # what no record head names (partial writes)
        await store.flush(space)
        touched.add(space)
    return records, points, touched


async def _delete_in_batches(store: VectorStore, space: EmbeddingSpace, tenant_id: str) -> int:
    """The tenant's records, BATCH at a time: each store call stays short, so searches of
    other tenants are not held up behind one delete of everything (bench/README.md §7)."""
    deleted = 0
    while True:
        page, _ = await store.scroll_records(space, tenant_id, None, BATCH, include_expired=True)
        if not page:
            return deleted
        n = await store.delete_records(space, tenant_id, of_records([r.record_id for r in page]))
        deleted += n
        if n == 0:
            return deleted


async def _compact(store: Any, spaces: set[EmbeddingSpace]) -> list[str]:
    compact = getattr(store, "compact_tenant_data", None)
    if compact is None or not spaces:
        return []
    done = []
    for space in sorted(spaces, key=lambda s: s.key):
        await compact(space)
        done.append(space.key)
    return done
