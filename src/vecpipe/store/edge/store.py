"""EdgeStore: the VectorStore on Qdrant Edge, in-process, one shard per embedding space.

Shards live in `data_dir/shards`, one live directory per space (generations.py), created
on first use and loaded when present. One EdgeStore owns them: it holds the flock of
`shards/vecpipe.lock` (datadir.py) while open, so a second one, in this process or another,
fails with StoreLocked before it touches a shard (Edge's own WAL lock comes too late: a
second `EdgeShard.load` touches segment files before it fails, corrupting the live shard).
`open_resources` takes the data dir's lock before this one.

Edge calls run on the store's two threads (threads.py: one for writes, in order, one for
reads), never on the loop, and each is kept short. Writes go through `write` (versioned.py):
this store is the sole writer of its shards, so it settles version races with the fewest
calls. Conditions compile to Edge filters in filters.py.

Maintenance: with `optimize_after_points`, a task (maintenance.py) optimizes a space in the
background once that many points are unindexed or changed; `optimize()` indexes a copy of
the shard while this one keeps serving, then swaps it in (rebuild.py). Opening the store
removes the generations an earlier process left behind (generations.py).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import qdrant_edge as qe

from vecpipe import datadir
from vecpipe.errors import ClosedError, StoreError, ValidationError
from vecpipe.lifecycle import AsyncResource
from vecpipe.models import ChunkPoint, EmbeddingSpace, SearchHit, StoredRecord
from vecpipe.store.batching import batched, write_batches
from vecpipe.store.conditions import (
    Condition,
    chunk_zeros,
    facet_scope,
    for_tenant,
    meta,
    record_heads,
    visible,
)
from vecpipe.store.edge import generations as edge_generations
from vecpipe.store.edge import rebuild as edge_rebuild
from vecpipe.store.edge import search as edge_search
from vecpipe.store.edge import shard as edge_shard
from vecpipe.store.edge.filters import compile_filter
from vecpipe.store.edge.maintenance import EdgeMaintenance
from vecpipe.store.edge.optimize import OptimizeReport
from vecpipe.store.edge.space import IndexStatus, OpenSpace, ShardHandle
from vecpipe.store.edge.threads import EdgeThreads
from vecpipe.store.facets import facet_counts
from vecpipe.store.payload import TENANT_ID, belongs_to, chunk_payload, stored_record
from vecpipe.store.point_ids import point_id_of
from vecpipe.store.query import NO_KEYWORD_INDEX, SearchQuery
from vecpipe.store.readiness import probe_data_dir
from vecpipe.store.vectors import check_vector
from vecpipe.store.versioned import VersionedWriter
from vecpipe.store.writes import WriteBatch, WriteResult

log = logging.getLogger(__name__)
T = TypeVar("T")

BATCH_SIZE = 256
"""Points per upsert call, ids per retrieve or delete call: keeps each GIL hold short."""

_INDEX_KINDS: dict[str, qe.KeywordIndexParams | qe.FloatIndexParams] = {
    "keyword": qe.KeywordIndexParams(on_disk=True),  # as shard.py's own indexes
    "float": qe.FloatIndexParams(on_disk=True),
}

FULL_FLUSH_SECONDS = 10.0
"""Edge's own flush at most this often under writes (`flush`): between them the WAL makes
writes durable, and a load after a kill replays at most this long's writes. Measured at
384-d: 90k points (30 s of full-speed gateway ingest) left 231 MiB of WAL and took 5.1 s to
replay on load; 10 s of them (~77 MiB) fit under the free-space floor's default 128 MiB,
which a replay on a full disk needs (diskspace.py)."""
MAX_TENANTS = 1_000_000
"""Tenants `tenants()` lists per space at most (Edge's facet needs a limit)."""


class EdgeStore(AsyncResource):
    """Qdrant Edge shards in `data_dir/shards`; use as `async with EdgeStore(path) as store`.

    `optimize_after_points` > 0 starts the maintenance task (maintenance.py) with the
    first space opened; 0 leaves optimizing to the caller.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        optimize_after_points: int = 0,
        optimize_poll_seconds: float = 30.0,
        min_free_bytes: int = 0,
        full_flush_seconds: float = FULL_FLUSH_SECONDS,
    ) -> None:
        self._data_dir = Path(data_dir)
        self._full_flush_seconds = full_flush_seconds
        self._min_free_bytes = min_free_bytes  # an optimize's copy must leave this free
        self._shards_dir = self._data_dir / "shards"
        self._threads = EdgeThreads()
        self._spaces: dict[str, OpenSpace] = {}
        self._opening: dict[str, asyncio.Task[OpenSpace]] = {}
        self._closed = False
        self._owner: datadir.DataDirLock | None = None
        # The data dir's lock lets one process open these shards, and it writes through
        # here only: a sole writer, which versioned.py lets skip needless re-reads and cleanup.
        self._versioned = VersionedWriter(self, sole_writer=True)
        self._maintenance = (
            EdgeMaintenance(self, optimize_after_points, optimize_poll_seconds)
            if optimize_after_points > 0
            else None
        )

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"spaces={sorted(self._spaces)}"
        return f"EdgeStore({str(self._data_dir)!r}, {state})"

    # ------------------------------------------------------------------------ the protocol

    async def ensure_space(self, space: EmbeddingSpace) -> None:
        await self._space(space)

    async def write(self, space: EmbeddingSpace, batch: WriteBatch) -> WriteResult:
        """Through versioned.py, as the sole writer of its shards (see `open_resources`)."""
        self._check_open()
        return await self._versioned.write(space, batch)

    async def stored_records(
        self, space: EmbeddingSpace, tenant_id: str, record_ids: Sequence[str]
    ) -> dict[str, StoredRecord]:
        self._check_open()
        wanted = list(dict.fromkeys(record_ids))
        if not wanted:
            return {}
        target = await self._space(space)
        found: dict[str, StoredRecord] = {}
        for batch in batched(wanted, BATCH_SIZE):
            payloads = await self._call(
                target, "retrieve", edge_search.chunk_zeros, tenant_id, batch, None
            )
            found.update((record_id, stored_record(p)) for record_id, p in payloads.items())
        return found

    async def scroll_records(
        self,
        space: EmbeddingSpace,
        tenant_id: str,
        after: str | None,
        limit: int,
        where: Condition | None = None,
        *,
        include_expired: bool = False,
    ) -> tuple[list[StoredRecord], str | None]:
        self._check_open()
        target = await self._space(space)
        scope = for_tenant if include_expired else visible
        flt = compile_filter(scope(tenant_id, record_heads(where)))
        payloads, cursor = await self._call(
            target, "scroll", edge_shard.scroll_payloads, flt, after, limit
        )
        found = [stored_record(p) for p in payloads if belongs_to(p, tenant_id)]
        return found, cursor

    async def search(self, space: EmbeddingSpace, query: SearchQuery) -> list[SearchHit]:
        self._check_open()
        dense = query.like is None and query.mode != "keyword"
        vector = query.dense_vector(space.dimension) if dense else None
        flt = compile_filter(query.condition())
        target = await self._space(space)
        if query.mode != "dense" and not target.keyword:
            raise ValidationError(NO_KEYWORD_INDEX)
        return await self._call(target, "search", edge_search.search, vector, flt, query)

    async def count(self, space: EmbeddingSpace, tenant_id: str | None = None) -> int:
        self._check_open()
        target = await self._space(space)
        flt = compile_filter(for_tenant(tenant_id)) if tenant_id is not None else None
        return await self._call(target, "count", edge_shard.count, flt)

    async def count_records(
        self, space: EmbeddingSpace, tenant_id: str, where: Condition | None = None
    ) -> int:
        self._check_open()
        target = await self._space(space)
        flt = compile_filter(visible(tenant_id, record_heads(where)))
        return await self._call(target, "count", edge_shard.count, flt)

    async def tenants(self, space: EmbeddingSpace) -> dict[str, int]:
        self._check_open()
        target = await self._space(space)
        flt = compile_filter(chunk_zeros())
        return await self._call(
            target, "facet", edge_shard.facet_counts, TENANT_ID, flt, MAX_TENANTS
        )

    async def delete_tenant(self, space: EmbeddingSpace, tenant_id: str) -> None:
        self._check_open()
        target = await self._space(space)
        flt = compile_filter(for_tenant(tenant_id))
        doomed = await self._call(target, "count", edge_shard.count, flt)
        delete = functools.partial(edge_shard.delete_op, flt)
        await self._write(target, "delete", delete, weight=max(1, doomed))

    async def delete_records(self, space: EmbeddingSpace, tenant_id: str, where: Condition) -> int:
        self._check_open()
        target = await self._space(space)
        heads = compile_filter(for_tenant(tenant_id, record_heads(where)))
        doomed = await self._call(target, "count", edge_shard.count, heads)
        if doomed:
            points = compile_filter(for_tenant(tenant_id, where))
            weight = await self._call(target, "count", edge_shard.count, points)
            delete = functools.partial(edge_shard.delete_op, points)
            await self._write(target, "delete", delete, weight=max(1, weight))
        return int(doomed)

    async def facets(
        self,
        space: EmbeddingSpace,
        tenant_id: str,
        keys: Sequence[str],
        where: Condition | None = None,
        top: int = 10,
    ) -> dict[str, list[tuple[str, int]]]:
        self._check_open()
        flt = compile_filter(facet_scope(tenant_id, where))
        target = await self._space(space)

        async def keyword_indexed(key: str, path: str) -> bool:
            await self.ensure_payload_index(space, key, "keyword")
            return target.indexed.get(path) == "keyword"

        async def count_values(path: str) -> Iterable[tuple[str, int]]:
            counts = await self._call(target, "facet", edge_shard.facet_counts, path, flt, top)
            return counts.items()

        return await facet_counts(keys, keyword_indexed, count_values)

    async def ensure_payload_index(self, space: EmbeddingSpace, key: str, kind: str) -> None:
        """A keyword index on a metadata key, created once through the write path (an
        online optimize's copy gets it too)."""
        self._check_open()
        params = _INDEX_KINDS.get(kind)
        if params is None:
            raise ValidationError(f"no {kind!r} payload index: {', '.join(_INDEX_KINDS)}")
        path = meta(key).path
        target = await self._space(space)
        if path in target.indexed:
            return
        info = await self._call(target, "info", qe.EdgeShard.info)
        existing = info.payload_schema.get(path)
        if existing is None:
            op = functools.partial(qe.UpdateOperation.create_field_index, path, params)
            await self._write(target, "index", op)
        elif existing.data_type != qe.PayloadSchemaType.Keyword:
            kind = "float"  # indexed already, not as a keyword: the first kind asked wins
        target.indexed[path] = kind

    # ------------------------------------------------------------------------ versioned.py's

    async def upsert_chunks(self, space: EmbeddingSpace, points: Sequence[ChunkPoint]) -> None:
        self._check_open()
        for point in points:  # every vector checked before anything is written
            check_vector(point.vector, space.dimension)
        if not points:
            return
        target = await self._space(space)
        for version, batch in write_batches(points, BATCH_SIZE):
            rows = [(point_id_of(p), p.vector, chunk_payload(p)) for p in batch]
            upsert = functools.partial(edge_shard.upsert_op, rows, version, target.keyword)
            await self._write(target, "upsert", upsert, weight=len(rows))

    async def delete_where(
        self, space: EmbeddingSpace, tenant_id: str, where: Condition, *, weight: int = 1
    ) -> None:
        self._check_open()
        target = await self._space(space)
        flt = compile_filter(for_tenant(tenant_id, where))
        await self._write(target, "delete", functools.partial(edge_shard.delete_op, flt), weight)

    async def set_payload_where(
        self, space: EmbeddingSpace, tenant_id: str, where: Condition, payload: Mapping[str, Any]
    ) -> None:
        self._check_open()
        target = await self._space(space)
        flt = compile_filter(for_tenant(tenant_id, where))
        set_payload = functools.partial(edge_shard.set_payload_op, flt, dict(payload))
        await self._write(target, "set_payload", set_payload)

    async def flush(self, space: EmbeddingSpace) -> None:
        """Group commit: one sync covers every write made before it started.

        A sync is an fsync of the shard's WAL (`edge_shard.sync_wal`), which frees the GIL
        while the disk works; Edge's own flush (WAL and every segment file) holds the GIL
        for 40-300 ms, stalling searches and the loop, so it runs at most once per
        `full_flush_seconds` of writes (bounding what a load replays from the WAL), and on
        close. A sync with no new writes is skipped; callers waiting for a sync in progress
        share the next one. (Writes survive a killed process through the WAL even unsynced;
        the sync makes them survive an OS crash or power loss too.)
        """
        self._check_open()
        target = self._spaces.get(space.key)
        if target is None:  # never opened here: nothing was written through this store
            return
        needed = target.writes
        async with target.flush_lock:
            if target.flushed >= needed:
                return
            # Counted when queued: the write thread runs jobs in order, so this sync covers
            # every write queued before it, finished yet or not (another loop's, say).
            covered = target.writes
            if time.monotonic() - target.full_flush_at >= self._full_flush_seconds:
                await self._call(target, "flush", edge_rebuild.flush, target.path, target.mirror)
                target.full_flush_at = time.monotonic()
            else:
                await self._call(target, "flush", edge_rebuild.sync_wal, target.path, target.mirror)
            target.flushed = max(target.flushed, covered)

    async def __aenter__(self) -> EdgeStore:
        """Open: remove what earlier processes left under shards/ (the data dir's owner only:
        open_resources holds its lock), before any space is used."""
        self._check_open()
        if self._owner is not None:
            raise StoreError("the edge store is open already")
        loop = asyncio.get_running_loop()
        try:
            self._owner = await loop.run_in_executor(
                self._threads.writer, edge_generations.take_over, self._shards_dir
            )
        except BaseException:
            await self.aclose()
            raise
        return self

    async def check_ready(self) -> None:
        self._check_open()
        await asyncio.to_thread(probe_data_dir, self._shards_dir)

    async def aclose(self) -> None:
        """Stop maintenance, let calls in flight finish, flush and close every shard."""
        if self._closed:
            return
        self._closed = True
        errors: list[StoreError] = []
        try:
            if self._maintenance is not None:
                await self._maintenance.aclose()
            for key in list(self._opening):
                await self._wait_for_open(key)
            for target in list(self._spaces.values()):
                async with target.optimize_lock:  # one a caller started: it ends first
                    await target.handle.wait_idle()
                    try:
                        shard = target.handle.shard
                        await self._run(
                            "close", target.space, edge_shard.close_shard, shard, target.path
                        )
                        await self._run(
                            "close",
                            target.space,
                            edge_generations.save_changes,
                            target.path,
                            target.changed_points,
                        )
                    except StoreError as exc:
                        errors.append(exc)
        finally:
            await self._threads.shutdown()
            if self._owner is not None:
                self._owner.release()
        if errors:
            raise errors[0]

    # ------------------------------------------------------------------------ maintenance

    async def optimize(self, space: EmbeddingSpace) -> OptimizeReport:
        """Build HNSW indexes for a space, online: searches and writes go on meanwhile.

        A copy of the shard is optimized in a child process and swapped in (rebuild.py);
        it needs the shard's size again in free disk while it runs. Measured at 384-d on 2
        busy CPUs: a first run over 20k points took 10-15 s; run after every ~10k new points
        (`index_status().unindexed`), a run takes 7-10 s. Runs below the indexing threshold
        (~6.5k points at 384-d) change nothing. Cancelling kills the child and discards the
        copy; `aclose()` waits for an optimize in progress (the maintenance task's it cancels).
        """
        target = await self._space(space)
        async with target.optimize_lock:
            self._check_open()

            async def run(op: str, fn: Callable[..., T], *args: Any) -> T:
                return await self._run(op, space, fn, *args)

            return await edge_rebuild.optimize_online(
                target, run, self._shards_dir, self._min_free_bytes
            )

    async def compact_tenant_data(self, space: EmbeddingSpace) -> None:
        """Rewrite the space's shard from its live points (rebuild.py `rewrite_online`), so
        that nothing of deleted points stays on disk: Edge keeps their bytes in segments
        and in its WAL until those are rewritten. Offboarding runs it (core/offboard.py)."""
        target = await self._space(space)
        async with target.optimize_lock:
            self._check_open()

            async def run(op: str, fn: Callable[..., T], *args: Any) -> T:
                return await self._run(op, space, fn, *args)

            await edge_rebuild.rewrite_online(target, run, self._shards_dir)

    async def index_status(self, space: EmbeddingSpace) -> IndexStatus:
        """For deciding when to `optimize()` (maintenance.py): Edge's counts, and the
        points written since the last optimize, which Edge's counts cannot show."""
        self._check_open()
        target = await self._space(space)
        info = await self._call(target, "info", qe.EdgeShard.info)
        return IndexStatus(
            info.points_count,
            info.indexed_vectors_count,
            info.segments_count,
            changed_points=target.changed_points,
        )

    def open_spaces(self) -> list[EmbeddingSpace]:
        return [target.space for target in self._spaces.values()]

    def busy(self, space: EmbeddingSpace) -> bool:
        """Whether writes to the space are in flight (the maintenance task waits for quiet)."""
        target = self._spaces.get(space.key)
        return target is not None and target.writes_in_flight > 0

    # ------------------------------------------------------------------------ internals

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError("the edge store is closed")

    async def _space(self, space: EmbeddingSpace) -> OpenSpace:
        """The open space; opened once however many callers ask at the same time."""
        self._check_open()
        target = self._spaces.get(space.key)
        if target is not None:
            return target
        return await self._opened(space.key, lambda: self._open_space(space))

    async def _open_space(self, space: EmbeddingSpace) -> OpenSpace:
        path, shard, changed = await self._run(
            "open", space, edge_generations.open_live, self._shards_dir, space.key, space.dimension
        )
        keyword = await self._run("open", space, edge_shard.has_keyword_index, path)
        target = OpenSpace(space, path, ShardHandle(shard), changed_points=changed, keyword=keyword)
        self._spaces[space.key] = target
        if self._maintenance is not None:
            self._maintenance.start()
        return target

    async def _opened(
        self, key: str, opener: Callable[[], Coroutine[Any, Any, OpenSpace]]
    ) -> OpenSpace:
        """Run one open per space at a time, as a task a cancelled caller cannot stop.

        An open abandoned half way would keep its shard, and the WAL lock, to itself.
        """
        task = self._opening.get(key)
        if task is None:
            task = asyncio.create_task(opener(), name=f"edge-open-{key}")
            self._opening[key] = task
            task.add_done_callback(functools.partial(self._opening_done, key))
        return await asyncio.shield(task)

    def _opening_done(self, key: str, task: asyncio.Task[OpenSpace]) -> None:
        if self._opening.get(key) is task:
            del self._opening[key]
        if not task.cancelled():
            task.exception()  # retrieved here: its callers may all have been cancelled

    async def _wait_for_open(self, key: str) -> None:
        """Wait for an open in progress, whatever its outcome."""
        task = self._opening.get(key)
        if task is not None:
            await asyncio.wait([task])

    async def _write(
        self,
        target: OpenSpace,
        op: str,
        make_op: Callable[[], qe.UpdateOperation],
        weight: int = 1,
    ) -> None:
        target.writes_in_flight += 1
        target.changed_points += weight  # before queueing: in order with an optimize's copy
        # Before queueing too (a failed write may have been applied in part: it is flushed all
        # the same): a flush queued after this job covers it (`flush`).
        target.writes += 1
        try:
            # No await between reading `target.mirror` and queueing the job (in `_run`): the
            # job order on the write thread is then the order the mirror was seen in.
            await self._call(target, op, edge_rebuild.write, target.mirror, make_op, weight)
        finally:
            target.writes_in_flight -= 1

    async def _call(self, target: OpenSpace, op: str, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(shard, *args)` on an Edge thread; the shard stays open until it returns."""
        self._check_open()
        handle = target.handle
        shard = handle.acquire()
        try:
            return await self._run(op, target.space, fn, shard, *args)
        finally:
            handle.release()

    async def _run(self, op: str, space: EmbeddingSpace, fn: Callable[..., T], *args: Any) -> T:
        return await self._threads.run(op, space, fn, *args)

    async def spaces(self) -> list[EmbeddingSpace]:
        self._check_open()
        keys = await asyncio.to_thread(edge_generations.space_keys, self._shards_dir)
        found = {key: target.space for key, target in self._spaces.items()}
        for key in keys:
            space = EmbeddingSpace.from_key(key)
            if key not in found and space is not None:
                found[key] = space
        return [found[key] for key in sorted(found)]
