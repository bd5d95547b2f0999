"""The EdgeStore's maintenance task: when it optimizes a space, and that it stops cleanly."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.store.contract import SPACE, delete_records, record_points, upsert_raw, vec
from tests.store.edge_support import GatedChild, space_dirs
from vecpipe.models import ChunkPoint
from vecpipe.store.edge import EdgeStore
from vecpipe.store.edge import shard as edge_shard
from vecpipe.store.edge.maintenance import MAX_DEFERRALS, EdgeMaintenance
from vecpipe.store.edge.optimize import OptimizeReport


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[EdgeStore]:
    async with EdgeStore(tmp_path / "data") as store:
        yield store


async def add(store: EdgeStore, *names: str) -> None:
    await upsert_raw(store, *(record_points("t1", name, [vec(a=1)]) for name in names))


# At these sizes no segment reaches the indexing threshold: every point stays unindexed.


async def test_a_space_is_optimized_once_enough_points_are_unindexed(store: EdgeStore) -> None:
    maintenance = EdgeMaintenance(store, after_points=3, poll_seconds=3600)
    await add(store, "r1", "r2")
    assert await maintenance.run_once() == []
    await add(store, "r3")
    assert await maintenance.run_once() == [SPACE]
    assert await maintenance.run_once() == []  # counted from what that optimize left
    await add(store, "r4", "r5", "r6")
    assert await maintenance.run_once() == [SPACE]
    await maintenance.aclose()


async def test_a_busy_space_is_deferred_a_few_rounds(
    store: EdgeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    maintenance = EdgeMaintenance(store, after_points=1, poll_seconds=3600)
    await add(store, "r1")
    monkeypatch.setattr(store, "busy", lambda space: True)
    for _ in range(MAX_DEFERRALS):
        assert await maintenance.run_once() == []
    assert await maintenance.run_once() == [SPACE]
    await maintenance.aclose()


async def test_the_store_runs_the_task_and_stops_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    optimized = asyncio.Event()
    async with EdgeStore(data_dir, optimize_after_points=2, optimize_poll_seconds=0.01) as store:
        real_optimize = store.optimize

        async def spied(space: object) -> OptimizeReport:
            report = await real_optimize(SPACE)
            optimized.set()
            return report

        store.optimize = spied  # type: ignore[method-assign]
        await add(store, "r1", "r2")
        await asyncio.wait_for(optimized.wait(), timeout=120)  # a hang is the failure
        assert await store.count(SPACE, "t1") == 2
    assert space_dirs(data_dir) == [f"{SPACE.key}@1"]


async def test_closing_the_store_abandons_an_optimize_in_progress(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "data"
    child = GatedChild(tmp_path, monkeypatch)
    async with EdgeStore(data_dir, optimize_after_points=1, optimize_poll_seconds=0.01) as store:
        await add(store, "r1")
        await child.wait_started()
        await add(store, "r2")
    with pytest.raises(ProcessLookupError):
        os.kill(child.pid, 0)  # killed and reaped
    assert space_dirs(data_dir) == [SPACE.key]
    async with EdgeStore(data_dir) as store:
        assert await store.count(SPACE, "t1") == 2


# ------------------------------------------------------------ the trigger after rewrites

INDEXED_POINTS = 2000


def rewrites(start: int, stop: int, axis: str) -> list[list[ChunkPoint]]:
    return [
        record_points("t1", f"r{i}", [vec(**{axis: 1, "h": i / 1000})]) for i in range(start, stop)
    ]


@pytest.fixture
async def indexed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[EdgeStore]:
    """A store whose space is optimized into indexed segments (a 1 KB indexing threshold)."""
    monkeypatch.setattr(edge_shard, "INDEXING_THRESHOLD_KB", 1)
    async with EdgeStore(tmp_path / "data") as store:
        await upsert_raw(store, *rewrites(0, INDEXED_POINTS, "a"))
        await store.optimize(SPACE)
        status = await store.index_status(SPACE)
        assert status.indexed_vectors >= INDEXED_POINTS - 100, status  # small segments aside
        assert status.changed_points == 0
        yield store


async def test_heavy_rewrites_of_indexed_points_trigger_an_optimize(indexed: EdgeStore) -> None:
    maintenance = EdgeMaintenance(indexed, after_points=1000, poll_seconds=3600)
    assert await maintenance.run_once() == []
    await upsert_raw(indexed, *rewrites(0, 1500, "b"))  # new vectors for 1,500 indexed points
    status = await indexed.index_status(SPACE)
    # Edge counts the dead copies as indexed: by its numbers nothing needs indexing
    assert status.points == INDEXED_POINTS and status.unindexed <= 100
    assert status.changed_points == 1500
    assert await maintenance.run_once() == [SPACE]
    after = await indexed.index_status(SPACE)
    assert after.changed_points == 0 and after.indexed_vectors >= INDEXED_POINTS - 100
    assert await maintenance.run_once() == []
    await maintenance.aclose()


async def test_heavy_deletes_trigger_an_optimize(indexed: EdgeStore) -> None:
    maintenance = EdgeMaintenance(indexed, after_points=1000, poll_seconds=3600)
    await delete_records(indexed, "t1", [f"r{i}" for i in range(1200)])
    status = await indexed.index_status(SPACE)
    assert status.unindexed == 0 and status.changed_points == 1200
    assert await maintenance.run_once() == [SPACE]
    await maintenance.aclose()


async def test_changes_counted_before_a_restart_still_count(
    indexed: EdgeStore, tmp_path: Path
) -> None:
    await upsert_raw(indexed, *rewrites(0, 700, "c"))
    await indexed.aclose()
    async with EdgeStore(tmp_path / "data") as reopened:
        assert (await reopened.index_status(SPACE)).changed_points == 700
        maintenance = EdgeMaintenance(reopened, after_points=500, poll_seconds=3600)
        assert await maintenance.run_once() == [SPACE]
        await maintenance.aclose()
    async with EdgeStore(tmp_path / "data") as again:  # the optimized generation: from zero
        assert (await again.index_status(SPACE)).changed_points == 0


async def test_writes_during_an_optimize_stay_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    child = GatedChild(tmp_path, monkeypatch)
    async with EdgeStore(tmp_path / "data") as store:
        await add(store, "r1", "r2")
        optimize = asyncio.create_task(store.optimize(SPACE))
        await child.wait_started()
        await add(store, "r3", "r4", "r5")  # after the copy: not in what the child indexes
        child.release()
        await optimize
        assert (await store.index_status(SPACE)).changed_points == 3
