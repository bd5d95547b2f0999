"""One Edge shard read and written at once: its thread safety; reads off the write queue."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import qdrant_edge as qe

from tests.store.contract import SPACE, delete_records, put, query, record_points, vec
from vecpipe.store.conditions import for_tenant
from vecpipe.store.edge import EdgeStore
from vecpipe.store.edge import rebuild as edge_rebuild
from vecpipe.store.edge import shard as edge_shard
from vecpipe.store.edge.filters import compile_filter
from vecpipe.store.point_ids import point_id


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[EdgeStore]:
    async with EdgeStore(tmp_path / "data") as store:
        yield store


def test_one_shard_takes_writes_and_reads_from_several_threads(tmp_path: Path) -> None:
    """Upserts, deletes, payload updates and flushes on one thread while two others query,
    count, retrieve and scroll the same shard: nothing raises, nothing is lost."""
    dimension = 32
    shard = edge_shard.open_shard(tmp_path / "shard", dimension)
    rng = np.random.default_rng(1)
    errors: list[BaseException] = []
    writing = threading.Event()
    writing.set()

    def pid(n: int) -> str:
        return point_id("t", f"r{n}", 0)

    def writer() -> None:
        for batch in range(40):
            vectors = rng.standard_normal((100, dimension)).tolist()
            rows = [
                (pid(batch * 100 + i), v, {"tenant_id": "t", "record_id": f"r{batch * 100 + i}"})
                for i, v in enumerate(vectors)
            ]
            shard.update(edge_shard.upsert_op(rows, 0))
            doomed = qe.FieldCondition(key="record_id", match=qe.MatchAny([f"r{batch * 100}"]))
            shard.update(edge_shard.delete_op(qe.Filter(must=[doomed])))
            flt = compile_filter(for_tenant("t"))
            shard.update(edge_shard.set_payload_op(flt, {"batch": batch}))
            if batch % 10 == 0:
                shard.flush()

    def reader() -> None:
        flt = compile_filter(for_tenant("t"))
        while writing.is_set():
            edge_shard.query_chunks(
                shard, qe.Query.Nearest(rng.standard_normal(dimension).tolist()), flt, 20
            )
            edge_shard.count(shard, flt)
            edge_shard.retrieve_payloads(shard, [pid(n) for n in range(0, 4000, 97)])
            edge_shard.scroll_payloads(shard, flt, None, 50)

    def guarded(fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                fn()
            except BaseException as exc:
                errors.append(exc)
            finally:
                writing.clear()  # a failed reader must not leave the others spinning

        return run

    readers = [threading.Thread(target=guarded(reader)) for _ in range(2)]
    for thread in readers:
        thread.start()
    try:
        guarded(writer)()
    finally:
        for thread in readers:
            thread.join()
    try:
        assert errors == []
        assert edge_shard.count(shard, None) == 4000 - 40
    finally:
        edge_shard.close_shard(shard)


async def test_a_search_does_not_wait_behind_queued_writes(
    store: EdgeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await put(store, record_points("t1", "r1", [vec(a=1)]))
    entered, release = threading.Event(), threading.Event()
    real_write = edge_rebuild.write

    def held_write(*args: Any) -> None:
        entered.set()
        release.wait()
        real_write(*args)

    monkeypatch.setattr(edge_rebuild, "write", held_write)
    writes = [
        asyncio.create_task(store.upsert_chunks(SPACE, record_points("t1", f"w{i}", [vec(b=1)])))
        for i in range(5)
    ]
    try:
        await asyncio.to_thread(entered.wait)  # the write thread is stuck in the first write
        search = store.search(SPACE, query("t1", vec(a=1), 3))
        hits = await asyncio.wait_for(search, timeout=60)  # a hang, not a speed, is the failure
        assert [hit.id for hit in hits] == ["r1"]
        assert await asyncio.wait_for(store.count(SPACE, "t1"), timeout=60) == 1
        assert not any(write.done() for write in writes)
    finally:
        release.set()
        await asyncio.gather(*writes)
    assert await store.count(SPACE, "t1") == 6


async def test_mixed_calls_at_once_all_land(store: EdgeStore) -> None:
    await put(store, *(record_points("t1", f"r{i}", [vec(a=1, b=i)]) for i in range(20)))

    async def writes(n: int) -> None:
        await store.upsert_chunks(SPACE, record_points("t2", f"n{n}", [vec(c=1, d=n)]))
        await delete_records(store, "t1", [f"r{n}"])
        await store.flush(SPACE)

    async def reads() -> None:
        assert len(await store.search(SPACE, query("t1", vec(a=1), 5))) <= 5
        await store.count(SPACE)
        await store.stored_records(SPACE, "t2", ["n1", "n2"])

    await asyncio.gather(*(writes(n) for n in range(10)), *(reads() for _ in range(30)))
    assert await store.count(SPACE, "t1") == 10
    assert await store.count(SPACE, "t2") == 10
