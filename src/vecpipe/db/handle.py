"""The one gate every repository goes through to reach the engine.

It refuses use after the database was closed (a disposed `AsyncEngine` would otherwise
quietly open a new pool, possibly on another event loop), and it knows how each backend
wants a write transaction: on SQLite `BEGIN IMMEDIATE`, so that a writer takes the lock up
front and waits in `busy_timeout` instead of failing on a stale snapshot.

A full disk is StorageFull (HTTP 507), never a 500: a write is refused up front while the
disk under a SQLite file is below its free-space floor (diskspace.py), and a "database or disk
is full" (or PostgreSQL's disk_full) met anyway is turned into StorageFull.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from vecpipe.diskspace import FreeSpaceFloor, disk_full_as_storage_full
from vecpipe.errors import ClosedError

# Execution option read by the SQLite "begin" listener in engine.py.
SQLITE_BEGIN_OPTION = "vecpipe_sqlite_begin"

# PostgreSQL: deadlock detected, serialization failure. Outcome updates are idempotent
# (`WHERE outcome IS NULL`), so running them again after one of these is exact.
_RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})
_MAX_ATTEMPTS = 5

T = TypeVar("T")


class DatabaseHandle:
    def __init__(self, engine: AsyncEngine, floor: FreeSpaceFloor | None = None) -> None:
        self.engine = engine
        self.floor = floor
        self.dialect = engine.dialect.name
        self._closed = False
        if self.dialect == "sqlite":
            self._write_engine = engine.execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"})
        else:
            self._write_engine = engine

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        self._closed = True

    def _check(self) -> None:
        if self._closed:
            raise ClosedError("the database is closed")

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A transaction for reads only."""
        self._check()
        with disk_full_as_storage_full("database read"):
            async with self.engine.begin() as conn:
                yield conn

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A transaction that writes; commits on success, rolls back on error."""
        self._check()
        if self.floor is not None:
            await self.floor.check()
        with disk_full_as_storage_full("database write"):
            async with self._write_engine.begin() as conn:
                yield conn

    async def write_retrying(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run `work` in a write transaction, again on a deadlock. `work` must be idempotent."""
        for attempt in range(1, _MAX_ATTEMPTS + 1):
            try:
                async with self.write() as conn:
                    return await work(conn)
            except sa.exc.DBAPIError as exc:
                sqlstate = getattr(exc.orig, "sqlstate", None)
                if sqlstate not in _RETRYABLE_SQLSTATES or attempt == _MAX_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")


async def checkpoint(handle: DatabaseHandle) -> None:
    """SQLite: copy the WAL into the database and truncate it, so that pages holding deleted
    rows (secure_delete zeroes them in the database) leave the WAL file too. A no-op on
    PostgreSQL, whose files are the server's."""
    if handle.dialect != "sqlite":
        return
    handle._check()
    async with handle.engine.connect() as conn:
        auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await auto.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
