"""Tenant AI configs as plain JSON dicts.

Validation, secret encryption and provider construction belong to another layer; this one
stores and returns exactly the dict it was given.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from vecpipe.db.handle import DatabaseHandle, as_utc, utcnow
from vecpipe.db.tables import tenant_configs


@dataclass(frozen=True)
class ConfigEntry:
    """A stored config and when it was last written (for cache invalidation)."""

    tenant_id: str
    config: dict[str, Any]
    updated_at: datetime


class ConfigRepo:
    def __init__(self, handle: DatabaseHandle) -> None:
        self._db = handle

    async def get(self, tenant_id: str) -> dict[str, Any] | None:
        entry = await self.get_entry(tenant_id)
        return None if entry is None else entry.config

    async def get_entry(self, tenant_id: str) -> ConfigEntry | None:
        query = sa.select(tenant_configs.c.config, tenant_configs.c.updated_at).where(
            tenant_configs.c.tenant_id == tenant_id
        )
        async with self._db.read() as conn:
            row = (await conn.execute(query)).one_or_none()
        if row is None:
            return None
        return ConfigEntry(tenant_id, dict(row.config), as_utc(row.updated_at))

    async def put(self, tenant_id: str, config: dict[str, Any]) -> None:
        """Insert or replace the tenant's config."""
        values = {"tenant_id": tenant_id, "config": config, "updated_at": utcnow()}
        insert = postgresql.insert if self._db.dialect == "postgresql" else sqlite.insert
        stmt = insert(tenant_configs).values(**values)
        stmt = stmt.on_conflict_do_update(
            index_elements=[tenant_configs.c.tenant_id],
            set_={"config": stmt.excluded.config, "updated_at": stmt.excluded.updated_at},
        )
        async with self._db.write() as conn:
            await conn.execute(stmt)

    async def delete(self, tenant_id: str) -> bool:
        """Remove the tenant's config; False when there was none."""
        stmt = sa.delete(tenant_configs).where(tenant_configs.c.tenant_id == tenant_id)
        async with self._db.write() as conn:
            result = await conn.execute(stmt)
        return result.rowcount > 0

    async def list_tenants(self) -> list[str]:
        query = sa.select(tenant_configs.c.tenant_id).order_by(tenant_configs.c.tenant_id)
        async with self._db.read() as conn:
            return list((await conn.execute(query)).scalars())
