"""Changing a tenant's chunking or title re-embeds its records through a migration (issue 17).

The real local model: a text format is part of the embedding space, so a new one is a new
space, and the migration runner re-embeds every record while search keeps answering from
the old space until the switch. Vectors made two ways never share an index.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.support.app import make_settings
from vecpipe.models import EmbeddingSpace, Record, StoredRecord
from vecpipe.resources import Resources, open_resources
from vecpipe.settings import Settings

pytestmark = pytest.mark.slow

TENANT = "acme"
RECORDS = 24
TOPICS = ("apt sources", "kernel modules", "mail servers", "printing", "disk quotas", "locales")


def records() -> list[Record]:
    out = []
    for i in range(RECORDS):
        topic = TOPICS[i % len(TOPICS)]
        sentences = [
            f"Section {i} explains {topic}, step {s}, on a Debian system." for s in range(30)
        ]
        out.append(Record(id=f"r{i}", text=" ".join(sentences), metadata={"chapter": topic}))
    return out


async def chunks_of(resources: Resources, space: EmbeddingSpace) -> list[StoredRecord]:
    page, cursor = await resources.store.scroll_records(space, TENANT, None, 500)
    assert cursor is None
    return page


async def wait_until_done(resources: Resources) -> None:
    while True:
        status = await resources.pipeline.migration_status(TENANT)
        if status is not None and status["state"] == "done":
            return
        await asyncio.sleep(0.05)


async def test_new_chunking_and_title_reembed_through_a_migration(tmp_path: Path) -> None:
    settings: Settings = make_settings(
        tmp_path / "data", migration_grace_seconds=0, migration_poll_seconds=0.05
    )
    async with open_resources(settings) as resources:
        pipeline = resources.pipeline
        await pipeline.ingest(TENANT, records())
        old_space = await pipeline.space_of(TENANT)
        assert old_space.variant == ""
        old_chunks = {r.record_id: r.chunk_count for r in await chunks_of(resources, old_space)}
        searches: list[int] = []
        stop = asyncio.Event()

        async def search_loop() -> None:
            while not stop.is_set():
                hits = await pipeline.search(TENANT, "how do I set up printing?", limit=5)
                searches.append(len(hits))
                await asyncio.sleep(0.01)

        loop = asyncio.create_task(search_loop())
        config = {"primary": {"kind": "local", "chunk_tokens": 64, "title_field": "chapter"}}
        target = await pipeline.set_ai_config(TENANT, config)
        assert (target.model, target.dimension) == (old_space.model, old_space.dimension)
        assert target.variant and target != old_space
        status = await pipeline.migration_status(TENANT)
        assert status is not None and status["state"] == "running"
        await wait_until_done(resources)
        stop.set()
        await loop  # re-raises any search error

        assert searches and all(n == 5 for n in searches)
        assert await pipeline.space_of(TENANT) == target
        assert await resources.store.count(old_space, TENANT) == 0
        new = await chunks_of(resources, target)
        assert {r.record_id for r in new} == set(old_chunks)
        assert all(r.chunk_count > old_chunks[r.record_id] for r in new)  # smaller chunks
        hits = await pipeline.search(TENANT, "printing", limit=3)
        assert hits and all(not (hit.chunk or "").startswith(TOPICS) for hit in hits)
        assert hits[0].metadata["chapter"] == "printing"


async def test_the_same_format_again_starts_no_migration(tmp_path: Path) -> None:
    async with open_resources(make_settings(tmp_path / "data")) as resources:
        pipeline = resources.pipeline
        config = {"primary": {"kind": "local", "chunk_tokens": 128, "title_field": "chapter"}}
        space = await pipeline.set_ai_config(TENANT, config)
        await pipeline.ingest(TENANT, records()[:2])
        assert await pipeline.set_ai_config(TENANT, config) == space
        assert await pipeline.migration_status(TENANT) is None
