"""open_database: migrations (idempotent, concurrent, matching the tables), SQLite pragmas,
closing, and no connection left for the garbage collector."""

from __future__ import annotations

import asyncio
import gc
import warnings
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from tests.db.conftest import sqlite_url
from vecpipe.db import Database, open_database
from vecpipe.db.engine import async_url, run_migrations
from vecpipe.db.tables import metadata
from vecpipe.errors import ClosedError, ConfigError


async def _scalar(db: Database, sql: str) -> object:
    async with db.engine.connect() as conn:
        return (await conn.execute(sa.text(sql))).scalar_one()


async def test_migrations_reach_head_and_rerun_as_no_op(database_url: str) -> None:
    async with open_database(database_url) as db:
        await db.configs.put("acme", {"primary": {"kind": "local"}})
        await run_migrations(db.engine)  # again, explicitly: nothing to do
    async with open_database(database_url) as db:
        assert await db.configs.get("acme") == {"primary": {"kind": "local"}}
        assert await _scalar(db, "SELECT version_num FROM alembic_version") == "0005"
        assert await _scalar(db, "SELECT count(*) FROM alembic_version") == 1


async def test_migrated_schema_matches_the_tables_module(db: Database) -> None:
    def diff(conn: sa.Connection) -> list[object]:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))

    async with db.engine.connect() as conn:
        assert await conn.run_sync(diff) == []


async def test_processes_starting_together_migrate_once(database_url: str) -> None:
    async with AsyncExitStack() as stack:
        opened = await asyncio.gather(
            *(stack.enter_async_context(open_database(database_url)) for _ in range(3))
        )
        await opened[0].configs.put("acme", {"k": 1})
        assert [await d.configs.get("acme") for d in opened] == [{"k": 1}] * 3


async def test_ping_and_closed_database_refuses_use(database_url: str) -> None:
    async with open_database(database_url) as db:
        await db.ping()
        assert not db.closed
    assert db.closed
    with pytest.raises(ClosedError):
        await db.configs.get("acme")
    with pytest.raises(ClosedError):
        await db.jobs.create("acme", [("r1", "upsert")])
    with pytest.raises(ClosedError):
        await db.ping()


async def test_sqlite_creates_parent_dir_and_sets_pragmas(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a' / 'b' / 'v.db'}"  # plain sqlite:// gets aiosqlite
    async with open_database(url) as db:
        assert (tmp_path / "a" / "b" / "v.db").exists()
        assert db.engine.url.drivername == "sqlite+aiosqlite"
        assert await _scalar(db, "PRAGMA journal_mode") == "wal"
        assert await _scalar(db, "PRAGMA foreign_keys") == 1
        assert await _scalar(db, "PRAGMA busy_timeout") == 15000


async def test_foreign_keys_are_enforced(db: Database) -> None:
    row = {"job_id": "missing", "record_id": "r1", "op": "upsert"}
    with pytest.raises(sa.exc.IntegrityError):
        async with db.engine.begin() as conn:
            await conn.execute(
                sa.text(
                    "INSERT INTO job_items (job_id, record_id, op) "
                    "VALUES (:job_id, :record_id, :op)"
                ),
                row,
            )


def test_url_normalisation() -> None:
    assert async_url("postgresql://u@h/d").drivername == "postgresql+asyncpg"
    assert async_url("postgres://u@h/d").drivername == "postgresql+asyncpg"
    assert async_url("sqlite:///x.db").drivername == "sqlite+aiosqlite"
    with pytest.raises(ConfigError, match="unsupported"):
        async_url("mysql://u:secret@h/d")
    with pytest.raises(ConfigError):
        async_url("not a url")


async def test_unreachable_database_is_a_config_error_without_password() -> None:
    url = "postgresql+asyncpg://postgres:hunter2@127.0.0.1:1/nothing"
    with pytest.raises(ConfigError) as info:
        async with open_database(url):
            pass
    assert "hunter2" not in str(info.value)


def test_each_loop_closes_its_own_connections(tmp_path: Path) -> None:
    """Two asyncio.run() calls in a row, as a sync caller would: no ResourceWarning."""

    async def use() -> None:
        async with open_database(sqlite_url(tmp_path)) as db:
            job_id = await db.jobs.create("acme", [("r1", "upsert")])
            await db.jobs.record_outcomes(job_id, {"r1": ("done", None)})

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        asyncio.run(use())
        asyncio.run(use())
        gc.collect()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []
