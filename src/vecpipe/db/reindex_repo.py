"""Per-tenant embedding-model reindexes (one row per tenant, the latest one).

Each state change that also changes which config is active is one transaction touching
both `reindexes` and `tenant_configs`, so the switch (and a cancel) is atomic:

    start   row running, stored config := target
    switch  running -> switched (target active; old points await deletion)
    finish  switched -> done (old points deleted)
    cancel  running -> cancelled, stored config := what it was before (none: the default)

Configs are stored exactly as `tenant_configs` holds them (gateway keys encrypted).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from vecpipe.db.handle import DatabaseHandle, as_utc, utcnow
from vecpipe.db.tables import reindexes, tenant_configs

ReindexState = Literal["running", "switched", "done", "cancelled"]


@dataclass(frozen=True)
class Reindex:
    tenant_id: str
    from_config: dict[str, Any] | None
    to_config: dict[str, Any]
    from_space: dict[str, Any]
    to_space: dict[str, Any]
    state: ReindexState
    total: int
    done: int
    error: str | None
    started_at: datetime
    finished_at: datetime | None
    delete_old_after: datetime | None


class ReindexRepo:
    def __init__(self, handle: DatabaseHandle) -> None:
        self._db = handle

    async def get(self, tenant_id: str) -> Reindex | None:
        query = sa.select(reindexes).where(reindexes.c.tenant_id == tenant_id)
        async with self._db.read() as conn:
            row = (await conn.execute(query)).one_or_none()
        return None if row is None else _migration(row)

    async def in_states(self, *states: ReindexState) -> list[Reindex]:
        query = sa.select(reindexes).order_by(reindexes.c.tenant_id)
        if states:
            query = query.where(reindexes.c.state.in_(states))
        async with self._db.read() as conn:
            return [_migration(row) for row in await conn.execute(query)]

    async def start(
        self,
        tenant_id: str,
        *,
        from_config: dict[str, Any] | None,
        to_config: dict[str, Any],
        from_space: dict[str, Any],
        to_space: dict[str, Any],
        total: int,
    ) -> None:
        """Replace the tenant's last migration with a running one; store the target config."""
        values = {
            "tenant_id": tenant_id,
            "from_config": from_config,
            "to_config": to_config,
            "from_space": from_space,
            "to_space": to_space,
            "state": "running",
            "total": total,
            "done": 0,
            "error": None,
            "started_at": utcnow(),
            "finished_at": None,
            "delete_old_after": None,
        }
        async with self._db.write() as conn:
            await conn.execute(sa.delete(reindexes).where(reindexes.c.tenant_id == tenant_id))
            await conn.execute(sa.insert(reindexes).values(**values))
            await self._put_config(conn, tenant_id, to_config)

    async def progress(self, tenant_id: str, done: int, error: str | None = None) -> None:
        stmt = (
            sa.update(reindexes)
            .where(reindexes.c.tenant_id == tenant_id, reindexes.c.state == "running")
            .values(done=done, error=error)
        )
        async with self._db.write() as conn:
            await conn.execute(stmt)

    async def switch(self, tenant_id: str, grace: timedelta) -> bool:
        """running -> switched, and the target config stored, in one transaction."""
        now = utcnow()
        async with self._db.write() as conn:
            row = await self._running(conn, tenant_id)
            if row is None:
                return False
            stmt = (
                sa.update(reindexes)
                .where(reindexes.c.tenant_id == tenant_id, reindexes.c.state == "running")
                .values(state="switched", finished_at=now, delete_old_after=now + grace)
            )
            await conn.execute(stmt)
            await self._put_config(conn, tenant_id, row.to_config)
        return True

    async def finish(self, tenant_id: str) -> None:
        stmt = (
            sa.update(reindexes)
            .where(reindexes.c.tenant_id == tenant_id, reindexes.c.state == "switched")
            .values(state="done")
        )
        async with self._db.write() as conn:
            await conn.execute(stmt)

    async def cancel(self, tenant_id: str) -> Reindex | None:
        """running -> cancelled and the previous config restored; None when none ran."""
        async with self._db.write() as conn:
            row = await self._running(conn, tenant_id)
            if row is None:
                return None
            stmt = (
                sa.update(reindexes)
                .where(reindexes.c.tenant_id == tenant_id)
                .values(state="cancelled", finished_at=utcnow())
            )
            await conn.execute(stmt)
            if row.from_config is None:
                where = tenant_configs.c.tenant_id == tenant_id
                await conn.execute(sa.delete(tenant_configs).where(where))
            else:
                await self._put_config(conn, tenant_id, row.from_config)
        return _migration(row)

    async def forget(self, tenant_id: str) -> None:
        """Drop the tenant's row (its config was replaced without a migration)."""
        async with self._db.write() as conn:
            await conn.execute(sa.delete(reindexes).where(reindexes.c.tenant_id == tenant_id))

    async def stored_configs(self) -> list[dict[str, Any]]:
        """Every config a row keeps, as stored (gateway keys encrypted)."""
        return [
            config
            for row in await self.in_states()
            for config in (row.from_config, row.to_config)
            if config is not None
        ]

    async def reseal_configs(self, reseal: Callable[[dict[str, Any]], dict[str, Any]]) -> int:
        """Rewrite the configs every row keeps with `reseal`, in one transaction.

        Rows keep both configs of a migration (to resume, to cancel back), gateway keys
        encrypted, so a secret rotation must reach them too. Returns the rows rewritten.
        """
        rewritten = 0
        async with self._db.write() as conn:
            for row in (await conn.execute(sa.select(reindexes))).all():
                before = (row.from_config, row.to_config)
                after = (
                    None if row.from_config is None else reseal(dict(row.from_config)),
                    reseal(dict(row.to_config)),
                )
                if after == before:
                    continue
                stmt = (
                    sa.update(reindexes)
                    .where(reindexes.c.tenant_id == row.tenant_id)
                    .values(from_config=after[0], to_config=after[1])
                )
                await conn.execute(stmt)
                rewritten += 1
        return rewritten

    async def _running(self, conn: AsyncConnection, tenant_id: str) -> Any:
        query = sa.select(reindexes).where(
            reindexes.c.tenant_id == tenant_id, reindexes.c.state == "running"
        )
        return (await conn.execute(query)).one_or_none()

    async def _put_config(
        self, conn: AsyncConnection, tenant_id: str, config: dict[str, Any]
    ) -> None:
        insert = postgresql.insert if self._db.dialect == "postgresql" else sqlite.insert
        stmt = insert(tenant_configs).values(
            tenant_id=tenant_id, config=config, updated_at=utcnow()
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[tenant_configs.c.tenant_id],
            set_={"config": stmt.excluded.config, "updated_at": stmt.excluded.updated_at},
        )
        await conn.execute(stmt)


def _migration(row: Any) -> Reindex:
    return Reindex(
        tenant_id=row.tenant_id,
        from_config=dict(row.from_config) if row.from_config is not None else None,
        to_config=dict(row.to_config),
        from_space=dict(row.from_space),
        to_space=dict(row.to_space),
        state=row.state,
        total=row.total,
        done=row.done,
        error=row.error,
        started_at=as_utc(row.started_at),
        finished_at=as_utc(row.finished_at) if row.finished_at else None,
        delete_old_after=as_utc(row.delete_old_after) if row.delete_old_after else None,
    )
