"""Two writers of one record, interleaved step by step: the Edge store (a sole writer, whose
batches share one store) and qdrant-client's local mode (shared: two ingestors, as two
processes would be), both settling races through store/versioned.py.

The interleaving that matters for cleanup after a first write: B (the newer version) finds
nothing stored; A (older, with more chunks) then writes, re-reads its chunk 0 and believes it
won; only then does B write. B's upsert replaces A's chunks at B's indexes but not those past
them, and A will never look again: B must remove them although it found nothing before.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.store.contract import PrimitivesStore
from tests.support.fake_provider import FakeProvider
from vecpipe.core.ingest import Ingestor, Op
from vecpipe.models import ChunkPoint, EmbeddingSpace, Record
from vecpipe.providers.chain import CircuitBreaker, ProviderChain
from vecpipe.store.conditions import Condition
from vecpipe.store.edge import EdgeStore
from vecpipe.store.qdrant import QdrantStore

pytestmark = pytest.mark.filterwarnings("ignore:Payload indexes have no effect:UserWarning")

SPACE = EmbeddingSpace("fake-model", 8)
LONG = " ".join(f"older{i}" for i in range(400))  # many chunks of the fake's 400 chars


class HeldUpserts:
    """The store, except that its first upsert waits until `release` is set (its primitives,
    which its own `write` calls, are replaced on the instance)."""

    def __init__(self, store: PrimitivesStore) -> None:
        self._store = store
        self._upsert, self._delete = store.upsert_chunks, store.delete_where
        self.waiting = asyncio.Event()
        self.release = asyncio.Event()
        self.older_version_deletes = 0
        store.upsert_chunks = self.upsert_chunks  # type: ignore[method-assign]
        store.delete_where = self.delete_where  # type: ignore[method-assign]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def upsert_chunks(self, space: EmbeddingSpace, points: Sequence[ChunkPoint]) -> None:
        if not self.waiting.is_set():
            self.waiting.set()
            await self.release.wait()
        await self._upsert(space, points)

    async def delete_where(
        self, space: EmbeddingSpace, tenant_id: str, where: Condition, *, weight: int = 1
    ) -> None:
        self.older_version_deletes += 1
        await self._delete(space, tenant_id, where, weight=weight)


@pytest.fixture(params=["edge", "qdrant"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[PrimitivesStore]:
    store: PrimitivesStore
    if request.param == "edge":
        store = EdgeStore(tmp_path / "edge")
    else:
        store = QdrantStore(location=":memory:")
    async with store:
        yield store


def chain() -> ProviderChain:
    return ProviderChain([FakeProvider(SPACE)], [CircuitBreaker()])


def upsert(text: str, version: int) -> Op:
    return Op("t", "a", Record(id="a", text=text, version=version))


def writers(held: HeldUpserts) -> tuple[Ingestor, Ingestor]:
    """(first, second): one ingestor of a sole writer (the Edge store), else two (as two
    processes)."""
    sole_writer = isinstance(held._store, EdgeStore)
    first = Ingestor(held._store)
    return first, first if sole_writer else Ingestor(held._store)


async def stored_text_and_points(store: PrimitivesStore) -> tuple[str, int]:
    record = (await store.stored_records(SPACE, "t", ["a"]))["a"]
    return record.text, await store.count(SPACE, "t")


async def test_a_first_write_removes_what_a_concurrent_older_first_write_left(
    store: PrimitivesStore,
) -> None:
    held = HeldUpserts(store)
    newer_writer, older_writer = writers(held)
    newer = asyncio.create_task(newer_writer.apply(chain(), [upsert("newest text", 2)]))
    await held.waiting.wait()  # B has read "nothing stored" and embedded; its write waits
    [older] = (await older_writer.apply(chain(), [upsert(LONG, 1)])).outcomes
    assert older.status == "upserted"  # A saw its own chunk 0: it believes it won
    held.release.set()
    [outcome] = (await newer).outcomes
    assert outcome.status == "upserted"
    assert await stored_text_and_points(store) == ("newest text", 1)  # none of A's left


async def test_an_older_write_that_lands_last_removes_its_own_chunks(
    store: PrimitivesStore,
) -> None:
    held = HeldUpserts(store)
    older_writer, newer_writer = writers(held)
    older = asyncio.create_task(older_writer.apply(chain(), [upsert(LONG, 1)]))
    await held.waiting.wait()
    [newer] = (await newer_writer.apply(chain(), [upsert("newest text", 2)])).outcomes
    assert newer.status == "upserted"
    held.release.set()
    [outcome] = (await older).outcomes
    assert outcome.status == "unchanged"  # superseded
    assert await stored_text_and_points(store) == ("newest text", 1)


@pytest.mark.parametrize("store", ["edge"], indirect=True)
async def test_a_sole_writer_cleans_up_after_updates_only(store: PrimitivesStore) -> None:
    held = HeldUpserts(store)
    held.waiting.set()  # nothing held
    ingestor = Ingestor(store)
    await ingestor.apply(chain(), [upsert(LONG, 1)])
    assert held.older_version_deletes == 0  # a first write, alone: nothing older exists
    await ingestor.apply(chain(), [upsert("newest text", 2)])
    assert held.older_version_deletes == 1
    assert await stored_text_and_points(store) == ("newest text", 1)


class LandingLate:
    """The store, except that the first upsert lands only when the next one is made, even
    if its caller was cancelled meanwhile (as a store call already on its thread would)."""

    def __init__(self, store: PrimitivesStore) -> None:
        self._store = store
        self._upsert = store.upsert_chunks
        self.late: asyncio.Future[None] | None = None
        self.held = asyncio.Event()
        self.release = asyncio.Event()
        store.upsert_chunks = self.upsert_chunks  # type: ignore[method-assign]

    async def upsert_chunks(self, space: EmbeddingSpace, points: Sequence[ChunkPoint]) -> None:
        if self.late is None:
            self.late = asyncio.ensure_future(self._land(space, points))
            self.held.set()
            await asyncio.shield(self.late)
            return
        self.release.set()
        await self.late  # the store runs writes in order
        await self._upsert(space, points)

    async def _land(self, space: EmbeddingSpace, points: Sequence[ChunkPoint]) -> None:
        await self.release.wait()
        await self._upsert(space, points)


@pytest.mark.parametrize("store", ["edge"], indirect=True)
async def test_a_write_after_a_cancelled_one_cleans_up_what_landed_late(
    store: PrimitivesStore,
) -> None:
    late = LandingLate(store)
    ingestor = Ingestor(store)
    cancelled = asyncio.create_task(ingestor.apply(chain(), [upsert(LONG, 1)]))
    await late.held.wait()
    cancelled.cancel()
    await asyncio.gather(cancelled, return_exceptions=True)
    # the next write finds nothing stored; the cancelled one's chunks land before its own
    [outcome] = (await ingestor.apply(chain(), [upsert("newest text", 2)])).outcomes
    assert outcome.status == "upserted"
    assert await stored_text_and_points(store) == ("newest text", 1)


async def test_a_write_landing_between_the_read_and_the_write_of_another_is_seen(
    store: PrimitivesStore,
) -> None:
    """A (older) reads "nothing stored" and embeds; meanwhile B (newer) writes and settles the
    record whole. A's write must find B's version (a sole writer reads chunk 0 again inside
    its claim): it is stale, and leaves none of its chunks."""
    ingestor = Ingestor(store)
    embedding, gate = asyncio.Event(), asyncio.Event()
    held = chain()
    embed = held.embed

    async def held_embed(*args: Any, **kwargs: Any) -> list[list[float]]:
        embedding.set()
        await gate.wait()
        return await embed(*args, **kwargs)

    held.embed = held_embed  # type: ignore[method-assign]
    older = asyncio.create_task(ingestor.apply(held, [upsert(LONG, 1)]))
    await embedding.wait()
    [newer] = (await ingestor.apply(chain(), [upsert("newest text", 2)])).outcomes
    assert newer.status == "upserted"
    gate.set()
    [outcome] = (await older).outcomes
    assert outcome.status == "unchanged"
    assert await stored_text_and_points(store) == ("newest text", 1)
