"""A full sync as a job (issue 15): the writes go through the queue (both backends), the
provider sees only missing and changed texts, the extras go once, and the job shows the
drift and exact progress; a job whose queuing was cut short reports `interrupted`."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.core.test_full_sync import records, stored_ids
from tests.db.conftest import database_url  # noqa: F401
from tests.queue.conftest import delete_topology, rabbitmq_url  # noqa: F401
from tests.support.app import FakeFactory, make_settings
from tests.support.processes import eventually
from vecpipe.core.full_sync import SyncSet
from vecpipe.core.sync_job import STALE_SECONDS, submit_sync_job, sync_jobs, sync_progress
from vecpipe.errors import QueueError
from vecpipe.queue.rabbitmq.topology import Topology
from vecpipe.resources import Resources, open_resources
from vecpipe.settings import Settings

T = "acme"


@pytest.fixture(params=["sqlite", "rabbitmq"])
def backend_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    if request.param == "sqlite":
        return make_settings(tmp_path / "data")
    url = request.getfixturevalue("rabbitmq_url")
    name = f"vecpipe-test-{uuid.uuid4().hex[:12]}"
    settings = make_settings(
        tmp_path / "data", queue="rabbitmq", rabbitmq_url=url, rabbitmq_queue=name
    )
    request.addfinalizer(
        lambda: asyncio.run(
            delete_topology(url, [Topology.for_queue(name, settings.retry_max_seconds)])
        )
    )
    return settings


@pytest.fixture
async def backend(
    backend_settings: Settings, fake_factory: FakeFactory
) -> AsyncIterator[Resources]:
    async with open_resources(backend_settings, provider_factory=fake_factory) as opened:
        yield opened


async def _run_worker_until_done(resources: Resources, job_id: str) -> dict[str, Any]:
    from vecpipe.worker.background import worker_for

    worker = worker_for(resources)
    task = asyncio.create_task(worker.run())

    async def completed() -> bool:
        return (await resources.pipeline.job(T, job_id)).status == "completed"

    try:
        await eventually(completed, "the sync job completed", 60)
    finally:
        worker.request_stop()
        await task
    return (await resources.pipeline.job(T, job_id)).model_dump()


async def test_a_sync_job_of_1000_writes_only_the_drift_through_the_queue(
    backend: Resources, fake_factory: FakeFactory
) -> None:
    pipeline = backend.pipeline
    await pipeline.ingest(T, records(range(1000)))
    wanted = records(range(100, 900)) + records(range(900, 1000), "v2") + records(range(1000, 1100))
    before = fake_factory.texts_embedded
    with SyncSet(pipeline.settings.limits) as sset:
        for record in wanted:
            sset.add(record)
        accepted = await submit_sync_job(pipeline, T, sset, sample=3)
    assert accepted["counts"] == {"missing": 100, "changed": 100, "unchanged": 800, "extra": 100}
    assert accepted["total"] == 300 and len(accepted["sample"]["extra"]) == 3
    assert fake_factory.texts_embedded == before  # nothing embedded in the call itself
    row = await sync_jobs(pipeline).get(accepted["job_id"])
    assert row is not None and sync_progress(row)["state"] == "published"  # type: ignore[index]

    status = await _run_worker_until_done(backend, accepted["job_id"])
    assert (status["total"], status["done"], status["failed"]) == (300, 300, 0)
    assert fake_factory.texts_embedded - before == 200  # only the new and changed texts
    assert await stored_ids(backend) == {r.id for r in wanted}
    got = await pipeline.get_record(T, "r950")
    assert got.text == "text 950 v2"


async def test_a_scoped_sync_job_never_touches_records_outside_its_scope(
    resources: Resources,
) -> None:
    pipeline = resources.pipeline
    await pipeline.ingest(T, records(range(10), src="jira") + records(range(10, 20), src="web"))
    with SyncSet(pipeline.settings.limits) as sset:
        for record in records(range(5), src="jira"):
            sset.add(record)
        accepted = await submit_sync_job(pipeline, T, sset, scope={"src": "jira"})
    assert accepted["counts"]["extra"] == 5
    await _run_worker_until_done(resources, accepted["job_id"])
    assert await stored_ids(resources) == {f"r{i}" for i in [*range(5), *range(10, 20)]}


async def test_a_job_whose_queuing_was_cut_short_is_reported_interrupted(
    resources: Resources,
) -> None:
    pipeline = resources.pipeline
    await pipeline.ingest(T, records(range(300)))
    publish = pipeline.queue.publish
    calls = 0

    async def dies_after_one_batch(bodies: Any) -> None:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise QueueError("the broker went away")
        await publish(bodies)

    pipeline.queue.publish = dies_after_one_batch  # type: ignore[method-assign]
    with SyncSet(pipeline.settings.limits) as sset:
        for record in records(range(300), "v2"):
            sset.add(record)
        with pytest.raises(QueueError):
            await submit_sync_job(pipeline, T, sset)
    pipeline.queue.publish = publish  # type: ignore[method-assign]
    [job] = await pipeline.jobs.list(T)
    row = await sync_jobs(pipeline).get(job.job_id)
    assert row is not None
    assert sync_progress(row)["state"] == "publishing"  # type: ignore[index]
    later = time.time() + STALE_SECONDS + 1
    assert sync_progress(row, now=later)["state"] == "interrupted"  # type: ignore[index]


async def test_offboarding_removes_a_sync_jobs_drift_report(
    settings: Settings,
    fake_factory: FakeFactory,
    database_url: str,  # noqa: F811 (SQLite and PostgreSQL)
) -> None:
    """The report names record ids (its samples): it goes with the tenant's jobs."""
    from vecpipe.core.offboard import offboard_tenant

    on_db = settings.model_copy(update={"database_url": database_url})
    async with open_resources(on_db, provider_factory=fake_factory) as resources:
        await _offboard_a_sync_job(resources, offboard_tenant)


