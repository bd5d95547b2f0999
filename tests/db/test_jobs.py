"""JobRepo: exact accounting under redelivery, concurrency and tenant isolation."""

from __future__ import annotations

import asyncio
import random
from contextlib import AsyncExitStack
from typing import Any

import pytest
import sqlalchemy as sa

from vecpipe.db import Database, open_database
from vecpipe.db.jobs import MAX_FAILURES_REPORTED
from vecpipe.errors import ValidationError


def _items(n: int, op: str = "upsert") -> list[tuple[str, str]]:
    return [(f"rec-{i:05d}", op) for i in range(n)]


async def test_status_moves_from_queued_to_completed(db: Database) -> None:
    job_id = await db.jobs.create("acme", [("a", "upsert"), ("b", "delete"), ("c", "upsert")])
    status = await db.jobs.get("acme", job_id)
    assert status is not None
    assert (status.status, status.total, status.done, status.failed) == ("queued", 3, 0, 0)

    assert await db.jobs.record_outcomes(job_id, {"a": ("done", None)}) == 1
    status = await db.jobs.get("acme", job_id)
    assert status is not None and status.status == "running"

    outcomes = {"b": ("failed", "provider down"), "c": ("unchanged", None)}
    assert await db.jobs.record_outcomes(job_id, outcomes) == 2
    status = await db.jobs.get("acme", job_id)
    assert status is not None
    assert status.model_dump(include={"status", "total", "done", "unchanged", "failed"}) == {
        "status": "completed",
        "total": 3,
        "done": 1,
        "unchanged": 1,
        "failed": 1,
    }
    assert status.failures == [{"id": "b", "error": "provider down"}]
    assert status.created_at.tzinfo is not None


async def test_not_found_is_counted_and_completion_is_stamped(db: Database) -> None:
    job_id = await db.jobs.create("acme", [("a", "delete"), ("b", "delete")])
    await db.jobs.record_outcomes(job_id, {"a": ("not_found", None)})
    running = await db.jobs.get("acme", job_id)
    assert running is not None and running.finished_at is None
    await db.jobs.record_outcomes(job_id, {"b": ("done", None)})
    status = await db.jobs.get("acme", job_id)
    assert status is not None
    assert (status.status, status.done, status.not_found) == ("completed", 1, 1)
    assert status.finished_at is not None and status.finished_at >= status.created_at
    stamped = status.finished_at
    await db.jobs.record_outcomes(job_id, {"b": ("done", None)})  # a redelivery: no change
    again = await db.jobs.get("acme", job_id)
    assert again is not None and again.finished_at == stamped


async def test_redelivered_outcomes_count_once_first_wins_but_a_success_heals_a_failure(
    db: Database,
) -> None:
    job_id = await db.jobs.create("acme", _items(4))
    first = {"rec-00000": ("done", None), "rec-00001": ("failed", "boom")}
    assert await db.jobs.record_outcomes(job_id, first) == 2
    assert await db.jobs.record_outcomes(job_id, first) == 0
    again = {
        "rec-00000": ("failed", "late"),
        "rec-00001": ("done", None),
        "rec-00002": ("unchanged", None),
        "not-in-job": ("done", None),
    }
    # rec-00000 keeps "done"; rec-00001's replayed dead letter succeeded; rec-00002 is new
    assert await db.jobs.record_outcomes(job_id, again) == 2
    status = await db.jobs.get("acme", job_id)
    assert status is not None
    assert (status.done, status.unchanged, status.failed, status.status) == (2, 1, 0, "running")
    assert status.failures == []
    assert await db.jobs.record_outcomes(job_id, {"rec-00001": ("failed", "again")}) == 0


async def test_concurrent_workers_never_double_count(database_url: str) -> None:
    """Eight tasks on three engines report overlapping, conflicting outcomes."""
    n, workers = 600, 8
    rng = random.Random(7)
    shares: list[list[tuple[str, tuple[str, str | None]]]] = [[] for _ in range(workers)]
    for record_id, _ in _items(n):
        for worker in rng.sample(range(workers), 3):  # each record delivered three times
            kind = rng.choice(["done", "unchanged", "failed"])
            shares[worker].append((record_id, (kind, f"error {worker}")))

    async with AsyncExitStack() as stack:
        dbs = [await stack.enter_async_context(open_database(database_url)) for _ in range(3)]
        job_id = await dbs[0].jobs.create("acme", _items(n))

        async def work(index: int) -> int:
            share, db, newly_set = shares[index], dbs[index % len(dbs)], 0
            for start in range(0, len(share), 40):
                newly_set += await db.jobs.record_outcomes(job_id, dict(share[start : start + 40]))
                await asyncio.sleep(0)
            return newly_set

        counted = await asyncio.gather(*(work(i) for i in range(workers)))
        status = await dbs[1].jobs.get("acme", job_id)

    assert sum(counted) >= n  # every record set once, some failures later healed
    assert status is not None and status.status == "completed"
    assert status.done + status.unchanged + status.failed == n


