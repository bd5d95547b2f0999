"""GuardedStore: the store as the rest of vecpipe sees it; refuses writes on a full disk and
reports honestly whether writes work.

It wraps either backend (`resources.open_store`), so neither adapter repeats this:

- **Free-space floor** (diskspace.py), for a store that writes under the data dir (Edge; not a
  Qdrant server, whose disk is not ours): every write call is checked first and refused with
  StorageFull below the floor. Opening a space is checked too: loading an Edge shard touches
  pages of its memory maps, and on a disk with nothing left that is a SIGBUS. It needs a
  small reserve (`OPEN_RESERVE_BYTES`), plus on tmpfs the holes of the shard's files, which
  a load fills (diskspace.py). So after a restart on a full disk, or when space comes back,
  a read answers 507 until there is room, instead of killing the process. Spaces opened
  already keep serving reads at any level.
- **Readiness tells the truth**: a write or flush that fails marks its space failed, with the
  reason, and `check_ready` raises until a flush of that space succeeds again. `check_ready`
  retries that flush itself, so a worker that waits for readiness before taking work is not
  left waiting for a write it would never make. A store whose flushes keep failing (a damaged
  shard, a read-only disk) stays not ready, with the reason, for as long as they fail.
- A write that meets a full disk anyway (ENOSPC from a call in flight) is StorageFull too.

`flush` is never refused: it makes writes already applied durable, and an acknowledgement
may be waiting on it. `inner` is the wrapped store, for what only one backend offers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TypeVar

from vecpipe.diskspace import (
    MIB,
    FreeSpaceFloor,
    fills_holes_on_read,
    is_disk_full,
    mib,
    sparse_bytes,
    storage_full,
)
from vecpipe.errors import StorageFull, StoreError
from vecpipe.models import EmbeddingSpace, SearchHit, StoredRecord
from vecpipe.store.base import VectorStore
from vecpipe.store.conditions import Condition
from vecpipe.store.edge import generations as edge_generations
from vecpipe.store.query import SearchQuery
from vecpipe.store.writes import WriteBatch, WriteResult

log = logging.getLogger(__name__)
T = TypeVar("T")

OPEN_RESERVE_BYTES = 16 * MIB
"""Free space needed to open a space not opened yet (or the floor, when that is lower): an
Edge load replays the writes its WAL holds beyond the last flush and rewrites small journals
(~30 KiB measured). After a clean close that is nothing; after a kill, up to
`FULL_FLUSH_SECONDS` of writes (~77 MiB at full ingest speed, 384-d), which the floor (128 MiB
by default) kept free when they were written: this reserve is for the usual case."""


OpenCost = Callable[[EmbeddingSpace], int]
"""Bytes that opening a space may allocate (beyond the reserve). Blocks: run off the loop."""


class GuardedStore:
    """A VectorStore wrapping another; `floor` None: no free-space check (a remote store)."""

    def __init__(
        self,
        store: VectorStore,
        floor: FreeSpaceFloor | None = None,
        *,
        open_cost: OpenCost | None = None,
    ) -> None:
        self.inner = store
        self.floor = floor if floor is not None and floor.enabled else None
        self._open_cost = open_cost
        self._opened: set[str] = set()  # spaces used successfully: open, no reserve needed
        self._failed: dict[str, tuple[EmbeddingSpace, str]] = {}  # space key -> last failure

    def __repr__(self) -> str:
        return f"guarded({self.inner!r})"

    # ------------------------------------------------------------------------ the protocol

    async def ensure_space(self, space: EmbeddingSpace) -> None:
        await self._read(space, lambda: self.inner.ensure_space(space))

    async def write(self, space: EmbeddingSpace, batch: WriteBatch) -> WriteResult:
        return await self._write(space, lambda: self.inner.write(space, batch))

    async def stored_records(
        self, space: EmbeddingSpace, tenant_id: str, record_ids: Sequence[str]
    ) -> dict[str, StoredRecord]:
        return await self._read(
            space, lambda: self.inner.stored_records(space, tenant_id, record_ids)
        )

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
        return await self._read(
            space,
            lambda: self.inner.scroll_records(
                space, tenant_id, after, limit, where, include_expired=include_expired
            ),
        )

    async def search(self, space: EmbeddingSpace, query: SearchQuery) -> list[SearchHit]:
        return await self._read(space, lambda: self.inner.search(space, query))

    async def count(self, space: EmbeddingSpace, tenant_id: str | None = None) -> int:
        return await self._read(space, lambda: self.inner.count(space, tenant_id))

    async def count_records(
        self, space: EmbeddingSpace, tenant_id: str, where: Condition | None = None
    ) -> int:
        return await self._read(space, lambda: self.inner.count_records(space, tenant_id, where))

    async def tenants(self, space: EmbeddingSpace) -> dict[str, int]:
        return await self._read(space, lambda: self.inner.tenants(space))

    async def delete_tenant(self, space: EmbeddingSpace, tenant_id: str) -> None:
        await self._write(space, lambda: self.inner.delete_tenant(space, tenant_id))

    async def facets(
        self,
        space: EmbeddingSpace,
        tenant_id: str,
        keys: Sequence[str],
        where: Condition | None = None,
        top: int = 10,
    ) -> dict[str, list[tuple[str, int]]]:
        return await self._read(
            space, lambda: self.inner.facets(space, tenant_id, keys, where, top)
        )

    async def ensure_payload_index(self, space: EmbeddingSpace, key: str, kind: str) -> None:
        await self._read(space, lambda: self.inner.ensure_payload_index(space, key, kind))

    async def flush(self, space: EmbeddingSpace) -> None:
        await self._attempt(space, lambda: self.inner.flush(space))
        self._succeeded(space)

    async def check_ready(self) -> None:
        """Not ready below the floor, when the backend says so, or while a space's writes
        fail (retrying its flush first: ready again as soon as one succeeds)."""
        if self.floor is not None:
            await self.floor.check()
        await self.inner.check_ready()
        for key, (space, _) in list(self._failed.items()):
            try:
                await self.flush(space)
            except StoreError:
                _, reason = self._failed.get(key, (space, "unknown"))
                raise StoreError(
                    f"writes to space {key} fail: {reason}; not ready until one succeeds"
                ) from None

    async def check_writable(self) -> None:
        """Raise StorageFull now if a write would be refused (before costly work for it)."""
        if self.floor is not None:
            await self.floor.check()

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def delete_records(self, space: EmbeddingSpace, tenant_id: str, where: Condition) -> int:
        return await self._write(space, lambda: self.inner.delete_records(space, tenant_id, where))

    async def spaces(self) -> list[EmbeddingSpace]:
        return await self.inner.spaces()

    async def compact_tenant_data(self, space: EmbeddingSpace) -> None:
        """The inner store's, for a store that has it (Edge); else nothing to do."""
        compact = getattr(self.inner, "compact_tenant_data", None)
        if compact is not None:
            await self._write(space, lambda: compact(space))

    # ------------------------------------------------------------------------ internals

    async def _read(self, space: EmbeddingSpace, call: Callable[[], Awaitable[T]]) -> T:
        if self.floor is not None and space.key not in self._opened:
            await self._check_room_to_open(self.floor, space)
        result = await call()
        self._opened.add(space.key)
        return result

    async def _write(self, space: EmbeddingSpace, call: Callable[[], Awaitable[T]]) -> T:
        if self.floor is not None:
            await self.floor.check()
            if space.key not in self._opened:  # the write would open it first
                await self._check_room_to_open(self.floor, space)
        result = await self._attempt(space, call)
        self._opened.add(space.key)
        return result

    async def _attempt(self, space: EmbeddingSpace, call: Callable[[], Awaitable[T]]) -> T:
        """Run a write or flush; a store failure marks the space failed, with its reason."""
        try:
            return await call()
        except StoreError as exc:
            failure = storage_full(f"store write in space {space.key}") if _full(exc) else exc
            if space.key not in self._failed:
                log.warning("store writes fail in space %s: %s", space.key, failure.message)
            self._failed[space.key] = (space, failure.message)
            if failure is exc:
                raise
            raise failure from exc

    async def _check_room_to_open(self, floor: FreeSpaceFloor, space: EmbeddingSpace) -> None:
        cost = await asyncio.to_thread(self._open_cost, space) if self._open_cost else 0
        needed = min(floor.min_free_bytes, OPEN_RESERVE_BYTES) + cost
        free = await floor.free()
        if free < needed:
            raise StorageFull(
                f"cannot open space {space.key}: that needs {mib(needed)} of the "
                f"{floor.label} disk, which has {mib(free)} free"
            )

    def _succeeded(self, space: EmbeddingSpace) -> None:
        if self._failed.pop(space.key, None) is not None:
            log.info("store writes in space %s succeed again", space.key)


def guard_edge(store: VectorStore, data_dir: Path, min_free_bytes: int) -> GuardedStore:
    """The guard for an EdgeStore on `data_dir` (its shards in `data_dir/shards`)."""
    floor = FreeSpaceFloor(data_dir, min_free_bytes)
    shards_dir = data_dir / "shards"

    def open_cost(space: EmbeddingSpace) -> int:
        """What loading the space's shard may allocate: on tmpfs, the holes of the segments
        it populates (counted whole, payload storage too: 87 MiB for the 55 MiB measured on
        a fresh shard); the WAL is left out, only writes touch it."""
        live = edge_generations.live_dir(shards_dir, space.key)
        if not live.is_dir() or not fills_holes_on_read(live):
            return 0
        return sparse_bytes(live, skip=frozenset({"wal"}))

    return GuardedStore(store, floor, open_cost=open_cost)


async def check_writable(store: VectorStore) -> None:
    """Raise StorageFull if `store` refuses writes now; a store without a guard never does."""
    if isinstance(store, GuardedStore):
        await store.check_writable()


def _full(exc: StoreError) -> bool:
    return not isinstance(exc, StorageFull) and is_disk_full(exc)
