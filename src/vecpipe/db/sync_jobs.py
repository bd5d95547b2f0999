"""Sync jobs (core/sync_job.py): a job of the jobs table, with the drift report of its sync
and whether every message of it was published.

The job, its items and its sync row are created in one transaction, in state `publishing`;
the sync turns it `published` once the last message is in the queue. `updated_at` moves
with each published batch, so a job whose publisher died (a crash before the last batch) is
told from one still publishing by its age (core/sync_job.py: STALE_SECONDS).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from vecpipe.db.handle import DatabaseHandle, as_utc, utcnow
from vecpipe.db.jobs import INSERT_CHUNK, _check_items, _chunks
from vecpipe.db.tables import job_items, jobs, sync_jobs


@dataclass(frozen=True)
class SyncJobRow:
    job_id: str
    tenant_id: str
    state: str  # publishing | published
    report: dict[str, Any]
    updated_at: datetime


class SyncJobRepo:
    def __init__(self, handle: DatabaseHandle) -> None:
        self._db = handle

    async def create(
        self, tenant_id: str, items: Sequence[tuple[str, str]], report: dict[str, Any]
    ) -> str:
        """The job, its (record_id, op) items and its sync row, in one transaction."""
        _check_items(items)
        job_id = uuid.uuid4().hex
        now = utcnow()
        rows = [{"job_id": job_id, "record_id": rid, "op": op} for rid, op in items]
        job = {"id": job_id, "tenant_id": tenant_id, "created_at": now, "total": len(rows)}
        sync = {
            "job_id": job_id,
            "tenant_id": tenant_id,
            "state": "publishing",
            "report": report,
            "updated_at": now,
        }
        async with self._db.write() as conn:
            await conn.execute(sa.insert(jobs), [job])
            for chunk in _chunks(rows, INSERT_CHUNK):
                await conn.execute(sa.insert(job_items), list(chunk))
            await conn.execute(sa.insert(sync_jobs), [sync])
        return job_id

    async def touch(self, job_id: str, *, published: bool = False) -> None:
        """Publishing goes on (a heartbeat), or (`published`) is over."""
        values: dict[str, Any] = {"updated_at": utcnow()}
        if published:
            values["state"] = "published"
        async with self._db.write() as conn:
            await conn.execute(sa.update(sync_jobs).where(sync_jobs.c.job_id == job_id), [values])

    async def get(self, job_id: str) -> SyncJobRow | None:
        async with self._db.read() as conn:
            row = (
                await conn.execute(sa.select(sync_jobs).where(sync_jobs.c.job_id == job_id))
            ).first()
        if row is None:
            return None
        return SyncJobRow(
            job_id=row.job_id,
            tenant_id=row.tenant_id,
            state=row.state,
            report=row.report,
            updated_at=as_utc(row.updated_at),
        )
