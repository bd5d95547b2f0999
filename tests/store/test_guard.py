"""GuardedStore: the store contract kept, writes refused below the floor, readiness that tells
the truth about failed writes. On a real EdgeStore; the disk's free space is set by the test."""

from __future__ import annotations

import errno
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from tests.store.contract import (
    SPACE,
    VectorStoreContract,
    delete_records,
    put,
    query,
    record_points,
    update_metadata,
    upserts,
    vec,
)
from vecpipe.diskspace import MIB, FreeSpaceFloor
from vecpipe.errors import StorageFull, StoreError
from vecpipe.models import ChunkPoint, EmbeddingSpace
from vecpipe.store.base import VectorStore
from vecpipe.store.edge import EdgeStore
from vecpipe.store.guard import OPEN_RESERVE_BYTES, GuardedStore, check_writable, guard_edge

FLOOR = 64 * MIB
OTHER = EmbeddingSpace(model="contract/other", dimension=8)


class Gauge:
    def __init__(self, free: int) -> None:
        self.free = free

    def __call__(self, path: Path) -> int:
        return self.free


class FlakyEdge(EdgeStore):
    """An EdgeStore whose flushes, or upserts, fail with the error the test sets."""

    flush_error: Exception | None = None
    upsert_error: Exception | None = None

    async def flush(self, space: EmbeddingSpace) -> None:
        if self.flush_error is not None:
            raise self.flush_error
        await super().flush(space)

    async def upsert_chunks(self, space: EmbeddingSpace, points: Sequence[ChunkPoint]) -> None:
        if self.upsert_error is not None:
            raise self.upsert_error
        await super().upsert_chunks(space, points)


class TestGuardedStoreContract(VectorStoreContract):
    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[VectorStore]:
        async with EdgeStore(tmp_path / "data") as edge:
            yield guard_edge(edge, tmp_path / "data", MIB)  # the real disk, far above 1 MiB


@pytest.fixture
def gauge() -> Gauge:
    return Gauge(10 * FLOOR)


@pytest.fixture
async def edge(tmp_path: Path) -> AsyncIterator[FlakyEdge]:
    store = FlakyEdge(tmp_path / "data")
    async with store:
        yield store


@pytest.fixture
def guarded(edge: FlakyEdge, gauge: Gauge, tmp_path: Path) -> GuardedStore:
    return GuardedStore(edge, FreeSpaceFloor(tmp_path, FLOOR, measure=gauge))


async def test_below_the_floor_writes_are_refused_and_reads_go_on(
    guarded: GuardedStore, gauge: Gauge
) -> None:
    await put(guarded, record_points("t1", "r1", [vec(a=1)]))
    gauge.free = FLOOR - 1
    with pytest.raises(StorageFull, match="below the floor"):
        await guarded.write(SPACE, upserts(record_points("t1", "r2", [vec(b=1)])))
    for write in (
        delete_records(guarded, "t1", ["r1"]),
        update_metadata(guarded, "t1", "r1", {"k": "v"}, 1),
        guarded.delete_tenant(SPACE, "t1"),
    ):
        with pytest.raises(StorageFull):
            await write
    with pytest.raises(StorageFull):
        await check_writable(guarded)
    await guarded.flush(SPACE)  # durability of what was written is never refused
    assert [h.id for h in await guarded.search(SPACE, query("t1", vec(a=1), 5))] == ["r1"]
    assert await guarded.count(SPACE, "t1") == 1
    with pytest.raises(StorageFull, match="below the floor"):
        await guarded.check_ready()

    gauge.free = FLOOR  # space is back: no reopening, no restart
    await put(guarded, record_points("t1", "r2", [vec(b=1)]))
    await guarded.check_ready()
    assert await guarded.count(SPACE, "t1") == 2


async def test_a_space_not_open_yet_needs_room_to_open(
    edge: FlakyEdge, gauge: Gauge, tmp_path: Path
) -> None:
    cost = 40 * MIB
    guarded = GuardedStore(
        edge, FreeSpaceFloor(tmp_path, FLOOR, measure=gauge), open_cost=lambda space: cost
    )
    gauge.free = OPEN_RESERVE_BYTES + cost - 1
    with pytest.raises(StorageFull, match=f"cannot open space {OTHER.key}: that needs 56.0 MiB"):
        await guarded.search(OTHER, query("t1", vec(a=1), 5))
    gauge.free += 1  # below the floor still, but room enough to load the shard
    assert await guarded.search(OTHER, query("t1", vec(a=1), 5)) == []
    gauge.free = 0  # open now: reads need nothing more
    assert await guarded.count(OTHER) == 0


async def test_a_failed_flush_is_not_ready_until_a_flush_succeeds(
    guarded: GuardedStore, edge: FlakyEdge
) -> None:
    await put(guarded, record_points("t1", "r1", [vec(a=1)]))
    await guarded.check_ready()
    edge.flush_error = StoreError("edge flush failed in space x: tracker_journal.dat is short")
    await guarded.write(SPACE, upserts(record_points("t1", "r2", [vec(b=1)])))
    with pytest.raises(StoreError, match="tracker_journal"):
        await guarded.flush(SPACE)
    for _ in range(3):  # check_ready retries the flush: still failing, still not ready
        with pytest.raises(StoreError, match=f"writes to space {SPACE.key} fail: .*tracker"):
            await guarded.check_ready()

    edge.flush_error = None
    await guarded.check_ready()  # its own retried flush went through
    await guarded.check_ready()


async def test_a_failed_write_is_not_ready_until_its_space_flushes(
    guarded: GuardedStore, edge: FlakyEdge
) -> None:
    edge.upsert_error = StoreError("edge upsert failed: Read-only file system")
    edge.flush_error = StoreError("edge flush failed: Read-only file system")
    with pytest.raises(StoreError, match="upsert failed"):
        await guarded.write(SPACE, upserts(record_points("t1", "r1", [vec(a=1)])))
    with pytest.raises(StoreError, match="not ready until one succeeds"):
        await guarded.check_ready()
    edge.upsert_error = edge.flush_error = None
    await put(guarded, record_points("t1", "r1", [vec(a=1)]))
    await guarded.check_ready()


async def test_a_write_that_meets_a_full_disk_is_storage_full(
    guarded: GuardedStore, edge: FlakyEdge
) -> None:
    try:
        raise OSError(errno.ENOSPC, "No space left on device")
    except OSError as cause:
        edge.upsert_error = StoreError("edge upsert failed in space x: No space left on device")
        edge.upsert_error.__cause__ = cause
    edge.flush_error = StoreError("edge flush failed: No space left on device")
    with pytest.raises(StorageFull, match="the disk is full"):
        await guarded.write(SPACE, upserts(record_points("t1", "r1", [vec(a=1)])))
    with pytest.raises(StoreError, match=r"fail: .*the disk is full"):
        await guarded.check_ready()


async def test_without_a_floor_nothing_is_measured(edge: FlakyEdge) -> None:
    guarded = GuardedStore(edge)  # a remote store: its disk is not ours
    assert guarded.floor is None
    await put(guarded, record_points("t1", "r1", [vec(a=1)]))
    await check_writable(guarded)
    await check_writable(edge)  # an unguarded store never refuses up front
    assert guarded.inner is edge
