"""EdgeStore: the VectorStore on Qdrant Edge, in-process, one shard per embedding space.

Shards live in `data_dir/shards/<space.key>`, created on first use and loaded when present.
Edge allows one open shard per directory (its WAL is locked), so one EdgeStore owns a data
dir; a second one, in this process or another, fails with StoreError.

Threading (measured on qdrant-edge-py 0.9.0). Edge has no async API and each call holds the
GIL for its whole run: a `time.sleep(0.001)` in another thread returned after 83 ms, when a
4096-point upsert ended; a flush (fsync) holds it 40-300 ms, more on a busy disk. Calls
therefore run on one executor thread owned by the store, never on the loop, and are kept
short: upserts, retrieves and deletes go in batches of 256 (~15-25 ms for 256 points at
384-d); a search is one to three calls of a few ms; flushes are group-committed (`flush`).
Concurrent use of one shard is safe: one thread upserting, deleting by filter, setting
payload and optimizing while two threads queried, counted and scrolled it for 8 s raised
nothing. But with the GIL held, more threads would add no parallelism, so one thread serves
every shard, and calls run in the order they were made (a flush made after an upsert covers
it). Calls on a space also hold the space's asyncio lock while they run: `optimize()` takes
it to close the shard while a child process indexes it (edge_optimize.py), `aclose()` to
let the calls in flight finish.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Coroutine, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import qdrant_edge as qe

from vecpipe.errors import ClosedError, StoreError, ValidationError, VecpipeError
from vecpipe.lifecycle import AsyncResource
from vecpipe.models import ChunkPoint, EmbeddingSpace, SearchHit, StoredRecord
from vecpipe.store import edge_shard
from vecpipe.store.edge_optimize import OptimizeReport, optimize_closed_shard
from vecpipe.store.grouping import ChunkHit, search_records
from vecpipe.store.payload import (
    METADATA,
    RECORD_ID,
    SEARCH_FIELDS,
    VERSION,
    batched,
    belongs_to,
    checked_vector,
    chunk_payload,
    parse_metadata_filter,
    point_id,
    point_id_of,
    stored_record,
    write_batches,
)
from vecpipe.store.readiness import probe_data_dir

log = logging.getLogger(__name__)
T = TypeVar("T")

BATCH_SIZE = 256
"""Points per upsert call, ids per retrieve or delete call: keeps each GIL hold short."""


@dataclass(frozen=True)
class IndexStatus:
    """How much of a space is HNSW-indexed; `unindexed` points are searched brute force."""

    points: int
    indexed_vectors: int
    segments: int

    @property
    def unindexed(self) -> int:
        return max(0, self.points - self.indexed_vectors)


@dataclass(eq=False)
class _Space:
    space: EmbeddingSpace
    path: Path
    shard: qe.EdgeShard | None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    writes: int = 0  # write calls made so far
    flushed: int = 0  # write calls a finished flush covers
    flush_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class EdgeStore(AsyncResource):
    """Qdrant Edge shards in `data_dir/shards`; use as `async with EdgeStore(path) as store`."""

    def __init__(self, data_dir: Path) -> None:
        self._data_dir = Path(data_dir)
        self._shards_dir = self._data_dir / "shards"
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vecpipe-edge")
        self._spaces: dict[str, _Space] = {}
        self._opening: dict[str, asyncio.Task[_Space]] = {}
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"spaces={sorted(self._spaces)}"
        return f"EdgeStore({str(self._data_dir)!r}, {state})"

    # ------------------------------------------------------------------------ the protocol

    async def ensure_space(self, space: EmbeddingSpace) -> None:
        await self._space(space)

    async def stored_records(
        self, space: EmbeddingSpace, tenant_id: str, record_ids: Sequence[str]
    ) -> dict[str, StoredRecord]:
        self._check_open()
        wanted = list(dict.fromkeys(record_ids))
        if not wanted:
            return {}
        payloads = await self._chunk_zeros(await self._space(space), tenant_id, wanted, None)
        return {record_id: stored_record(p) for record_id, p in payloads.items()}

    async def upsert_chunks(self, space: EmbeddingSpace, points: Sequence[ChunkPoint]) -> None:
        self._check_open()
        for point in points:
            if len(point.vector) != space.dimension:
                raise ValidationError(
                    f"vector has {len(point.vector)} dimensions, the space has {space.dimension}"
                )
        if not points:
            return
        target = await self._space(space)
        for version, batch in write_batches(points, BATCH_SIZE):
            rows = [(point_id_of(p), p.vector, chunk_payload(p)) for p in batch]
            await self._write(target, "upsert", edge_shard.upsert, rows, version)

    async def delete_stale_chunks(
        self, space: EmbeddingSpace, tenant_id: str, record_id: str, keep: int, version: int
    ) -> None:
        self._check_open()
        if keep < 0:
            raise ValidationError("keep must be >= 0")
        target = await self._space(space)
        stale = edge_shard.chunks_from_filter(tenant_id, record_id, keep, version)
        await self._write(target, "delete", edge_shard.delete_where, stale)

    async def delete_older_versions(
        self, space: EmbeddingSpace, tenant_id: str, versions: Mapping[str, int]
    ) -> None:
        self._check_open()
        if not versions:
            return
        target = await self._space(space)
        for batch in batched(list(versions.items()), BATCH_SIZE):
            older = edge_shard.older_versions_filter(tenant_id, dict(batch))
            await self._write(target, "delete", edge_shard.delete_where, older)

    async def delete_record_version(
        self, space: EmbeddingSpace, tenant_id: str, record_id: str, version: int
    ) -> None:
        self._check_open()
        target = await self._space(space)
        lost = edge_shard.record_filter(tenant_id, record_id, edge_shard.version_is(version))
        await self._write(target, "delete", edge_shard.delete_where, lost)

    async def update_metadata(
        self,
        space: EmbeddingSpace,
        tenant_id: str,
        record_id: str,
        metadata: Mapping[str, Any],
        version: int,
    ) -> None:
        self._check_open()
        target = await self._space(space)
        chunks = edge_shard.record_filter(tenant_id, record_id, edge_shard.not_newer_than(version))
        payload = {METADATA: dict(metadata), VERSION: version}
        await self._write(target, "set_payload", edge_shard.set_payload_where, chunks, payload)

    async def delete_records(
        self, space: EmbeddingSpace, tenant_id: str, record_ids: Sequence[str]
    ) -> None:
        self._check_open()
        wanted = list(dict.fromkeys(record_ids))
        if not wanted:
            return
        target = await self._space(space)
        for batch in batched(wanted, BATCH_SIZE):
            chunks = edge_shard.records_filter(tenant_id, batch)
            await self._write(target, "delete", edge_shard.delete_where, chunks)

    async def scroll_records(
        self, space: EmbeddingSpace, tenant_id: str, after: str | None, limit: int
    ) -> tuple[list[StoredRecord], str | None]:
        self._check_open()
        target = await self._space(space)
        flt = edge_shard.chunk_zeros_filter(tenant_id)
        payloads, cursor = await self._call(
            target, "scroll", edge_shard.scroll_payloads, flt, after, limit
        )
        found = [stored_record(p) for p in payloads if belongs_to(p, tenant_id)]
        return found, cursor

    async def delete_tenant(self, space: EmbeddingSpace, tenant_id: str) -> None:
        self._check_open()
        target = await self._space(space)
        flt = edge_shard.tenant_filter(tenant_id)
        await self._write(target, "delete", edge_shard.delete_where, flt)

    async def search(
        self,
        space: EmbeddingSpace,
        tenant_id: str,
        vector: Sequence[float],
        limit: int,
        metadata_filter: Mapping[str, Any] | None = None,
    ) -> list[SearchHit]:
        self._check_open()
        query = checked_vector(vector, space.dimension)
        matches = parse_metadata_filter(metadata_filter)
        target = await self._space(space)
        flt = edge_shard.search_filter(tenant_id, matches)

        async def query_chunks(fetch: int) -> list[ChunkHit]:
            return await self._call(target, "query", edge_shard.query_chunks, query, flt, fetch)

        async def fetch_chunk_zero(record_ids: Sequence[str]) -> dict[str, Mapping[str, Any]]:
            return await self._chunk_zeros(target, tenant_id, record_ids, SEARCH_FIELDS)

        return await search_records(query_chunks, fetch_chunk_zero, tenant_id, limit)

    async def count(self, space: EmbeddingSpace, tenant_id: str | None = None) -> int:
        self._check_open()
        target = await self._space(space)
        flt = edge_shard.tenant_filter(tenant_id) if tenant_id is not None else None
        return await self._call(target, "count", edge_shard.count, flt)

    async def flush(self, space: EmbeddingSpace) -> None:
        """Group commit: one Edge flush covers every write made before it started.

        An Edge flush holds the GIL for 40-300 ms (fsync), even with nothing to write, so
        a flush with no new writes is skipped and callers waiting for a flush in progress
        share the next one. (Writes already survive a killed process through Edge's WAL;
        the flush makes them survive an OS crash or power loss too.)
        """
        self._check_open()
        target = self._spaces.get(space.key)
        if target is None:  # never opened here: nothing was written through this store
            return
        needed = target.writes
        async with target.flush_lock:
            if target.flushed >= needed:
                return
            covered = target.writes
            await self._call(target, "flush", qe.EdgeShard.flush)
            target.flushed = max(target.flushed, covered)

    async def check_ready(self) -> None:
        self._check_open()
        await asyncio.to_thread(probe_data_dir, self._shards_dir)
        for key, target in self._spaces.items():
            if target.shard is None and not target.lock.locked() and key not in self._opening:
                raise StoreError(f"space {key} is not open: its last reopen failed")

    async def aclose(self) -> None:
        """Let calls in flight finish, flush and close every shard, stop the thread."""
        if self._closed:
            return
        self._closed = True
        errors: list[StoreError] = []
        try:
            for key in list(self._opening):
                await self._settle(key)
            for target in list(self._spaces.values()):
                async with target.lock:
                    await self._settle(target.space.key)  # a reopen an optimize left running
                    shard, target.shard = target.shard, None
                    if shard is not None:
                        try:
                            await self._run("close", target.space, edge_shard.close_shard, shard)
                        except StoreError as exc:
                            errors.append(exc)
        finally:
            await asyncio.to_thread(self._executor.shutdown, True)
        if errors:
            raise errors[0]

    # ------------------------------------------------------------------------ maintenance

    async def optimize(self, space: EmbeddingSpace) -> OptimizeReport:
        """Build HNSW indexes for a space; for a background task, never a request path.

        The shard is closed while a child process optimizes it, so calls on this space wait
        (other spaces and the loop go on; closing and reopening stall the loop ~0.1-0.5 s).
        Measured at 384-d on 2 busy CPUs: a first run over 20k points took 10-15 s; run
        after every ~10k new points (`index_status().unindexed`), a run takes 7-10 s.
        Runs below the indexing threshold (~6.5k points at 384-d) change nothing.
        Cancelling kills the child and reopens the shard; cancel it before `aclose()`.
        """
        target = await self._space(space)
        async with target.lock:
            self._check_open()
            shard, target.shard = target.shard, None
            if shard is not None:
                covered = target.writes
                await self._run("close", space, edge_shard.close_shard, shard)
                target.flushed = max(target.flushed, covered)
            try:
                return await optimize_closed_shard(target.path)
            finally:
                await self._ensure_shard(target)

    async def index_status(self, space: EmbeddingSpace) -> IndexStatus:
        """For a maintenance task deciding when to `optimize()` (e.g. unindexed > 10k)."""
        self._check_open()
        info = await self._call(await self._space(space), "info", qe.EdgeShard.info)
        return IndexStatus(info.points_count, info.indexed_vectors_count, info.segments_count)

    # ------------------------------------------------------------------------ internals

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError("the edge store is closed")

    async def _space(self, space: EmbeddingSpace) -> _Space:
        """The open space; opened once however many callers ask at the same time."""
        self._check_open()
        target = self._spaces.get(space.key)
        if target is not None:
            return target
        return await self._opened(space.key, lambda: self._open(space))

    async def _open(self, space: EmbeddingSpace) -> _Space:
        path = self._shards_dir / space.key
        shard = await self._run("open", space, edge_shard.open_shard, path, space.dimension)
        target = self._spaces[space.key] = _Space(space, path, shard)
        return target

    async def _ensure_shard(self, target: _Space) -> qe.EdgeShard:
        """The space's shard, reopened if an optimize could not reopen it."""
        if target.shard is None:
            await self._opened(target.space.key, lambda: self._reopen(target))
        if target.shard is None:
            raise StoreError(f"space {target.space.key} is not open")
        return target.shard

    async def _reopen(self, target: _Space) -> _Space:
        dimension = target.space.dimension
        open_shard = edge_shard.open_shard
        target.shard = await self._run("open", target.space, open_shard, target.path, dimension)
        return target

    async def _opened(self, key: str, opener: Callable[[], Coroutine[Any, Any, _Space]]) -> _Space:
        """Run one open per space at a time, as a task a cancelled caller cannot stop.

        An open abandoned half way would keep its shard, and the WAL lock, to itself.
        """
        task = self._opening.get(key)
        if task is None:
            task = asyncio.create_task(opener(), name=f"edge-open-{key}")
            self._opening[key] = task
            task.add_done_callback(functools.partial(self._opening_done, key))
        return await asyncio.shield(task)

    def _opening_done(self, key: str, task: asyncio.Task[_Space]) -> None:
        if self._opening.get(key) is task:
            del self._opening[key]
        if not task.cancelled():
            task.exception()  # retrieved here: its callers may all have been cancelled

    async def _settle(self, key: str) -> None:
        """Wait for an open in progress, whatever its outcome."""
        task = self._opening.get(key)
        if task is not None:
            await asyncio.wait([task])

    async def _chunk_zeros(
        self,
        target: _Space,
        tenant_id: str,
        record_ids: Sequence[str],
        fields: Sequence[str] | None,
    ) -> dict[str, Mapping[str, Any]]:
        """Chunk 0 payloads of these records, by record id; other tenants' points dropped."""
        found: dict[str, Mapping[str, Any]] = {}
        wanted = set(record_ids)
        for batch in batched(record_ids, BATCH_SIZE):
            ids = [point_id(tenant_id, record_id, 0) for record_id in batch]
            payloads = await self._call(
                target, "retrieve", edge_shard.retrieve_payloads, ids, fields
            )
            for payload in payloads:
                record_id = payload.get(RECORD_ID)
                if belongs_to(payload, tenant_id) and record_id in wanted:
                    found[str(record_id)] = payload
        return found

    async def _write(self, target: _Space, op: str, fn: Callable[..., None], *args: Any) -> None:
        try:
            await self._call(target, op, fn, *args)
        finally:  # a failed write may have been applied in part: flush it all the same
            target.writes += 1

    async def _call(self, target: _Space, op: str, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(shard, *args)` on the Edge thread while holding the space's lock."""
        async with target.lock:
            self._check_open()
            shard = await self._ensure_shard(target)
            return await self._run(op, target.space, fn, shard, *args)

    async def _run(self, op: str, space: EmbeddingSpace, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, functools.partial(fn, *args))
        except VecpipeError:
            raise
        except Exception as exc:
            raise StoreError(f"edge {op} failed in space {space.key}: {_reason(exc)}") from exc


def _reason(exc: BaseException) -> str:
    """Edge's own message, first line, bounded: engine errors, not payload content."""
    lines = str(exc).strip().splitlines()
    return (lines[0][:200] if lines else "") or type(exc).__name__
