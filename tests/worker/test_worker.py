"""The worker against the SQLite queue and Edge store, with a fake provider."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.support.app import FakeFactory
from tests.support.processes import eventually
from vecpipe.core.ingest import Op
from vecpipe.core.pipeline import Pipeline, message_for
from vecpipe.errors import StoreError
from vecpipe.models import EmbeddingSpace, Record
from vecpipe.resources import Resources
from vecpipe.settings import Limits
from vecpipe.worker.background import worker_for
from vecpipe.worker.messages import parse_message
from vecpipe.worker.worker import VectorizationWorker


def _worker(resources: Resources) -> VectorizationWorker:
    return worker_for(resources)


async def test_job_completes_with_every_record_counted_once(resources: Resources) -> None:
    pipeline = resources.pipeline
    upserts = [Record(id=f"r{i}", text=f"text number {i}") for i in range(150)]
    job_id = await pipeline.submit_job("acme", upserts=upserts, deletes=["ghost"])
    queued = await pipeline.job("acme", job_id)
    assert queued.status == "queued" and queued.total == 151
    await _worker(resources).run_until_idle()
    status = await pipeline.job("acme", job_id)
    assert status.status == "completed"
    assert (status.done, status.unchanged, status.not_found, status.failed) == (150, 0, 1, 0)
    assert status.finished_at is not None  # elapsed_seconds stays put once completed
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


async def test_a_record_whose_flush_failed_counts_done_when_redelivered(
    resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch's writes land, its flush fails, it is given back: the redelivery finds the
    records stored by a write no one was told of, and counts them done, not unchanged."""
    pipeline = resources.pipeline
    await pipeline.ingest("acme", [Record(id="old", text="to be deleted")])
    flush = resources.store.flush
    failed: list[EmbeddingSpace] = []

    async def failing_once(space: EmbeddingSpace) -> None:
        if not failed:
            failed.append(space)
            raise StoreError("edge flush failed: tracker_journal.dat is shorter than expected")
        await flush(space)

    monkeypatch.setattr(resources.store, "flush", failing_once)
    upserts = [Record(id=f"new-{i}", text=f"new text {i}") for i in range(20)]
    job_id = await pipeline.submit_job("acme", upserts=upserts, deletes=["old"])
    worker = _worker(resources)
    with pytest.raises(StoreError):
        await worker.run_until_idle()  # written, not flushed: the batch is given back
    assert failed and (await pipeline.job("acme", job_id)).status == "queued"
    await worker.run_until_idle()
    status = await pipeline.job("acme", job_id)
    assert (status.status, status.done, status.unchanged, status.failed) == ("completed", 21, 0, 0)


async def test_a_job_record_written_by_a_worker_that_died_counts_done(
    resources: Resources,
) -> None:
    """A worker wrote and flushed a batch, then died before counting it: nothing of it is
    left in memory, and the redelivery knows its own write by the job's version."""
    pipeline = resources.pipeline
    job_id = await pipeline.submit_job("acme", upserts=[Record(id="a", text="written once")])
    deliveries = await resources.queue.receive(10, 1.0)
    await pipeline.process([parse_message(d.body, Limits()).op for d in deliveries])
    await resources.queue.release(deliveries)  # as when its lease runs out

    await _worker(resources).run_until_idle()
    status = await pipeline.job("acme", job_id)
    assert (status.status, status.done, status.unchanged, status.failed) == ("completed", 1, 0, 0)


async def test_a_full_disk_gives_the_batch_back_and_the_worker_waits_for_space(
    resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    free = {"bytes": 1 << 40}
    monkeypatch.setattr("vecpipe.diskspace.free_bytes", lambda path: free["bytes"])
    pipeline = resources.pipeline
    upserts = [Record(id=f"r{i}", text="t") for i in range(3)]
    job_id = await pipeline.submit_job("acme", upserts=upserts)
    free["bytes"] = resources.settings.min_free_bytes - 1
    worker = _worker(resources)
    await worker.handle(await resources.queue.receive(10, timeout=0))
    assert (worker.stats.processed, worker.stats.retried, worker.stats.dead_lettered) == (0, 0, 0)
    again = await resources.queue.receive(10, timeout=0)
    assert [d.attempts for d in again] == [1, 1, 1]  # a first delivery still: no attempt spent
    await resources.queue.release(again)
    assert (await pipeline.job("acme", job_id)).status == "queued"

    probes = 0
    check_ready = pipeline.store.check_ready

    async def counted() -> None:
        nonlocal probes
        probes += 1
        await check_ready()

    monkeypatch.setattr(pipeline.store, "check_ready", counted)
    task = asyncio.create_task(worker.run())
    try:
        await eventually(lambda: _at_least(probes, 3), "the worker waits for the store")
        assert (await pipeline.job("acme", job_id)).done == 0
        free["bytes"] = resources.settings.min_free_bytes
        await eventually(lambda: _completed(pipeline, job_id), "the job completed")
    finally:
        worker.request_stop()
        await task
    assert worker.stats.retried == 0 and await resources.queue.list_dead_letters() == []


async def _at_least(value: int, count: int) -> bool:
    return value >= count


async def _completed(pipeline: Pipeline, job_id: str) -> bool:
    return (await pipeline.job("acme", job_id)).status == "completed"
