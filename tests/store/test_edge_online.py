"""EdgeStore's online optimize: a copy is indexed while the live shard serves, then swapped in."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import shutil
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path

import pytest
import qdrant_edge as qe

from tests.store.contract import (
    SPACE,
    delete_records,
    put,
    query,
    record_points,
    update_metadata,
    vec,
)
from tests.store.edge_support import GatedChild, shards, space_dirs
from vecpipe.errors import StoreError, StoreLocked
from vecpipe.store.edge import EdgeStore
from vecpipe.store.edge import generations as edge_generations
from vecpipe.store.edge import rebuild as edge_rebuild
from vecpipe.store.edge import shard as edge_shard


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[EdgeStore]:
    async with EdgeStore(tmp_path / "data") as store:
        yield store


async def test_writes_and_searches_go_on_during_an_optimize(
    store: EdgeStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "data"
    await put(store, *(record_points("t1", f"r{i}", [vec(a=1, b=i)], {"n": i}) for i in range(4)))
    child = GatedChild(tmp_path, monkeypatch)
    optimize = asyncio.create_task(store.optimize(SPACE))
    await child.wait_started()

    # The copy is being optimized: the live shard serves reads and takes writes.
    assert [hit.id for hit in await store.search(SPACE, query("t1", vec(a=1), 2))] == ["r0", "r1"]
    await put(store, record_points("t1", "new", [vec(c=1), vec(d=1)], {"n": 9}))
    await delete_records(store, "t1", ["r3"])
    await update_metadata(store, "t1", "r2", {"n": 20}, version=0)
    await store.flush(SPACE)
    assert [hit.id for hit in await store.search(SPACE, query("t1", vec(d=1), 1))] == ["new"]
    assert not optimize.done()

    child.release()
    report = await optimize
    assert report.points == 4  # the copy, as taken

    def check(records: Mapping[str, object]) -> None:
        assert sorted(records) == ["new", "r0", "r1", "r2"]

    check(await store.stored_records(SPACE, "t1", ["r0", "r1", "r2", "r3", "new"]))
    assert await store.count(SPACE, "t1") == 5
    assert (await store.stored_records(SPACE, "t1", ["r2"]))["r2"].metadata == {"n": 20}
    assert [hit.chunk for hit in await store.search(SPACE, query("t1", vec(d=1), 1))] == ["new#1"]
    assert space_dirs(data_dir) == [f"{SPACE.key}@1"]  # swapped in; the old one is gone

    await store.aclose()
    async with EdgeStore(data_dir) as reopened:  # the pointer leads to the optimized copy
        check(await reopened.stored_records(SPACE, "t1", ["r0", "r1", "r2", "r3", "new"]))
        assert await reopened.count(SPACE, "t1") == 5


async def test_optimizing_twice_moves_to_the_next_generation(
    store: EdgeStore, tmp_path: Path
) -> None:
    await put(store, record_points("t1", "r1", [vec(a=1)]))
    await store.optimize(SPACE)
    await put(store, record_points("t1", "r2", [vec(b=1)]))
    await store.optimize(SPACE)
    assert space_dirs(tmp_path / "data") == [f"{SPACE.key}@2"]
    assert await store.count(SPACE, "t1") == 2


async def test_a_copy_that_fails_to_open_is_discarded(
    store: EdgeStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await put(store, record_points("t1", "r1", [vec(a=1)]))

    def broken_open(path: Path, dimension: int) -> qe.EdgeShard:
        raise OSError("disk on fire")

    monkeypatch.setattr(edge_shard, "open_shard", broken_open)
    with pytest.raises(StoreError, match=r"catch_up failed.*disk on fire"):
        await store.optimize(SPACE)
    assert space_dirs(tmp_path / "data") == [SPACE.key]
    await put(store, record_points("t1", "r2", [vec(b=1)]))
    assert await store.count(SPACE, "t1") == 2
    await store.check_ready()


async def test_a_failed_publish_keeps_the_old_shard_live(
    store: EdgeStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await put(store, record_points("t1", "r1", [vec(a=1)]))

    def full_disk(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(edge_generations, "publish", full_disk)
    with pytest.raises(StoreError, match="publish failed"):
        await store.optimize(SPACE)
    assert space_dirs(tmp_path / "data") == [SPACE.key]
    await put(store, record_points("t1", "r2", [vec(b=1)]))
    assert await store.count(SPACE, "t1") == 2


async def test_a_publish_that_fails_after_the_rename_still_swaps(
    store: EdgeStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pointer was renamed, the directory fsync after it failed: the copy is live."""
    await put(store, record_points("t1", "r1", [vec(a=1)]))

    def failing_fsync(path: Path) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(edge_generations, "fsync_path", failing_fsync)
    with pytest.raises(StoreError, match="publish failed"):
        await store.optimize(SPACE)
    assert space_dirs(tmp_path / "data") == [f"{SPACE.key}@1"]
    await put(store, record_points("t1", "r2", [vec(b=1)]))
    assert await store.count(SPACE, "t1") == 2