async def test_job_of_another_tenant_is_invisible(db: Database) -> None:
    job_id = await db.jobs.create("acme", _items(2))
    other_id = await db.jobs.create("zeta", _items(1))
    assert await db.jobs.get("zeta", job_id) is None
    assert await db.jobs.get("acme", "no-such-job") is None
    assert [s.job_id for s in await db.jobs.list("zeta")] == [other_id]
    assert {s.job_id for s in await db.jobs.list(None)} == {job_id, other_id}

    outcome = {"rec-00000": ("done", None)}
    assert await db.jobs.record_outcomes(job_id, outcome, tenant_id="zeta") == 0
    assert await db.jobs.record_outcomes(job_id, outcome, tenant_id="acme") == 1


async def test_list_is_newest_first_and_limited(db: Database) -> None:
    ids = [await db.jobs.create("acme", _items(1)) for _ in range(3)]
    listed = await db.jobs.list("acme", limit=2)
    assert len(listed) == 2
    assert listed[0].created_at >= listed[1].created_at
    assert set(s.job_id for s in listed) <= set(ids)


async def test_failures_are_capped_but_counted(db: Database) -> None:
    n = MAX_FAILURES_REPORTED + 50
    job_id = await db.jobs.create("acme", _items(n, "delete"))
    outcomes = {rid: ("failed", f"err {rid}") for rid, _ in _items(n)}
    assert await db.jobs.record_outcomes(job_id, outcomes) == n
    status = await db.jobs.get("acme", job_id)
    assert status is not None
    assert status.failed == n and status.status == "completed"
    assert len(status.failures) == MAX_FAILURES_REPORTED
    assert status.failures[0] == {"id": "rec-00000", "error": "err rec-00000"}
    (listed,) = await db.jobs.list("acme")
    assert len(listed.failures) == MAX_FAILURES_REPORTED


async def test_big_job_is_inserted_in_chunks(db: Database) -> None:
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    sa.event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    try:
        job_id = await db.jobs.create("acme", _items(5000))
    finally:
        sa.event.remove(db.engine.sync_engine, "before_cursor_execute", count)
    inserts = [s for s in statements if s.lstrip().upper().startswith("INSERT")]
    assert len(inserts) <= 20, f"{len(inserts)} INSERT statements for 5,000 items"

    outcomes = {rid: ("done", None) for rid, _ in _items(5000)}
    assert await db.jobs.record_outcomes(job_id, outcomes) == 5000
    status = await db.jobs.get("acme", job_id)
    assert status is not None
    assert (status.total, status.done, status.status) == (5000, 5000, "completed")


async def test_empty_job_is_completed(db: Database) -> None:
    job_id = await db.jobs.create("acme", [])
    status = await db.jobs.get("acme", job_id)
    assert status is not None and (status.status, status.total) == ("completed", 0)


@pytest.mark.parametrize(
    "items",
    [
        [("a", "upsert"), ("a", "delete")],
        [("a", "patch")],
        [("", "upsert")],
        [("x" * 513, "delete")],
    ],
)
async def test_bad_items_are_rejected(db: Database, items: list[tuple[str, str]]) -> None:
    with pytest.raises(ValidationError):
        await db.jobs.create("acme", items)
    assert await db.jobs.list("acme") == []


async def test_unknown_outcome_is_rejected(db: Database) -> None:
    job_id = await db.jobs.create("acme", _items(1))
    with pytest.raises(ValidationError):
        await db.jobs.record_outcomes(job_id, {"rec-00000": ("skipped", None)})


async def test_a_batch_of_successes_heals_failures_but_not_other_outcomes(db: Database) -> None:
    job_id = await db.jobs.create("acme", _items(3))
    first = {"rec-00000": ("failed", "boom"), "rec-00001": ("unchanged", None)}
    assert await db.jobs.record_outcomes(job_id, first, tenant_id="acme") == 2
    successes = {f"rec-{i:05d}": ("done", None) for i in range(3)}
    assert await db.jobs.record_outcomes(job_id, successes, tenant_id="zeta") == 0
    assert await db.jobs.record_outcomes(job_id, successes, tenant_id="acme") == 2
    status = await db.jobs.get("acme", job_id)
    assert status is not None
    assert (status.done, status.unchanged, status.failed) == (2, 1, 0)


async def test_another_tenant_sets_nothing_whatever_the_mix(db: Database) -> None:
    job_id = await db.jobs.create("acme", _items(2))
    mixed = {"rec-00000": ("failed", "boom"), "rec-00001": ("done", None)}
    assert await db.jobs.record_outcomes(job_id, mixed, tenant_id="zeta") == 0
    status = await db.jobs.get("acme", job_id)
    assert status is not None and status.status == "queued"


async def test_counts_by_state_tenants_and_the_owner_of_a_job(db: Database) -> None:
    assert await db.jobs.counts_by_state() == {"queued": 0, "running": 0, "completed": 0}
    queued = await db.jobs.create("acme", _items(2))
    running = await db.jobs.create("acme", _items(2))
    completed = await db.jobs.create("globex", _items(1))
    await db.jobs.record_outcomes(running, {"rec-00000": ("done", None)})
    await db.jobs.record_outcomes(completed, {"rec-00000": ("failed", "bad")})

    assert await db.jobs.counts_by_state() == {"queued": 1, "running": 1, "completed": 1}
    assert sorted(await db.jobs.tenants()) == ["acme", "globex"]
    assert await db.jobs.tenant_of(queued) == "acme"
    assert await db.jobs.tenant_of(completed) == "globex"
    assert await db.jobs.tenant_of("no-such-job") is None
