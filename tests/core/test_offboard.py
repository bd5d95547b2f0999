"""Offboarding (issue 15): after `offboard_tenant(A)` nothing of A is reachable or on disk,
B is intact, late messages of A are dropped, and a repeat (after a kill) finishes the job."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.store.contract import record_points
from tests.support.app import FAKE_DIMENSION, FakeFactory, make_settings
from vecpipe.core.ingest import Op
from vecpipe.core.offboard import offboard_tenant
from vecpipe.core.pipeline import message_for
from vecpipe.core.reindex import ReindexRunner, space_dict
from vecpipe.db.tokens import hash_token
from vecpipe.models import EmbeddingSpace, Record
from vecpipe.providers.config import AIConfig
from vecpipe.resources import Resources, open_resources
from vecpipe.settings import Settings
from vecpipe.store.writes import WriteBatch
from vecpipe.worker.background import worker_for

A, B = "alpha-co", "beta-co"
LOCAL = {"primary": {"kind": "local", "model": "all-MiniLM-L6-v2"}}
OTHER = EmbeddingSpace(model="reindex-target", dimension=FAKE_DIMENSION)


@dataclass
class Marks:
    """What must vanish of a tenant (or stay, for the other one): ids, texts, token hashes."""

    strings: list[str] = field(default_factory=list)


async def populate(resources: Resources, tenant: str) -> Marks:
    """Records in two spaces (one a migration's target), tokens, a finished and a queued
    job, and a dead letter."""
    marks = Marks()
    pipeline, db = resources.pipeline, resources.database
    await pipeline.set_ai_config(tenant, LOCAL)
    records = [
        Record(id=f"{tenant}-rec-{i}", text=f"{tenant} private text {i}", metadata={"n": i})
        for i in range(20)
    ]
    await pipeline.ingest(tenant, records)
    marks.strings += [r.id for r in records] + [r.text for r in records]
    _, token = await db.tokens.create(tenant)
    marks.strings.append(hash_token(token))
    done = [Record(id=f"{tenant}-job-{i}", text=f"{tenant} job text {i}") for i in range(3)]
    await pipeline.submit_job(tenant, upserts=done)
    await worker_for(resources).run_until_idle()
    marks.strings += [r.id for r in done] + [r.text for r in done]
    dead = Record(id=f"{tenant}-dead", text=f"{tenant} dead letter text")
    await resources.queue.publish([message_for(Op(tenant, dead.id, dead))])
    [delivery] = [d for d in await resources.queue.receive(10, 1.0) if dead.id.encode() in d.body]
    await resources.queue.dead_letter(delivery, "failed for the test")
    marks.strings += [dead.id, dead.text]
    target = record_points(tenant, f"{tenant}-target", [[1.0] + [0.0] * (FAKE_DIMENSION - 1)])
    for point in target:
        point.record_text = point.chunk_text = f"{tenant} reindexed text"
    await resources.store.write(OTHER, WriteBatch.of_points(target))
    await resources.store.flush(OTHER)
    marks.strings += [f"{tenant}-target", f"{tenant} reindexed text"]
    return marks


async def queue_a_job(resources: Resources, tenant: str, marks: Marks) -> None:
    queued = [Record(id=f"{tenant}-queued-{i}", text=f"{tenant} queued text {i}") for i in range(3)]
    await resources.pipeline.submit_job(tenant, upserts=queued)
    marks.strings += [r.id for r in queued] + [r.text for r in queued]


async def start_migration(resources: Resources, tenant: str) -> None:
    current = await resources.pipeline.space_of(tenant)
    await resources.database.reindexes.start(
        tenant,
        from_config=await resources.pipeline.configs.stored(tenant),
        to_config=resources.pipeline.configs.seal(AIConfig.model_validate(LOCAL)),
        from_space=space_dict(current),
        to_space=space_dict(OTHER),
        total=20,
    )


def scan(data_dir: Path, strings: list[str]) -> list[tuple[str, str]]:
    """(file, string) for each string found in any file under the data dir."""
    found = []
    needles = [(s, s.encode()) for s in strings]
    for path in data_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found += [(str(path.relative_to(data_dir)), s) for s, b in needles if b in data]
    return found


def settings_for(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "data", worker_batch_size=64)


async def reachable(resources: Resources, tenant: str) -> dict[str, int]:
    """Everything of the tenant the library can still find."""
    store, db = resources.store, resources.database
    points = sum([await store.count(space, tenant) for space in await store.spaces()])
    queued = await resources.queue.receive(1000, 0.2)
    await resources.queue.release(queued)
    dead = await resources.queue.list_dead_letters(1000)
    return {
        "points": points,
        "config": int(await db.configs.get(tenant) is not None),
        "tokens": len(await db.tokens.list(tenant)),
        "jobs": len(await db.jobs.list(tenant)),
        "migration": int(await db.reindexes.get(tenant) is not None),
        "queued": sum(tenant.encode() in d.body for d in queued),
        "dead": sum(tenant.encode() in d.body for d in dead),
    }


NOTHING = {
    "points": 0,
    "config": 0,
    "tokens": 0,
    "jobs": 0,
    "migration": 0,
    "queued": 0,
    "dead": 0,
}


async def test_offboarding_leaves_nothing_of_a_and_everything_of_b(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    async with open_resources(settings, provider_factory=FakeFactory()) as resources:
        marks = {tenant: await populate(resources, tenant) for tenant in (A, B)}
        for tenant in (A, B):
            await queue_a_job(resources, tenant, marks[tenant])
        await start_migration(resources, A)
        before_b = await reachable(resources, B)
        assert all((await reachable(resources, A)).values())

        removed = await offboard_tenant(resources.pipeline, resources.database, A)
        assert removed["records"] == 20 + 3 + 1 and removed["tokens"] == 1
        assert removed["jobs"] == 2 and removed["migration"] and removed["ai_config"]
        assert removed["queued_messages"] == 3 and removed["dead_letters"] == 1
        assert OTHER.key in removed["spaces"] and len(removed["spaces"]) == 2

        assert await reachable(resources, A) == NOTHING
        assert await reachable(resources, B) == before_b
        assert await resources.pipeline.count_records(B) == 23
        again = await offboard_tenant(resources.pipeline, resources.database, A)
        assert again["records"] == 0 and again["tokens"] == 0  # idempotent
    leaks = scan(settings.data_dir, marks[A].strings)
    assert leaks == []
    assert scan(settings.data_dir, marks[B].strings)  # the scan does find what is there


async def test_a_late_message_of_an_offboarded_tenant_is_dropped(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    async with open_resources(settings, provider_factory=FakeFactory()) as resources:
        pipeline = resources.pipeline
        late = Record(id="late", text="late text")
        job_id = await pipeline.submit_job(A, upserts=[late])
        body = [message_for(Op(A, late.id, late), job_id)]
        await offboard_tenant(pipeline, resources.database, A)
        await resources.queue.publish(body)  # e.g. a retry delay queue handing it back
        await worker_for(resources).run_until_idle()
        assert await pipeline.count_records(A) == 0
        tombstone = await resources.database.tombstones.get(A)
        assert tombstone is not None and tombstone.state == "deleted"
        assert tombstone.dropped == 1
        # the tenant may come back: a job submitted after the deletion runs
        await pipeline.submit_job(A, upserts=[Record(id="fresh", text="fresh text")])
        await worker_for(resources).run_until_idle()
        assert await pipeline.count_records(A) == 1


async def test_offboarding_waits_for_the_page_a_migration_is_copying(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page the migration runner took before the offboarding forgot the migration lands
    first, then goes with the rest: written after the deletion, it brought A's records back."""
    copying, release = asyncio.Event(), asyncio.Event()
    copy_page = ReindexRunner._copy_page

    async def held(self: ReindexRunner, tenant_id: str, *args: Any) -> None:
        if tenant_id == A:
            copying.set()
            await release.wait()
        await copy_page(self, tenant_id, *args)

    monkeypatch.setattr(ReindexRunner, "_copy_page", held)
    settings = settings_for(tmp_path)
    async with open_resources(settings, provider_factory=FakeFactory()) as resources:
        marks = await populate(resources, A)
        await start_migration(resources, A)
        assert resources.pipeline.reindexes is not None
        resources.pipeline.reindexes.started.set()  # wake the runner now
        await asyncio.wait_for(copying.wait(), 10)
        offboarding = asyncio.create_task(
            offboard_tenant(resources.pipeline, resources.database, A)
        )
        await asyncio.sleep(0.3)
        assert not offboarding.done()  # the migration is forgotten; the page is awaited
        release.set()
        removed = await asyncio.wait_for(offboarding, 30)
        assert removed["records"] >= 20
        assert await reachable(resources, A) == NOTHING
    assert scan(settings.data_dir, marks.strings) == []
