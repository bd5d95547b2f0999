"""The reindexes table: each state change that changes the active config is one transaction."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from vecpipe.db import Database

OLD: dict[str, Any] = {"primary": {"kind": "local", "model": "old"}}
NEW: dict[str, Any] = {"primary": {"kind": "local", "model": "new"}}
OLD_SPACE = {"model": "old", "dimension": 8}
NEW_SPACE = {"model": "new", "dimension": 16}


async def start(db: Database, from_config: dict[str, Any] | None = OLD) -> None:
    await db.reindexes.start(
        "acme",
        from_config=from_config,
        to_config=NEW,
        from_space=OLD_SPACE,
        to_space=NEW_SPACE,
        total=10,
    )


async def test_start_stores_the_target_and_a_running_row(db: Database) -> None:
    await db.configs.put("acme", OLD)
    await start(db)
    row = await db.reindexes.get("acme")
    assert row is not None and row.state == "running"
    assert (row.from_config, row.to_config, row.total, row.done) == (OLD, NEW, 10, 0)
    assert (row.from_space, row.to_space) == (OLD_SPACE, NEW_SPACE)
    assert await db.configs.get("acme") == NEW
    assert [r.tenant_id for r in await db.reindexes.in_states("running")] == ["acme"]
    assert await db.reindexes.in_states("done") == []
    assert await db.reindexes.get("other") is None


async def test_progress_then_switch_then_finish(db: Database) -> None:
    await start(db)
    await db.reindexes.progress("acme", 4, "one page failed")
    row = await db.reindexes.get("acme")
    assert row is not None and (row.done, row.error) == (4, "one page failed")
    await db.configs.put("acme", OLD)  # as if the start had not stored the target
    assert await db.reindexes.switch("acme", timedelta(seconds=60))
    assert not await db.reindexes.switch("acme", timedelta(seconds=60))  # once only
    row = await db.reindexes.get("acme")
    assert row is not None and row.state == "switched"
    assert row.finished_at is not None and row.delete_old_after is not None
    assert row.delete_old_after - row.finished_at == timedelta(seconds=60)
    assert await db.configs.get("acme") == NEW
    await db.reindexes.progress("acme", 9)  # ignored once it stopped running
    await db.reindexes.finish("acme")
    row = await db.reindexes.get("acme")
    assert row is not None and (row.state, row.done) == ("done", 4)


async def test_cancel_restores_the_old_config(db: Database) -> None:
    await db.configs.put("acme", OLD)
    await start(db)
    cancelled = await db.reindexes.cancel("acme")
    assert cancelled is not None and cancelled.to_space == NEW_SPACE
    assert await db.configs.get("acme") == OLD
    row = await db.reindexes.get("acme")
    assert row is not None and row.state == "cancelled"
    assert await db.reindexes.cancel("acme") is None  # nothing running any more
    assert not await db.reindexes.switch("acme", timedelta(0))


async def test_cancel_from_the_default_leaves_no_config(db: Database) -> None:
    await start(db, from_config=None)
    assert await db.configs.get("acme") == NEW
    await db.reindexes.cancel("acme")
    assert await db.configs.get("acme") is None


async def test_a_new_start_replaces_the_last_migration(db: Database) -> None:
    await start(db)
    await db.reindexes.switch("acme", timedelta(0))
    await start(db)
    row = await db.reindexes.get("acme")
    assert row is not None and (row.state, row.finished_at) == ("running", None)
    await db.reindexes.forget("acme")
    assert await db.reindexes.get("acme") is None