async def _offboard_a_sync_job(resources: Resources, offboard_tenant: Any) -> None:
    pipeline = resources.pipeline
    await pipeline.ingest(T, records(range(5)))
    with SyncSet(pipeline.settings.limits) as sset:
        for record in records(range(3, 8)):
            sset.add(record)
        accepted = await submit_sync_job(pipeline, T, sset)
    assert await sync_jobs(pipeline).get(accepted["job_id"]) is not None
    removed = await offboard_tenant(pipeline, resources.database, T)
    assert removed["jobs"] == 1
    assert await sync_jobs(pipeline).get(accepted["job_id"]) is None


async def test_a_sync_job_resumes_after_a_restart_with_exact_counts(
    settings: Settings, fake_factory: FakeFactory
) -> None:
    """After the 202 every message is queued durably: a restart mid-job loses nothing and
    counts each record once."""
    from vecpipe.worker.background import worker_for

    small = settings.model_copy(update={"worker_batch_size": 8})
    wanted = records(range(50, 150), "v2") + records(range(150, 250))
    async with open_resources(small, provider_factory=fake_factory) as first:
        await first.pipeline.ingest(T, records(range(200)))
        fake_factory.built[-1].delay = 0.05  # batches of 8 take a while: the stop lands mid-job
        with SyncSet(first.pipeline.settings.limits) as sset:
            for record in wanted:
                sset.add(record)
            accepted = await submit_sync_job(first.pipeline, T, sset)
        assert accepted["total"] == 200  # 100 changed, 50 missing, 50 extra (50 unchanged)
        worker = worker_for(first)
        task = asyncio.create_task(worker.run())

        async def started() -> bool:
            return (await first.pipeline.job(T, accepted["job_id"])).done >= 16

        await eventually(started, "part of the job done", 60)
        worker.request_stop()
        await task
        part = await first.pipeline.job(T, accepted["job_id"])
        assert part.status == "running" and part.done < 200
    async with open_resources(small, provider_factory=fake_factory) as second:
        for provider in fake_factory.built:
            provider.delay = 0.0
        status = await _run_worker_until_done(second, accepted["job_id"])
        assert (status["total"], status["done"], status["failed"]) == (200, 200, 0)
        assert await stored_ids(second) == {r.id for r in wanted}
