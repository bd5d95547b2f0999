"""After a failed flush: what is counted, and what is flushed again.

A write whose flush failed is in the store but was never confirmed: the caller was told the
records failed. A retry (the synchronous API) or a redelivery (the worker) that finds them
stored counts them upserted, not unchanged, and flushes the space again even when it writes
nothing. Once a flush succeeds, unchanged means unchanged again.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.app import edge_store
from vecpipe.core.ingest import Op
from vecpipe.errors import StoreError
from vecpipe.models import EmbeddingSpace, Record
from vecpipe.resources import Resources
from vecpipe.store.edge import store as edge

TENANT = "acme"


class Flushes:
    """The store's flush, counted, failing the next `fail` times."""

    def __init__(self, resources: Resources, monkeypatch: pytest.MonkeyPatch) -> None:
        self.fail = 0
        self.done = 0
        self._flush = resources.store.flush
        monkeypatch.setattr(resources.store, "flush", self)

    async def __call__(self, space: EmbeddingSpace) -> None:
        if self.fail:
            self.fail -= 1
            raise StoreError("edge flush failed: No space left on device")
        await self._flush(space)
        self.done += 1


def records(*ids: str) -> list[Record]:
    return [Record(id=record_id, text=f"text of {record_id}") for record_id in ids]


async def test_a_retry_after_a_failed_flush_counts_upserted_and_flushes(
    resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline = resources.pipeline
    flushes = Flushes(resources, monkeypatch)
    flushes.fail = 1
    failed = await pipeline.ingest(TENANT, records("a", "b"))
    assert sorted(failed.failed) == ["a", "b"] and "No space left" in failed.failed["a"]
    assert (await pipeline.get_record(TENANT, "a")).text == "text of a"  # stored nonetheless

    retried = await pipeline.ingest(TENANT, records("a", "b"))  # a new version, same content
    assert (sorted(retried.upserted), retried.unchanged) == (["a", "b"], [])
    assert flushes.done == 1
    again = await pipeline.ingest(TENANT, records("a", "b"))
    assert (again.upserted, sorted(again.unchanged)) == ([], ["a", "b"])


async def test_a_space_in_doubt_is_flushed_by_a_batch_that_writes_nothing(
    resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline = resources.pipeline
    await pipeline.ingest(TENANT, records("confirmed"))
    flushes = Flushes(resources, monkeypatch)
    flushes.fail = 1
    assert (await pipeline.ingest(TENANT, records("unconfirmed"))).failed

    unchanged = await pipeline.ingest(TENANT, records("confirmed"))
    assert unchanged.unchanged == ["confirmed"]
    assert flushes.done == 1  # what the failed flush left is durable before this answers
    await pipeline.ingest(TENANT, records("confirmed"))
    assert flushes.done == 1  # no longer in doubt: nothing to flush


async def test_a_delete_whose_flush_failed_counts_deleted_when_retried(
    resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline = resources.pipeline
    await pipeline.ingest(TENANT, records("gone"))
    flushes = Flushes(resources, monkeypatch)
    flushes.fail = 1
    assert (await pipeline.delete(TENANT, ["gone"])).failed
    retried = await pipeline.delete(TENANT, ["gone"])
    assert (retried.deleted, retried.unchanged, flushes.done) == (["gone"], [], 1)
    assert (await pipeline.delete(TENANT, ["gone"])).not_found == ["gone"]


async def test_a_write_cut_short_between_store_calls_is_completed_by_its_retry(
    resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store takes a long record's chunks two per call and fails the second call: the
    first call's chunks stay. The retry must find the record incomplete and write it all."""
    store = edge_store(resources)
    monkeypatch.setattr(edge, "BATCH_SIZE", 2)
    run = store._run
    upserts: list[int] = []

    async def second_upsert_fails(op: str, space: EmbeddingSpace, fn: Any, *args: Any) -> Any:
        if op == "upsert":
            upserts.append(1)
            if len(upserts) == 2:
                raise StoreError("edge upsert failed: Input/output error")
        return await run(op, space, fn, *args)

    monkeypatch.setattr(store, "_run", second_upsert_fails)
    pipeline = resources.pipeline
    long = Record(id="long", text=" ".join(f"word{i}" for i in range(400)))  # ~7 chunks
    assert (await pipeline.ingest(TENANT, [long])).failed
    space = await pipeline.space_of(TENANT)
    assert await store.count(space, TENANT) == 2  # what the first call wrote

    retried = await pipeline.ingest(TENANT, [long])
    assert retried.upserted == ["long"]
    stored = await pipeline.get_record(TENANT, "long")
    assert stored.chunk_count > 4 and await store.count(space, TENANT) == stored.chunk_count


async def test_without_flush_the_caller_is_told_what_to_flush(
    resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`process(ops, flush=False)` (the worker's) returns before the write is durable and
    names the space; the default flushes before it returns."""
    pipeline = resources.pipeline
    flushes = Flushes(resources, monkeypatch)
    ops = [Op(TENANT, record.id, record) for record in records("a", "b")]
    applied = await pipeline.process(ops, flush=False)
    assert [o.status for o in applied.outcomes] == ["upserted", "upserted"]
    assert applied.unflushed == {await pipeline.space_of(TENANT)} and flushes.done == 0
    await pipeline.ingestor.flush(applied.unflushed)
    assert flushes.done == 1

    again = await pipeline.process(ops, flush=False)
    assert [o.status for o in again.outcomes] == ["unchanged", "unchanged"]
    assert again.unflushed == set()  # nothing written: nothing to make durable
    flushed = await pipeline.process([Op(TENANT, "c", records("c")[0])])
    assert (flushed.unflushed, flushes.done) == (set(), 2)
