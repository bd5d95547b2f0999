"""The worker keeps the leases of the batches it holds for as long as it holds them.

The lease here is short (LEASE seconds) and the embed blocks on an event: a batch outlives
its first lease by far. Another handle on the same queue file plays a second worker: it
waits a few leases long for a message, and any lease that lapsed would be handed to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from tests.support.app import FakeFactory, make_settings
from tests.support.fake_provider import FakeProvider
from tests.support.processes import eventually
from vecpipe.errors import QueueError
from vecpipe.models import Record
from vecpipe.providers.base import Purpose
from vecpipe.queue.base import Delivery
from vecpipe.queue.sqlite import SqliteQueue
from vecpipe.resources import Resources
from vecpipe.settings import Settings
from vecpipe.worker.background import worker_for
from vecpipe.worker.worker import VectorizationWorker

TENANT = "acme"
LEASE = 0.6  # renewed every 0.2 s: a renewal may come 0.4 s late before a lease lapses
BATCH = 4


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(
        tmp_path / "data", lease_seconds=LEASE, worker_batch_size=BATCH, worker_concurrency=1
    )


@pytest.fixture
async def other_worker(settings: Settings) -> AsyncIterator[SqliteQueue]:
    async with SqliteQueue(
        settings.data_dir / "queue.db", lease_seconds=30.0, poll_interval=0.02
    ) as queue:
        yield queue


class BlockedEmbed:
    """The provider's embeds wait until `go` is set; `started` is set by the first one."""

    def __init__(self, provider: FakeProvider) -> None:
        self.started = asyncio.Event()
        self.go = asyncio.Event()
        self._embed = provider.embed
        provider.embed = self.embed  # type: ignore[method-assign]

    async def embed(
        self, texts: Sequence[str], *, purpose: Purpose = "document"
    ) -> list[list[float]]:
        self.started.set()
        await self.go.wait()
        return await self._embed(texts, purpose=purpose)


async def blocked_provider(resources: Resources, fake_factory: FakeFactory) -> BlockedEmbed:
    await resources.pipeline.ingest(TENANT, [Record(id="warm", text="warm")])  # builds it
    return BlockedEmbed(fake_factory.built[-1])


def received_by(worker: VectorizationWorker) -> list[Delivery]:
    """Every delivery the worker's queue handle receives, from now on."""
    received: list[Delivery] = []
    receive = worker.queue.receive

    async def recording(max_messages: int, timeout: float) -> list[Delivery]:
        got = await receive(max_messages, timeout)
        received.extend(got)
        return got

    worker.queue.receive = recording  # type: ignore[method-assign]
    return received


async def submit(resources: Resources, n: int) -> str:
    records = [Record(id=f"r{i}", text=f"a long record {i}") for i in range(n)]
    return await resources.pipeline.submit_job(TENANT, upserts=records)


async def until_completed(resources: Resources, job_id: str) -> None:
    async def completed() -> bool:
        return (await resources.pipeline.job(TENANT, job_id)).status == "completed"

    await eventually(completed, "the job completed", 30)


@contextlib.asynccontextmanager
async def running(worker: VectorizationWorker, embed: BlockedEmbed) -> AsyncIterator[None]:
    task = asyncio.create_task(worker.run())
    try:
        yield
    finally:
        embed.go.set()  # a failed test must not leave the worker blocked
        worker.request_stop()
        await task


async def test_a_batch_slower_than_its_lease_is_delivered_once(
    resources: Resources, fake_factory: FakeFactory, other_worker: SqliteQueue
) -> None:
    embed = await blocked_provider(resources, fake_factory)
    job_id = await submit(resources, 2 * BATCH)  # one batch embedding, one received ahead
    worker = worker_for(resources)
    received = received_by(worker)
    async with running(worker, embed):
        await embed.started.wait()
        await eventually(lambda: _true(worker.leases.held == 2 * BATCH), "a batch received ahead")

        assert await other_worker.receive(10, timeout=5 * LEASE) == []  # no lease lapsed

        embed.go.set()
        await until_completed(resources, job_id)
    bodies = [d.body for d in received]
    assert len(bodies) == len(set(bodies)) == 2 * BATCH
    assert {d.attempts for d in received} == {1}
    assert await resources.queue.depth() == 0
    assert worker.leases.held == 0


async def test_a_failing_renewal_is_logged_and_the_batch_goes_on(
    resources: Resources, fake_factory: FakeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    embed = await blocked_provider(resources, fake_factory)
    job_id = await submit(resources, BATCH)
    worker = worker_for(resources)
    renewals_failed = 0

    async def store_down(deliveries: Sequence[Delivery], seconds: float) -> list[Delivery]:
        nonlocal renewals_failed
        renewals_failed += 1
        if renewals_failed == 2:
            embed.go.set()
        raise QueueError("sqlite queue queue.db: disk I/O error")

    resources.queue.extend = store_down  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING, logger="vecpipe.worker.leases"):
        async with running(worker, embed):
            await until_completed(resources, job_id)
    assert "renewing 4 message leases failed (QueueError" in caplog.text
    status = await resources.pipeline.job(TENANT, job_id)
    assert (status.done, status.failed) == (BATCH, 0)


async def test_a_lost_lease_is_reported_and_the_new_holder_keeps_it(
    resources: Resources,
    fake_factory: FakeFactory,
    other_worker: SqliteQueue,
    caplog: pytest.LogCaptureFixture,
) -> None:
    embed = await blocked_provider(resources, fake_factory)
    job_id = await submit(resources, BATCH)
    worker = worker_for(resources)
    extend = resources.queue.extend
    store_down = True

    async def flaky(deliveries: Sequence[Delivery], seconds: float) -> list[Delivery]:
        if store_down:
            raise QueueError("sqlite queue queue.db: database is locked")
        return await extend(deliveries, seconds)

    resources.queue.extend = flaky  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING):
        async with running(worker, embed):
            await embed.started.wait()
            taken = await other_worker.receive(10, timeout=30)  # the leases lapse meanwhile
            assert len(taken) == BATCH and {d.attempts for d in taken} == {2}
            store_down = False
            await eventually(lambda: _true(worker.leases.held == 0), "the lost leases dropped")
            embed.go.set()
            await eventually(lambda: _true(worker.stats.batches == 1), "the batch settled")

    assert "4 message leases were lost" in caplog.text
    assert "ack ignored" in caplog.text  # the worker's ack did not take them from their holder
    assert await resources.queue.depth() == BATCH
    await other_worker.ack(taken)
    assert await resources.queue.depth() == 0
    status = await resources.pipeline.job(TENANT, job_id)
    assert (status.done, status.failed) == (BATCH, 0)


async def _true(value: bool) -> bool:
    return value
