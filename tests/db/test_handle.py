"""DatabaseHandle: closed gate, the retry of idempotent writes after a deadlock, a full disk."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.db.conftest import sqlite_url
from vecpipe.db import Database, open_database
from vecpipe.db.handle import DatabaseHandle
from vecpipe.diskspace import MIB
from vecpipe.errors import StorageFull


class _Orig(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def _db_error(sqlstate: str) -> sa.exc.DBAPIError:
    return sa.exc.DBAPIError("UPDATE ...", {}, _Orig(sqlstate))


async def test_deadlock_is_retried_other_errors_are_not(db: Database) -> None:
    handle = DatabaseHandle(db.engine)
    calls: list[int] = []

    async def deadlocks_twice(conn: AsyncConnection) -> int:
        calls.append(1)
        if len(calls) < 3:
            raise _db_error("40P01")
        return (await conn.execute(sa.text("SELECT 7"))).scalar_one()

    assert await handle.write_retrying(deadlocks_twice) == 7
    assert len(calls) == 3

    async def broken(conn: AsyncConnection) -> int:
        calls.append(1)
        raise _db_error("23505")

    calls.clear()
    with pytest.raises(sa.exc.DBAPIError):
        await handle.write_retrying(broken)
    assert len(calls) == 1


async def test_below_the_floor_writes_are_refused_reads_go_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    free = {"bytes": 100 * MIB}
    monkeypatch.setattr("vecpipe.diskspace.free_bytes", lambda path: free["bytes"])
    async with open_database(sqlite_url(tmp_path), min_free_bytes=MIB) as db:
        await db.configs.put("acme", {"primary": {"kind": "local", "model": "m"}})
        free["bytes"] = MIB - 1
        with pytest.raises(StorageFull, match=r"database disk has 1\.0 MiB free, below the floor"):
            await db.configs.put("other", {"primary": {"kind": "local", "model": "m"}})
        with pytest.raises(StorageFull):
            await db.jobs.create("acme", [("r1", "upsert")])
        assert await db.configs.get("acme") is not None  # reads go on
        free["bytes"] = MIB
        await db.configs.put("other", {"primary": {"kind": "local", "model": "m"}})


async def test_only_a_local_sqlite_file_has_a_floor(tmp_path: Path) -> None:
    async with open_database(sqlite_url(tmp_path), min_free_bytes=MIB) as db:
        assert db._handle.floor is not None
        assert db._handle.floor.path == tmp_path / "data"
    async with open_database(sqlite_url(tmp_path)) as db:  # 0: no floor
        assert db._handle.floor is None
    async with open_database("sqlite+aiosqlite:///:memory:", min_free_bytes=MIB) as db:
        assert db._handle.floor is None


async def test_database_or_disk_is_full_is_storage_full(tmp_path: Path) -> None:
    """SQLite's own SQLITE_FULL (here from a page limit; a full disk says the same), on a
    write and on a read; and PostgreSQL's disk_full by its SQLSTATE."""
    async with open_database(sqlite_url(tmp_path)) as db:
        handle = DatabaseHandle(db.engine)
        with pytest.raises(StorageFull, match="database write: the disk is full") as full:
            async with handle.write() as conn:
                await conn.execute(sa.text("PRAGMA max_page_count = 1"))
                await conn.execute(sa.text("CREATE TABLE big (x BLOB)"))
                await conn.execute(sa.text("INSERT INTO big VALUES (zeroblob(100000))"))
        assert isinstance(full.value.__cause__, sa.exc.OperationalError)
        with pytest.raises(StorageFull, match="database read"):
            async with handle.read():
                raise _db_error("53100")
        with pytest.raises(sa.exc.DBAPIError):  # anything else passes as it was
            async with handle.write():
                raise _db_error("23505")
