"""EdgeStore: the VectorStore contract, plus what only the embedded Qdrant Edge store does."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import qdrant_edge as qe

from tests.store.contract import (
    SPACE,
    VectorStoreContract,
    VersionedPrimitivesContract,
    delete_records,
    put,
    query,
    record_points,
    update_metadata,
    vec,
)
from vecpipe.errors import ClosedError, ConfigError, StoreError, StoreLocked, ValidationError
from vecpipe.store.base import VectorStore
from vecpipe.store.edge import EdgeStore
from vecpipe.store.edge import rebuild as edge_rebuild
from vecpipe.store.edge import shard as edge_shard
from vecpipe.store.point_ids import point_id
from vecpipe.store.query import SearchQuery


class TestEdgeStoreContract(VectorStoreContract, VersionedPrimitivesContract):
    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[VectorStore]:
        async with EdgeStore(tmp_path / "data") as store:
            yield store


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[EdgeStore]:
    async with EdgeStore(tmp_path / "data") as store:
        yield store


def shard_dir(data_dir: Path) -> Path:
    return data_dir / "shards" / SPACE.key


@contextlib.contextmanager
def raw_shard(data_dir: Path) -> Iterator[qe.EdgeShard]:
    """The space's shard opened directly (only while no EdgeStore has it open)."""
    shard = qe.EdgeShard.load(str(shard_dir(data_dir)))
    try:
        yield shard
    finally:
        shard.close()


def raw_vectors(data_dir: Path, ids: list[str]) -> dict[str, Any]:
    """Each point's dense vector and its BM25 vector (indices, values)."""
    with raw_shard(data_dir) as shard:
        found: dict[str, Any] = {
            str(r.id): r.vector for r in shard.retrieve(list[Any](ids), False, True)
        }
    return {
        pid: (vectors[""], list(vectors["bm25"].indices), list(vectors["bm25"].values))
        for pid, vectors in found.items()
    }


