"""Expiry (issue 15): a record past its `expires_at` is invisible at once to search, get,
list and count, and gone after one sweep; records without it are untouched."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from vecpipe.core.expiry import ExpirySweeper
from vecpipe.errors import NotFound
from vecpipe.models import Record
from vecpipe.resources import Resources

T = "acme"


async def test_expired_records_are_invisible_at_once_and_gone_after_a_sweep(
    resources: Resources,
) -> None:
    pipeline = resources.pipeline
    now = datetime.now(UTC)
    await pipeline.ingest(
        T,
        [
            Record(id="gone", text="shared words expired", expires_at=now - timedelta(seconds=1)),
            Record(id="later", text="shared words later", expires_at=now + timedelta(days=1)),
            Record(id="kept", text="shared words kept"),
        ],
    )
    hits = await pipeline.search(T, "shared words", limit=10)
    assert sorted(h.id for h in hits) == ["kept", "later"]
    with pytest.raises(NotFound):
        await pipeline.get_record(T, "gone")
    page = await pipeline.list_records(T)
    assert sorted(r.record_id for r in page.records) == ["kept", "later"]
    assert await pipeline.count_records(T) == 2
    later = {r.record_id: r for r in page.records}["later"]
    assert later.expiry_time() is not None

    space = await pipeline.space_of(T)
    assert await resources.store.count(space, T) == 3  # still stored, not yet swept
    sweeper = ExpirySweeper(resources.store, every_seconds=0, batch=1)
    assert await sweeper.sweep() == 1
    assert await resources.store.count(space, T) == 2
    assert (await pipeline.get_record(T, "kept")).text == "shared words kept"
    assert await sweeper.sweep() == 0


async def test_a_naive_expiry_is_utc_and_a_new_expiry_is_stored(resources: Resources) -> None:
    pipeline = resources.pipeline
    soon = datetime.now(UTC) + timedelta(days=1)
    await pipeline.ingest(T, [Record(id="r", text="x", expires_at=soon.replace(tzinfo=None))])
    assert (await pipeline.get_record(T, "r")).expires_at == pytest.approx(soon.timestamp())
    result = await pipeline.ingest(T, [Record(id="r", text="x")])  # same text, expiry dropped
    assert result.upserted == ["r"]
    assert (await pipeline.get_record(T, "r")).expires_at is None


async def test_a_tenant_ttl_gives_records_sent_without_one_an_expiry(
    resources: Resources,
) -> None:
    pipeline = resources.pipeline
    await pipeline.set_ai_config(
        T, {"primary": {"kind": "local", "model": "all-MiniLM-L6-v2"}, "ttl_seconds": 3600}
    )
    explicit = datetime.now(UTC) + timedelta(days=7)
    await pipeline.ingest(
        T, [Record(id="ttl", text="a"), Record(id="own", text="b", expires_at=explicit)]
    )
    ttl = (await pipeline.get_record(T, "ttl")).expires_at
    assert ttl is not None and 3500 < ttl - datetime.now(UTC).timestamp() <= 3600
    assert (await pipeline.get_record(T, "own")).expires_at == pytest.approx(explicit.timestamp())
    await pipeline.submit_job(T, upserts=[Record(id="queued", text="c")])
    from vecpipe.worker.background import worker_for

    await worker_for(resources).run_until_idle()
    assert (await pipeline.get_record(T, "queued")).expires_at is not None
