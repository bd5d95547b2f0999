"""Tenant tombstones: which tenants are being (or were) offboarded, and what a late message
of theirs may still do.

A message queued before its tenant was offboarded must never re-create data. Offboarding
deletes the tenant's jobs, so the rule is: for a tombstoned tenant, a message is dropped
(and counted) unless its job exists, i.e. was submitted after the tenant was deleted; while
the deletion runs, every message of the tenant is dropped. A tenant may come back (a new
config, new records): the tombstone only ever judges messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from vecpipe.db.handle import DatabaseHandle, as_utc, utcnow
from vecpipe.db.tables import jobs, tenant_tombstones


@dataclass(frozen=True)
class Tombstone:
    tenant_id: str
    state: str  # deleting | deleted
    started_at: datetime
    finished_at: datetime | None
    removed: dict[str, Any] | None
    dropped: int


class TombstoneRepo:
    def __init__(self, handle: DatabaseHandle) -> None:
        self._db = handle

    async def begin(self, tenant_id: str) -> None:
        """Mark the tenant as being deleted (again, after a crash or a repeat)."""
        async with self._db.write() as conn:
            updated = await conn.execute(
                sa.update(tenant_tombstones)
                .where(tenant_tombstones.c.tenant_id == tenant_id)
                .values(state="deleting", finished_at=None)
            )
            if not updated.rowcount:
                row = {
                    "tenant_id": tenant_id,
                    "state": "deleting",
                    "started_at": utcnow(),
                    "dropped": 0,
                }
                await conn.execute(sa.insert(tenant_tombstones), [row])

    async def finish(self, tenant_id: str, removed: dict[str, Any]) -> None:
        async with self._db.write() as conn:
            await conn.execute(
                sa.update(tenant_tombstones)
                .where(tenant_tombstones.c.tenant_id == tenant_id)
                .values(state="deleted", finished_at=utcnow(), removed=removed)
            )

    async def get(self, tenant_id: str) -> Tombstone | None:
        async with self._db.read() as conn:
            row = (
                await conn.execute(
                    sa.select(tenant_tombstones).where(tenant_tombstones.c.tenant_id == tenant_id)
                )
            ).first()
        if row is None:
            return None
        return Tombstone(
            tenant_id=row.tenant_id,
            state=row.state,
            started_at=as_utc(row.started_at),
            finished_at=as_utc(row.finished_at) if row.finished_at else None,
            removed=row.removed,
            dropped=row.dropped,
        )

    async def admit(self, messages: Sequence[tuple[str, str | None]]) -> list[bool]:
        """For each (tenant, job id) of a batch: may it be processed? One query for a batch
        of live tenants; a job lookup only for tombstoned ones."""
        tenants = {tenant for tenant, _ in messages}
        if not tenants:
            return []
        async with self._db.read() as conn:
            rows = await conn.execute(
                sa.select(tenant_tombstones.c.tenant_id, tenant_tombstones.c.state).where(
                    tenant_tombstones.c.tenant_id.in_(tenants)
                )
            )
            states = {row.tenant_id: row.state for row in rows}
            if not states:
                return [True] * len(messages)
            job_ids = {job for tenant, job in messages if tenant in states and job}
            live_jobs: set[tuple[str, str]] = set()
            if job_ids:
                found = await conn.execute(
                    sa.select(jobs.c.tenant_id, jobs.c.id).where(jobs.c.id.in_(job_ids))
                )
                live_jobs = {(row.tenant_id, row.id) for row in found}
        return [
            tenant not in states
            or (states[tenant] == "deleted" and job is not None and (tenant, job) in live_jobs)
            for tenant, job in messages
        ]

    async def count_dropped(self, tenant_id: str, n: int) -> None:
        if not n:
            return
        async with self._db.write() as conn:
            await conn.execute(
                sa.update(tenant_tombstones)
                .where(tenant_tombstones.c.tenant_id == tenant_id)
                .values(dropped=tenant_tombstones.c.dropped + n)
            )