async def test_data_survives_close_and_reopen(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    async with EdgeStore(data_dir) as store:
        await put(store, record_points("t1", "r1", [vec(a=1), vec(b=1)], {"k": "v"}))
    assert shard_dir(data_dir).is_dir()
    async with EdgeStore(data_dir) as store:
        assert await store.count(SPACE, "t1") == 2
        assert (await store.stored_records(SPACE, "t1", ["r1"]))["r1"].metadata == {"k": "v"}
        hits = await store.search(SPACE, query("t1", vec(b=1), 3))
        assert [(hit.id, hit.chunk) for hit in hits] == [("r1", "r1#1")]


async def test_a_data_dir_has_one_owner(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    async with EdgeStore(data_dir) as first:
        await first.ensure_space(SPACE)
        with pytest.raises(StoreLocked, match="in use by process"):  # before any shard
            async with EdgeStore(data_dir):
                pytest.fail("a second store opened")
        await first.ensure_space(SPACE)
    async with EdgeStore(data_dir) as third:
        await third.ensure_space(SPACE)


async def test_points_and_indexes_on_disk(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    async with EdgeStore(data_dir) as store:
        await put(store, record_points("t1", "r1", [vec(a=1), vec(b=1)], {"k": 1}))
    with raw_shard(data_dir) as shard:
        schema = shard.info().payload_schema
        assert schema["tenant_id"].data_type == qe.PayloadSchemaType.Keyword
        assert isinstance(schema["tenant_id"].params, qe.KeywordIndexParams)
        assert schema["tenant_id"].params.is_tenant is True
        assert schema["record_id"].data_type == qe.PayloadSchemaType.Keyword
        assert schema["chunk_index"].data_type == qe.PayloadSchemaType.Integer
        ids = [point_id("t1", "r1", 0), point_id("t1", "r1", 1)]
        payloads = {str(r.id): r.payload for r in shard.retrieve(ids, True, False)}  # type: ignore[arg-type]
    assert payloads[ids[0]] == {
        "tenant_id": "t1",
        "record_id": "r1",
        "chunk_index": 0,
        "chunk_count": 2,
        "content_hash": "hash-1",
        "metadata": {"k": 1},
        "chunk_text": "r1#0",
        "text": "r1#0 r1#1",
        "version": 0,
    }
    assert "text" not in (payloads[ids[1]] or {})


async def test_metadata_update_leaves_vectors_untouched(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    ids = [point_id("t1", "r1", 0), point_id("t1", "r1", 1)]
    async with EdgeStore(data_dir) as store:
        await put(store, record_points("t1", "r1", [vec(a=1, b=2), vec(c=3)], {"v": 1}))
    before = raw_vectors(data_dir, ids)
    async with EdgeStore(data_dir) as store:
        await update_metadata(store, "t1", "r1", {"v": 2}, version=0)
        await store.flush(SPACE)
    assert raw_vectors(data_dir, ids) == before
    async with EdgeStore(data_dir) as store:
        assert (await store.stored_records(SPACE, "t1", ["r1"]))["r1"].metadata == {"v": 2}


async def test_retrieve_by_id_checks_the_tenant(tmp_path: Path) -> None:
    """A point written under another tenant's id (never by EdgeStore) is still not served."""
    data_dir = tmp_path / "data"
    async with EdgeStore(data_dir) as store:
        await store.ensure_space(SPACE)
    with raw_shard(data_dir) as shard:
        forged = {"tenant_id": "alpha", "record_id": "r1", "chunk_index": 0, "text": "secret"}
        point = qe.Point(point_id("beta", "r1", 0), vec(a=1), forged)
        shard.update(qe.UpdateOperation.upsert_points([point]))
        shard.flush()
    async with EdgeStore(data_dir) as store:
        assert await store.stored_records(SPACE, "beta", ["r1"]) == {}
        assert await store.search(SPACE, query("beta", vec(a=1), 3)) == []
        assert list(await store.stored_records(SPACE, "alpha", ["r1"])) == []


async def test_optimize_in_a_child_process_keeps_serving(store: EdgeStore) -> None:
    await put(store, *(record_points("t1", f"r{i}", [vec(a=1, b=i)]) for i in range(5)))
    report = await store.optimize(SPACE)
    assert report.points == 5
    status = await store.index_status(SPACE)
    assert (status.points, status.segments >= 1) == (5, True)
    assert status.unindexed == status.points - status.indexed_vectors
    await put(store, record_points("t1", "r9", [vec(a=1, b=0.5)]))
    hits = await store.search(SPACE, query("t1", vec(a=1), 2))
    assert [hit.id for hit in hits] == ["r0", "r9"]


async def test_cancelled_optimize_leaves_the_store_usable(store: EdgeStore) -> None:
    await put(store, record_points("t1", "r1", [vec(a=1)]))
    task = asyncio.create_task(store.optimize(SPACE))
    await asyncio.sleep(0.05)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert [hit.id for hit in await store.search(SPACE, query("t1", vec(a=1), 2))] == ["r1"]
    assert await store.count(SPACE) == 1


async def test_close_waits_for_calls_in_flight(tmp_path: Path) -> None:
    store = EdgeStore(tmp_path / "data")
    await put(store, *(record_points("t1", f"r{i}", [vec(a=1, b=i)]) for i in range(20)))
    calls = [asyncio.create_task(store.search(SPACE, query("t1", vec(a=1), 5))) for _ in range(30)]
    await asyncio.sleep(0)
    await store.aclose()
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(r, list | ClosedError) for r in results), results
    with pytest.raises(ClosedError):
        await store.optimize(SPACE)
    with pytest.raises(ClosedError):
        await store.index_status(SPACE)
    with pytest.raises(ClosedError):
        await store.flush(SPACE)


async def test_readiness_names_the_reason(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the data dir should be")
    with pytest.raises(ConfigError, match="cannot open the data dir lock"):
        async with EdgeStore(blocker):  # the owner's lock comes first, and cannot be made
            pytest.fail("opened a store where no file can be made")
    async with EdgeStore(tmp_path / "fresh") as store:
        await store.check_ready()
        assert (tmp_path / "fresh" / "shards").is_dir()


async def test_large_upserts_go_in_batches(store: EdgeStore) -> None:
    points = [p for i in range(700) for p in record_points("t1", f"r{i}", [vec(a=1, b=i)])]
    await store.upsert_chunks(SPACE, points)
    await store.flush(SPACE)
    assert await store.count(SPACE, "t1") == 700
    assert len(await store.stored_records(SPACE, "t1", [f"r{i}" for i in range(700)])) == 700
    await delete_records(store, "t1", [f"r{i}" for i in range(600)])
    assert await store.count(SPACE, "t1") == 100


async def test_cancelling_optimize_kills_the_child(
    store: EdgeStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "child.pid"
    child = f"import os, time; open({str(marker)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    monkeypatch.setattr("vecpipe.store.edge.optimize._CHILD_WORK", child)
    await put(store, record_points("t1", "r1", [vec(a=1)]))
    task = asyncio.create_task(store.optimize(SPACE))
    for _ in range(500):  # the child is up once it wrote its pid
        if marker.exists() and marker.read_text():
            break
        await asyncio.sleep(0.02)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    with pytest.raises(ProcessLookupError):
        os.kill(int(marker.read_text()), 0)  # killed and reaped
    assert [hit.id for hit in await store.search(SPACE, query("t1", vec(a=1), 2))] == ["r1"]


async def test_a_failed_optimize_reopens_the_shard(
    store: EdgeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("vecpipe.store.edge.optimize._CHILD_WORK", "import sys; sys.exit('boom')")
    await put(store, record_points("t1", "r1", [vec(a=1)]))
    with pytest.raises(StoreError, match="exited with 1: boom"):
        await store.optimize(SPACE)
    assert await store.count(SPACE, "t1") == 1


async def test_flushes_are_shared_and_skipped_when_clean(
    store: EdgeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    ops: list[str] = []
    run = EdgeStore._run

    async def spy(self: EdgeStore, op: str, *args: Any) -> Any:
        ops.append(op)
        return await run(self, op, *args)

    monkeypatch.setattr(EdgeStore, "_run", spy)
    await store.upsert_chunks(SPACE, record_points("t1", "r1", [vec(a=1)]))
    await asyncio.gather(*(store.flush(SPACE) for _ in range(5)))
    await store.flush(SPACE)
    assert ops.count("flush") == 1
    await delete_records(store, "t1", ["r1"])
    await store.flush(SPACE)
    assert ops.count("flush") == 2


async def test_a_flush_covers_writes_queued_before_it_not_yet_done(
    store: EdgeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two writers (the worker's two loops): the second one's write, queued on the write
    thread before the first one's flush, is covered by that flush; no second flush runs."""
    ops: list[str] = []
    run = EdgeStore._run

    async def spy(self: EdgeStore, op: str, *args: Any) -> Any:
        ops.append(op)
        return await run(self, op, *args)

    await store.ensure_space(SPACE)
    monkeypatch.setattr(EdgeStore, "_run", spy)
    first = asyncio.create_task(store.upsert_chunks(SPACE, record_points("t1", "r1", [vec(a=1)])))
    second = asyncio.create_task(store.upsert_chunks(SPACE, record_points("t1", "r2", [vec(b=1)])))
    await first
    await store.flush(SPACE)  # queued after both writes
    await second
    await store.flush(SPACE)
    assert ops == ["upsert", "upsert", "flush"]


async def test_a_flush_syncs_the_wal_and_runs_edge_flush_on_its_timer_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Edge's flush holds the GIL for 40-300 ms: an ack waits for a WAL fsync instead, and
    Edge flushes once `full_flush_seconds` have passed since its last flush."""
    calls: list[str] = []
    for name in ("flush", "sync_wal"):
        real = getattr(edge_rebuild, name)

        def spy(*args: Any, real: Any = real, name: str = name) -> Any:
            calls.append(name)
            return real(*args)

        monkeypatch.setattr(edge_rebuild, name, spy)
    async with EdgeStore(tmp_path / "data", full_flush_seconds=3600) as store:
        for record in ("r1", "r2"):
            await put(store, record_points("t1", record, [vec(a=1)]))
        assert calls == ["sync_wal", "sync_wal"]
    async with EdgeStore(tmp_path / "data", full_flush_seconds=0) as store:
        await put(store, record_points("t1", "r3", [vec(a=1)]))
        assert calls[2:] == ["flush"]
        assert await store.count(SPACE, "t1") == 3


async def test_a_wal_sync_fsyncs_every_file_of_the_wal(
    store: EdgeStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.ensure_space(SPACE)
    synced: list[str] = []
    fsync = os.fsync

    def spy(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        fsync(fd)

    monkeypatch.setattr("vecpipe.durable.os.fsync", spy)
    await put(store, record_points("t1", "r1", [vec(a=1)]))
    wal = shard_dir(tmp_path / "data") / edge_shard.WAL_DIR
    assert {str(p) for p in wal.iterdir()} <= set(synced)
    assert synced[-1] == str(wal)


async def test_writes_acked_through_the_wal_are_there_after_a_kill(tmp_path: Path) -> None:
    """Written and synced (not Edge-flushed), then SIGKILL: the next open replays the WAL."""
    script = f"""
import asyncio, os, signal
from tests.store.contract import SPACE, put, record_points, vec
from vecpipe.store.edge import EdgeStore

async def main():
    store = EdgeStore({str(tmp_path / "data")!r}, full_flush_seconds=3600)
    await store.__aenter__()
    for i in range(3):
        await put(store, record_points("t1", f"r{{i}}", [vec(a=1), vec(b=1)]))
    os.kill(os.getpid(), signal.SIGKILL)

asyncio.run(main())
"""
    child = await asyncio.create_subprocess_exec(sys.executable, "-c", script)
    assert await child.wait() == -9
    async with EdgeStore(tmp_path / "data") as store:
        assert await store.count(SPACE, "t1") == 6


async def test_new_shards_keep_the_graph_and_payload_indexes_on_disk(
    store: EdgeStore, tmp_path: Path
) -> None:
    """Loading an optimized copy holds the GIL: memory-mapped parts load in a fraction of
    the time in-memory ones take (shard.py); the vectors stay in memory, for search."""
    await store.ensure_space(SPACE)
    config = json.loads((shard_dir(tmp_path / "data") / "edge_config.json").read_text())
    assert not config["vectors"][""].get("on_disk")
    assert config["hnsw_config"]["on_disk"] is True
    await store.aclose()
    with raw_shard(tmp_path / "data") as shard:
        schema = shard.info().payload_schema
    assert schema and all(getattr(index.params, "on_disk", False) for index in schema.values())


async def test_an_edge_flush_fsyncs_the_shard_files_first(
    store: EdgeStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """So that Edge's flush, which holds the GIL, finds the dirty pages written already."""
    events: list[str] = []
    monkeypatch.setattr(edge_shard, "fsync_tree", lambda path: events.append(f"fsync {path}"))
    await store.ensure_space(SPACE)
    target = store._spaces[SPACE.key]
    real_flush = qe.EdgeShard.flush

    def flush(shard: qe.EdgeShard) -> None:
        events.append("edge flush")
        real_flush(shard)

    monkeypatch.setattr(qe.EdgeShard, "flush", flush)
    edge_shard.flush_shard(target.handle.shard, target.path)
    assert events == [f"fsync {target.path}", "edge flush"]


async def test_a_cancelled_caller_does_not_orphan_an_open_shard(store: EdgeStore) -> None:
    caller = asyncio.create_task(store.ensure_space(SPACE))
    await asyncio.sleep(0)  # the open is under way on the Edge thread
    caller.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await caller
    assert await store.count(SPACE) == 0  # the open landed; no second open hit the WAL lock


async def test_an_engine_panic_is_a_store_error_not_a_crash(store: EdgeStore) -> None:
    """Metadata nested deeper than Edge can read back (record_checks.py refuses it at every
    entry; written here under the checks) makes a filtered search panic inside the engine
    ("Payload storage is corrupted"): pyo3's PanicException, a BaseException, which must
    reach callers as a StoreError (an HTTP 503), not a plain-text 500."""
    deep: Any = 1
    for _ in range(130):
        deep = {"a": deep}
    await put(store, record_points("t1", "deep", [vec(a=1)], {"k": deep}))
    with pytest.raises(StoreError, match="edge search failed"):
        await store.search(SPACE, query("t1", vec(a=1), 5, {"x": "y"}))


async def test_a_shard_made_before_keyword_search_refuses_it(tmp_path: Path) -> None:
    """Edge refuses to load a shard with a config it does not match: an old shard is loaded
    as it is, serves dense searches, and refuses keyword ones with a 4xx naming the fix."""
    data_dir = tmp_path / "data"
    shard_dir(data_dir).mkdir(parents=True)
    edge_shard.close_shard(
        qe.EdgeShard.create(str(shard_dir(data_dir)), edge_shard.shard_config(8, keyword=False))
    )
    async with EdgeStore(data_dir) as store:
        await put(store, record_points("t1", "r1", [vec(a=1)], chunks=["a rare word"]))
        assert [h.id for h in await store.search(SPACE, query("t1", vec(a=1), 3))] == ["r1"]
        for mode in ("keyword", "hybrid"):
            ask = SearchQuery("t1", vec(a=1), mode=mode, text="rare")
            with pytest.raises(ValidationError, match="reindex"):
                await store.search(SPACE, ask)
    assert not edge_shard.has_keyword_index(shard_dir(data_dir))
