"""`run()`: a batch settles while the next is received and processed; acks still follow
durable writes, a stop drains, a cancellation gives everything in flight back."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from tests.support.app import FakeFactory
from tests.support.processes import eventually
from vecpipe.models import EmbeddingSpace, Record
from vecpipe.queue.base import Delivery
from vecpipe.resources import Resources
from vecpipe.settings import Limits
from vecpipe.store.writes import WriteBatch, WriteResult
from vecpipe.worker.background import worker_for
from vecpipe.worker.messages import parse_message

TENANT = "acme"


def records(n: int) -> list[Record]:
    return [Record(id=f"r{i}", text=f"pipelined record {i}") for i in range(n)]


async def until_completed(resources: Resources, job_id: str) -> None:
    async def completed() -> bool:
        return (await resources.pipeline.job(TENANT, job_id)).status == "completed"

    await eventually(completed, "the job completed", 60)


async def test_every_ack_follows_the_durable_write_of_its_record(
    resources: Resources, fake_factory: FakeFactory
) -> None:
    pipeline, queue, store = resources.pipeline, resources.queue, resources.store
    await pipeline.ingest(TENANT, [Record(id="warm", text="warm")])
    fake_factory.built[-1].delay = 0.01  # batches overlap: one embeds while one settles
    written: set[str] = set()  # by upserts that finished
    durable: set[str] = set()  # written before a flush that started later, finished
    not_durable_at_ack: list[str] = []
    write, flush, ack = store.write, store.flush, queue.ack

    async def tracked_write(space: EmbeddingSpace, batch: WriteBatch) -> WriteResult:
        result = await write(space, batch)
        written.update(upsert.key[1] for upsert in batch.upserts)
        return result

    async def tracked_flush(space: EmbeddingSpace) -> None:
        covered = set(written)
        await flush(space)
        durable.update(covered)

    async def checked_ack(deliveries: Sequence[Delivery]) -> None:
        ids = [parse_message(d.body, Limits()).op.record_id for d in deliveries]
        not_durable_at_ack.extend(i for i in ids if i not in durable)
        await ack(deliveries)

    store.write = tracked_write  # type: ignore[method-assign]
    store.flush = tracked_flush  # type: ignore[method-assign]
    queue.ack = checked_ack  # type: ignore[method-assign]
    settings = resources.settings.model_copy(update={"worker_batch_size": 8})
    worker = worker_for(resources, settings=settings)
    job_id = await pipeline.submit_job(TENANT, upserts=records(100))
    task = asyncio.create_task(worker.run())
    await until_completed(resources, job_id)
    worker.request_stop()
    await task
    status = await pipeline.job(TENANT, job_id)
    assert (status.done, status.failed) == (100, 0)
    assert not_durable_at_ack == []
    assert await queue.depth() == 0  # every batch settled before run() returned


async def test_a_cancel_gives_back_settling_and_prefetched_batches(
    resources: Resources,
) -> None:
    pipeline, queue = resources.pipeline, resources.queue
    settings = resources.settings.model_copy(update={"worker_batch_size": 10})
    job_id = await pipeline.submit_job(TENANT, upserts=records(60))
    record_outcomes = pipeline.jobs.record_outcomes
    settling: list[object] = []
    two_settling = asyncio.Event()

    async def stuck(*args: Any, **kwargs: Any) -> int:
        settling.append(args)
        if len(settling) == 2:
            two_settling.set()
        await asyncio.Event().wait()  # the database hangs
        return 0

    pipeline.jobs.record_outcomes = stuck  # type: ignore[method-assign]
    worker = worker_for(resources, settings=settings)
    task = asyncio.create_task(worker.run())
    await two_settling.wait()  # two batches settling, a third received ahead
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)

    # nothing was acked, nothing stays leased (a receive cut short gives its leases back a
    # moment later; an expired lease would take 5 s): all of it, attempts uncounted
    async def all_given_back() -> bool:
        taken = await queue.receive(100, timeout=0)
        await queue.release(taken)
        return len(taken) == 60 and {d.attempts for d in taken} == {1}

    await eventually(all_given_back, "every message given back", timeout=3)

    pipeline.jobs.record_outcomes = record_outcomes  # type: ignore[method-assign]
    worker = worker_for(resources, settings=settings)
    task = asyncio.create_task(worker.run())
    await until_completed(resources, job_id)
    worker.request_stop()
    await task
    status = await pipeline.job(TENANT, job_id)
    assert (status.done + status.unchanged, status.failed) == (60, 0)
    assert await queue.depth() == 0
