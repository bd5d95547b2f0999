"""Two updates of one record in flight never leave the older text stored."""

from __future__ import annotations

import asyncio

from tests.support.app import FakeFactory
from vecpipe.core.ingest import Op
from vecpipe.core.pipeline import message_for
from vecpipe.models import Record
from vecpipe.resources import Resources
from vecpipe.worker.background import worker_for

LONG = " ".join(f"older{i}" for i in range(2_000))  # many chunks with the fake's 400 chars


async def test_an_older_version_is_skipped(resources: Resources) -> None:
    pipeline = resources.pipeline
    await pipeline.ingest("t", [Record(id="a", text="newest", version=20)])
    result = await pipeline.ingest("t", [Record(id="a", text="older", version=10)])
    assert result.unchanged == ["a"]
    assert (await pipeline.get_record("t", "a")).text == "newest"


async def test_concurrent_updates_leave_the_newest_whatever_finishes_last(
    resources: Resources, fake_factory: FakeFactory
) -> None:
    pipeline = resources.pipeline
    await pipeline.ingest("t", [Record(id="warm", text="warm")])
    fake_factory.built[-1].delay = 0.05  # both updates are embedding at the same time
    space = await pipeline.space_of("t")
    for round_, (first, second) in enumerate([(1, 2), (2, 1)]):
        texts = {1: LONG + f" round{round_}", 2: f"newest text round {round_}"}
        base = 100 * (round_ + 1)
        await asyncio.gather(
            pipeline.ingest("t", [Record(id="a", text=texts[first], version=base + first)]),
            pipeline.ingest("t", [Record(id="a", text=texts[second], version=base + second)]),
        )
        stored = await pipeline.get_record("t", "a")
        assert (stored.text, stored.version) == (texts[2], base + 2)
        assert await resources.store.count(space, "t") == 2  # "warm" + one chunk of "a"


async def test_a_redelivered_older_message_does_not_win(resources: Resources) -> None:
    pipeline = resources.pipeline
    first = await pipeline.submit_job("t", upserts=[Record(id="a", text="first text")])
    second = await pipeline.submit_job("t", upserts=[Record(id="a", text="second text")])
    older = Record(id="a", text="first text", version=1)  # the first job's copy, redelivered
    await resources.queue.publish([message_for(Op("t", "a", older), first)])
    await worker_for(resources).run_until_idle()
    assert (await pipeline.get_record("t", "a")).text == "second text"
    for job_id in (first, second):
        status = await pipeline.job("t", job_id)
        assert status.status == "completed" and status.failed == 0
