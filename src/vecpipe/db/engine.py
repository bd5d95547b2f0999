"""Opening the database: engine, SQLite pragmas, migrations to head, and closing.

`open_database(url)` is the only entry point the rest of vecpipe needs::

    async with open_database(settings.resolved_database_url) as db:
        await db.configs.put("acme", {...})

The engine is created, migrated and disposed inside the caller's event loop, so every
aiosqlite/asyncpg connection is closed on the loop that opened it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from vecpipe.db.configs import ConfigRepo
from vecpipe.db.handle import SQLITE_BEGIN_OPTION, DatabaseHandle, checkpoint
from vecpipe.db.jobs import JobRepo
from vecpipe.db.reindex_repo import ReindexRepo
from vecpipe.db.tokens import TokenRepo
from vecpipe.db.tombstones import TombstoneRepo
from vecpipe.diskspace import FreeSpaceFloor
from vecpipe.errors import ConfigError

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 15_000
# pg_advisory_xact_lock key that serialises migrations of processes starting together.
_MIGRATION_LOCK_KEY = 0x7665_6370_6970_65  # "vecpipe"

_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}
_BEGIN_MODES = frozenset({"DEFERRED", "IMMEDIATE", "EXCLUSIVE"})


@dataclass(frozen=True)
class Database:
    """The open database: one repository per table group, and the engine beneath them."""

    engine: AsyncEngine
    configs: ConfigRepo
    jobs: JobRepo
    tokens: TokenRepo
    _handle: DatabaseHandle
    reindexes: ReindexRepo
    tombstones: TombstoneRepo

    @property
    def url(self) -> str:
        """The URL without its password, for logs."""
        return self.engine.url.render_as_string(hide_password=True)

    @property
    def closed(self) -> bool:
        return self._handle.closed

    async def ping(self) -> None:
        """Round-trip to the database (for readiness checks); raises when it is down."""
        async with self._handle.read() as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def checkpoint(self) -> None:
        """SQLite: move the WAL into the file and truncate it (after deleting a tenant)."""
        await checkpoint(self._handle)


def async_url(url: str) -> URL:
    """Parse a database URL, picking the async driver for sqlite:// and postgresql://."""
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError as exc:
        raise ConfigError("VECPIPE_DATABASE_URL is not a database URL") from exc
    driver = _ASYNC_DRIVERS.get(parsed.drivername)
    if driver is None:
        raise ConfigError(
            f"unsupported database driver {parsed.drivername!r}: "
            "use sqlite+aiosqlite:// or postgresql+asyncpg://"
        )
    return parsed.set(drivername=driver)


def create_engine(url: str) -> AsyncEngine:
    """An AsyncEngine for the URL; on SQLite with WAL, busy_timeout and foreign keys."""
    parsed = async_url(url)
    if parsed.get_backend_name() == "postgresql":
        return create_async_engine(
            parsed,
            pool_pre_ping=True,
            connect_args={"server_settings": {"application_name": "vecpipe"}},
        )
    database = parsed.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(parsed)
    sa.event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
    sa.event.listen(engine.sync_engine, "begin", _sqlite_on_begin)
    return engine


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # SQLAlchemy, not the sqlite3 module, decides when a transaction begins (see
    # _sqlite_on_begin): DDL becomes transactional and writers can BEGIN IMMEDIATE.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        # deleted rows are overwritten, not left in free pages: an offboarded tenant's token
        # hashes and configs must not stay readable in the file (core/offboard.py)
        cursor.execute("PRAGMA secure_delete = ON")
    finally:
        cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    mode = conn.get_execution_options().get(SQLITE_BEGIN_OPTION, "DEFERRED")
    if mode not in _BEGIN_MODES:
        raise ValueError(f"bad SQLite BEGIN mode {mode!r}")
    conn.exec_driver_sql(f"BEGIN {mode}")


def _sqlite_floor(engine: AsyncEngine, min_free_bytes: int) -> FreeSpaceFloor | None:
    database = engine.url.database or ""
    if engine.dialect.name != "sqlite" or database in ("", ":memory:"):
        return None
    if database.startswith("file:") or not min_free_bytes:
        return None
    return FreeSpaceFloor(Path(database).expanduser().parent, min_free_bytes, label="database")


def _alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def _upgrade(connection: Connection) -> None:
    command.upgrade(_alembic_config(connection), "head")


async def run_migrations(engine: AsyncEngine) -> None:
    """Upgrade to head in one transaction, one process at a time.

    PostgreSQL: an advisory lock held to commit; SQLite: BEGIN IMMEDIATE. A process that
    waited finds the schema at head and does nothing.
    """
    options = {SQLITE_BEGIN_OPTION: "IMMEDIATE"} if engine.dialect.name == "sqlite" else {}
    async with engine.execution_options(**options).begin() as conn:
        if conn.dialect.name == "postgresql":
            lock = sa.text("SELECT pg_advisory_xact_lock(:key)")
            await conn.execute(lock, {"key": _MIGRATION_LOCK_KEY})
        await conn.run_sync(_upgrade)


@asynccontextmanager
async def open_database(url: str, *, min_free_bytes: int = 0) -> AsyncIterator[Database]:
    """Create the engine, migrate to head, yield the repositories; dispose on exit.

    On a SQLite file, writes are refused with StorageFull while its disk has less than
    `min_free_bytes` free (diskspace.py); a PostgreSQL server's disk is not ours to measure.
    """
    engine = create_engine(url)
    handle = DatabaseHandle(engine, floor=_sqlite_floor(engine, min_free_bytes))
    try:
        try:
            await run_migrations(engine)
        except (OSError, sa.exc.DBAPIError) as exc:
            shown = engine.url.render_as_string(hide_password=True)
            reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            raise ConfigError(f"cannot open database {shown}: {reason}") from exc
        log.debug("database ready: %s", engine.url.render_as_string(hide_password=True))
        yield Database(
            engine,
            ConfigRepo(handle),
            JobRepo(handle),
            TokenRepo(handle),
            handle,
            ReindexRepo(handle),
            TombstoneRepo(handle),
        )
    finally:
        handle.close()
        await engine.dispose()
