"""The worker against the SQLite queue and Edge store, with a fake provider."""

from __future__ import annotations

import json

from tests.support.app import FakeFactory
from vecpipe.core.ingest import Op
from vecpipe.core.pipeline import message_for
from vecpipe.models import Record
from vecpipe.resources import Resources
from vecpipe.worker.worker import VectorizationWorker


def _worker(resources: Resources) -> VectorizationWorker:
    return VectorizationWorker(resources.pipeline, resources.queue, resources.settings)


async def test_job_completes_with_every_record_counted_once(resources: Resources) -> None:
    pipeline = resources.pipeline
    upserts = [Record(id=f"r{i}", text=f"text number {i}") for i in range(150)]
    job_id = await pipeline.submit_job("acme", upserts=upserts, deletes=["ghost"])
    queued = await pipeline.job("acme", job_id)
    assert queued.status == "queued" and queued.total == 151
    await _worker(resources).run_until_idle()
    status = await pipeline.job("acme", job_id)
    assert status.status == "completed"
    assert (status.done, status.unchanged, status.failed) == (150, 1, 0)
    assert (await pipeline.get_record("acme", "r42")).text == "text number 42"


async def test_redelivered_messages_are_counted_once(resources: Resources) -> None:
    pipeline = resources.pipeline
    records = [Record(id=f"r{i}", text=f"text {i}") for i in range(10)]
    job_id = await pipeline.submit_job("acme", upserts=records)
    # a duplicate delivery of the same messages, as after a crash between write and ack
    await resources.queue.publish([message_for(Op("acme", r.id, r), job_id) for r in records])
    await _worker(resources).run_until_idle()
    status = await pipeline.job("acme", job_id)
    assert status.total == 10
    assert status.done + status.unchanged + status.failed == 10
    assert status.status == "completed"


async def test_poison_messages_are_dead_lettered_and_work_goes_on(resources: Resources) -> None:
    queue = resources.queue
    good = message_for(Op("acme", "ok", Record(id="ok", text="fine")))
    unknown_op = json.dumps({"v": 1, "op": "explode", "tenant_id": "acme"}).encode()
    await queue.publish([b"{not json", unknown_op, good])
    await _worker(resources).run_until_idle()
    letters = await queue.list_dead_letters()
    reasons = sorted(letter.reason for letter in letters)
    assert len(letters) == 2
    assert any("invalid JSON" in r for r in reasons)
    assert any("op" in r for r in reasons)
    assert (await resources.pipeline.get_record("acme", "ok")).text == "fine"


async def test_failing_provider_retries_then_dead_letters(
    resources: Resources, fake_factory: FakeFactory
) -> None:
    pipeline = resources.pipeline
    await pipeline.ingest("acme", [Record(id="warm", text="warm")])
    fake_factory.built[-1].fail_times = 1_000
    job_id = await pipeline.submit_job("acme", upserts=[Record(id="x", text="never embedded")])
    worker = _worker(resources)
    for _ in range(200):
        await worker.run_until_idle()
        if (await pipeline.job("acme", job_id)).status == "completed":
            break
        import asyncio

        await asyncio.sleep(0.02)
    status = await pipeline.job("acme", job_id)
    assert status.failed == 1 and status.status == "completed"
    assert worker.stats.retried == resources.settings.max_attempts - 1
    letters = await resources.queue.list_dead_letters()
    assert len(letters) == 1 and letters[0].attempts == resources.settings.max_attempts