async def test_cancelled_while_the_copy_is_optimized(
    store: EdgeStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await put(store, record_points("t1", "r1", [vec(a=1)]))
    child = GatedChild(tmp_path, monkeypatch)
    optimize = asyncio.create_task(store.optimize(SPACE))
    await child.wait_started()
    await put(store, record_points("t1", "r2", [vec(b=1)]))
    optimize.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await optimize
    assert space_dirs(tmp_path / "data") == [SPACE.key]
    await put(store, record_points("t1", "r3", [vec(c=1)]))
    assert await store.count(SPACE, "t1") == 3


async def test_a_copy_left_by_a_kill_before_the_swap_is_dropped(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    async with EdgeStore(data_dir) as store:
        await put(store, record_points("t1", "r1", [vec(a=1)]))
    live = shards(data_dir) / SPACE.key
    half_copied = shards(data_dir) / f"{SPACE.key}@1"
    shutil.copytree(live / "segments", half_copied / "segments")
    async with EdgeStore(data_dir) as store:
        assert await store.count(SPACE, "t1") == 1
        await put(store, record_points("t1", "r2", [vec(b=1)]))
    assert space_dirs(data_dir) == [SPACE.key]


async def test_a_second_store_leaves_the_first_ones_copy_alone(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    async with EdgeStore(data_dir) as first:
        await put(first, record_points("t1", "r1", [vec(a=1)]))
        in_progress = shards(data_dir) / f"{SPACE.key}@1"
        shutil.copytree(shards(data_dir) / SPACE.key, in_progress)
        with pytest.raises(StoreLocked, match=f"process {os.getpid()} "):
            async with EdgeStore(data_dir):
                pytest.fail("a second store opened the shards")
        assert in_progress.is_dir()
        assert await first.count(SPACE, "t1") == 1


async def test_a_kill_after_the_swap_keeps_the_new_generation(tmp_path: Path) -> None:
    """Killed after publishing the copy, before deleting the old shard: the copy is live."""
    data_dir = tmp_path / "data"
    async with EdgeStore(data_dir) as store:
        await put(store, record_points("t1", "r1", [vec(a=1)]))
    copy = shards(data_dir) / f"{SPACE.key}@1"
    shutil.copytree(shards(data_dir) / SPACE.key, copy)
    shard = edge_shard.open_shard(copy, SPACE.dimension)
    try:  # a write the optimize replayed on the copy only
        shard.update(edge_shard.upsert_op([(edge_pid("r2"), vec(b=1), payload("r2"))], 0))
    finally:
        edge_shard.close_shard(shard)
    edge_generations.publish(shards(data_dir), SPACE.key, copy)
    async with EdgeStore(data_dir) as store:
        assert await store.count(SPACE, "t1") == 2
    assert space_dirs(data_dir) == [f"{SPACE.key}@1"]


async def test_a_pointer_to_a_missing_shard_is_an_error_not_an_empty_space(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    async with EdgeStore(data_dir) as store:
        await put(store, record_points("t1", "r1", [vec(a=1)]))
    edge_generations.publish(shards(data_dir), SPACE.key, shards(data_dir) / f"{SPACE.key}@7")
    async with EdgeStore(data_dir) as store:
        with pytest.raises(StoreError, match="missing"):
            await store.count(SPACE)
    assert space_dirs(data_dir) == [SPACE.key]  # nothing deleted


def edge_pid(record_id: str) -> str:
    from vecpipe.store.point_ids import point_id

    return point_id("t1", record_id, 0)


def payload(record_id: str) -> dict[str, object]:
    return {"tenant_id": "t1", "record_id": record_id, "chunk_index": 0, "version": 0}


# ---------------------------------------------------------------------------- the mirror


def upsert(record_id: str, axis: str) -> qe.UpdateOperation:
    return edge_shard.upsert_op([(edge_pid(record_id), vec(**{axis: 1}), payload(record_id))], 0)


def ids(shard: qe.EdgeShard) -> list[str]:
    records, _ = shard.scroll(qe.ScrollRequest(limit=100, with_payload=True))
    return sorted(str((r.payload or {})["record_id"]) for r in records)


@pytest.fixture
def two_shards(tmp_path: Path) -> Iterator[tuple[qe.EdgeShard, qe.EdgeShard]]:
    live = edge_shard.open_shard(tmp_path / "live", SPACE.dimension)
    copy = edge_shard.open_shard(tmp_path / "copy", SPACE.dimension)
    yield live, copy
    live.close()
    copy.close()


def test_the_mirror_journals_then_follows_the_live_shard(
    two_shards: tuple[qe.EdgeShard, qe.EdgeShard],
) -> None:
    live, copy = two_shards
    mirror = edge_rebuild.Mirror()
    edge_rebuild.write(live, mirror, lambda: upsert("before", "a"), 1)  # not recording yet
    mirror.recording = True
    for name in ("j1", "j2", "j3"):
        edge_rebuild.write(live, mirror, functools.partial(upsert, name, "b"), 1)
    assert ids(copy) == []
    mirror.copy = copy  # opened: the journal is replayed a bounded amount per job
    assert edge_rebuild.replay(mirror, 2) is False
    edge_rebuild.write(live, mirror, lambda: upsert("meanwhile", "c"), 1)  # still journaled
    assert ids(copy) == ["j1", "j2"]
    assert edge_rebuild.replay(mirror, 2) is True
    edge_rebuild.write(live, mirror, lambda: upsert("followed", "d"), 1)
    assert ids(live) == ["before", "followed", "j1", "j2", "j3", "meanwhile"]
    assert ids(copy) == ["followed", "j1", "j2", "j3", "meanwhile"]
    assert mirror.replayed == 4


def test_a_full_journal_abandons_the_optimize(
    two_shards: tuple[qe.EdgeShard, qe.EdgeShard],
) -> None:
    live, _ = two_shards
    mirror = edge_rebuild.Mirror(max_points=2)
    mirror.recording = True
    edge_rebuild.write(live, mirror, lambda: upsert("r1", "a"), 2)
    edge_rebuild.write(live, mirror, lambda: upsert("r2", "b"), 1)
    assert not mirror.ops and mirror.failure is not None
    with pytest.raises(StoreError, match="abandoned"):
        edge_rebuild.open_copy(mirror, Path("/nonexistent"), SPACE.dimension)
    assert ids(live) == ["r1", "r2"]  # the live shard took every write


async def test_an_optimize_without_room_for_its_dense_copy_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The copy writes every byte of Edge's sparse files (152 MiB for a fresh shard, 1 MiB of
    it allocated): an optimize that would take the disk below the floor does not start, and
    the live shard serves on."""
    from vecpipe import diskspace
    from vecpipe.errors import StorageFull

    data_dir = tmp_path / "data"
    floor = 64 * diskspace.MIB
    async with EdgeStore(data_dir, min_free_bytes=floor) as store:
        await put(store, record_points("t1", "r1", [vec(a=1)]))
        live = edge_generations.live_dir(data_dir / "shards", SPACE.key)
        copy_size = diskspace.apparent_bytes(live)
        assert copy_size > 100 * diskspace.MIB  # sparse: far more than it holds
        monkeypatch.setattr(diskspace, "free_bytes", lambda path: copy_size + floor - 1)
        with pytest.raises(StorageFull, match="would leave less than 64 MiB free"):
            await store.optimize(SPACE)
        assert space_dirs(data_dir) == [SPACE.key]  # no copy left behind
        assert [hit.id for hit in await store.search(SPACE, query("t1", vec(a=1), 1))] == ["r1"]
        monkeypatch.setattr(diskspace, "free_bytes", lambda path: copy_size + floor)
        await store.optimize(SPACE)
