"""Jobs: a batch of record operations processed through the queue, counted exactly.

Each record of a job has one row in `job_items`. A worker reports outcomes with
`record_outcomes`, which sets an outcome only where none is set yet
(`UPDATE ... WHERE outcome IS NULL`): a redelivered message, or two workers racing on the
same record, count once. The first outcome recorded is final, except that a failure is
replaced by a later success (a dead letter replayed after its cause was fixed).
"""

from __future__ import annotations

import builtins
import functools
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, TypeVar

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncConnection
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

from vecpipe.db.handle import DatabaseHandle, as_utc, utcnow
from vecpipe.db.tables import OPS, OUTCOMES, job_items, jobs, sync_jobs
from vecpipe.errors import ValidationError

MAX_FAILURES_REPORTED = 100
MAX_ERROR_LENGTH = 2000
MAX_RECORD_ID_LENGTH = 512
INSERT_CHUNK = 1000  # rows per executemany of job items
UPDATE_CHUNK = 500  # records per outcome UPDATE: a worker batch in one, binds far under limits

JobState = Literal["queued", "running", "completed"]
Outcome = Literal["done", "unchanged", "not_found", "failed"]
T = TypeVar("T")


class JobFailure(TypedDict):
    """A failed record of a job (a plain dict, as it goes into an API response)."""

    id: str
    error: str | None


class JobStatus(BaseModel):
    job_id: str
    tenant_id: str
    status: JobState
    total: int
    done: int
    unchanged: int
    failed: int
    created_at: datetime
    failures: list[JobFailure]
    not_found: int = 0  # deletes of ids that were not stored
    finished_at: datetime | None = None  # when the last outcome was recorded


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _state(total: int, counted: int) -> JobState:
    if counted >= total:
        return "completed"
    return "running" if counted else "queued"


def _check_items(items: Sequence[tuple[str, str]]) -> None:
    seen: set[str] = set()
    for record_id, op in items:
        if op not in OPS:
            raise ValidationError(f"unknown job operation {op!r}")
        if not record_id or len(record_id) > MAX_RECORD_ID_LENGTH:
            raise ValidationError("job record id empty or too long")
        if record_id in seen:
            raise ValidationError(f"record {record_id!r} appears twice in one job")
        seen.add(record_id)


def _outcome_update(
    job_id: str, chunk: Sequence[tuple[str, str, str | None]], tenant_id: str | None
) -> sa.Update:
    """One UPDATE for a chunk of (record_id, outcome, error), whatever the mix of outcomes;
    with `tenant_id`, it changes nothing unless the job is that tenant's."""
    col = job_items.c.record_id
    by_kind: dict[str, list[str]] = {kind: [] for kind in OUTCOMES}
    errors: dict[str, str | None] = {}
    for record_id, kind, error in chunk:
        by_kind[kind].append(record_id)
        if kind == "failed":
            errors[record_id] = error[:MAX_ERROR_LENGTH] if error else None
    present = [kind for kind in OUTCOMES if by_kind[kind]]
    outcome: Any
    if len(present) == 1:
        outcome = present[0]
    else:
        whens = [(col.in_(by_kind[kind]), kind) for kind in present[:-1]]
        outcome = sa.case(*whens, else_=present[-1])
    error_text: Any = sa.case(errors, value=col, else_=None) if errors else None
    # a record that failed, was dead-lettered and then replayed successfully counts as done
    if errors:
        succeeded = [record_id for record_id, kind, _ in chunk if kind != "failed"]
        recovered = sa.and_(job_items.c.outcome == "failed", col.in_(succeeded))
    else:
        recovered = job_items.c.outcome == "failed"
    conditions = [
        job_items.c.job_id == job_id,
        sa.or_(job_items.c.outcome.is_(None), recovered),
        col.in_([record_id for record_id, _, _ in chunk]),
    ]
    if tenant_id is not None:  # checked in the statement: no read transaction of its own
        owned = sa.select(jobs.c.id).where(jobs.c.id == job_id, jobs.c.tenant_id == tenant_id)
        conditions.append(owned.exists())
    return sa.update(job_items).where(*conditions).values(outcome=outcome, error=error_text)


class JobRepo:
    def __init__(self, handle: DatabaseHandle) -> None:
        self._db = handle

    @property
    def handle(self) -> DatabaseHandle:
        return self._db

    async def create(self, tenant_id: str, items: Sequence[tuple[str, str]]) -> str:
        """Store a job and its (record_id, op) items in one transaction; returns the job id.

        Record ids must be unique within a job (each is counted once), ops 'upsert'|'delete'.
        """
        _check_items(items)
        job_id = uuid.uuid4().hex
        rows = [{"job_id": job_id, "record_id": rid, "op": op} for rid, op in items]
        job = {"id": job_id, "tenant_id": tenant_id, "created_at": utcnow(), "total": len(rows)}
        async with self._db.write() as conn:
            await conn.execute(sa.insert(jobs), [job])
            for chunk in _chunks(rows, INSERT_CHUNK):
                await conn.execute(sa.insert(job_items), list(chunk))
        return job_id

    async def record_outcomes(
        self,
        job_id: str,
        outcomes: Mapping[str, tuple[str, str | None]],
        *,
        tenant_id: str | None = None,
    ) -> int:
        """Set each record's outcome unless it already has one; returns how many were set.

        `outcomes` maps record_id -> (an outcome of OUTCOMES, error or None). Records not in
        the job are ignored. With `tenant_id`, a job of another tenant is left alone.
        """
        entries = []
        for record_id, (kind, error) in outcomes.items():
            if kind not in OUTCOMES:
                raise ValidationError(f"unknown job outcome {kind!r}")
            entries.append((record_id, kind, error))
        if not entries:
            return 0
        # Sorted chunks, each its own short transaction: row locks are taken in one order
        # and held for one statement, so concurrent workers rarely deadlock, and a retry
        # after one that does is exact (outcomes already set are skipped).
        entries.sort()
        newly_set = 0
        for chunk in _chunks(entries, UPDATE_CHUNK):
            stmt = _outcome_update(job_id, chunk, tenant_id)
            newly_set += await self._db.write_retrying(functools.partial(_rowcount, stmt=stmt))
        if newly_set:
            await self._db.write_retrying(functools.partial(_rowcount, stmt=_finish(job_id)))
        return newly_set

    async def get(self, tenant_id: str, job_id: str) -> JobStatus | None:
        """The job's progress; None when it does not exist or belongs to another tenant."""
        query = sa.select(jobs).where(jobs.c.id == job_id, jobs.c.tenant_id == tenant_id)
        async with self._db.read() as conn:
            found = await self._statuses(conn, query)
        return found[0] if found else None

    async def list(self, tenant_id: str | None, limit: int = 50) -> builtins.list[JobStatus]:
        """Newest jobs first, of one tenant or (tenant_id None) of all."""
        query = sa.select(jobs).order_by(jobs.c.created_at.desc(), jobs.c.id).limit(limit)
        if tenant_id is not None:
            query = query.where(jobs.c.tenant_id == tenant_id)
        async with self._db.read() as conn:
            return await self._statuses(conn, query)

    async def tenant_of(self, job_id: str) -> str | None:
        """Whose job this is (job ids are unique across tenants); None when there is none."""
        query = sa.select(jobs.c.tenant_id).where(jobs.c.id == job_id)
        async with self._db.read() as conn:
            found: str | None = (await conn.execute(query)).scalar_one_or_none()
        return found

    async def tenants(self) -> builtins.list[str]:
        """Every tenant that has submitted a job."""
        async with self._db.read() as conn:
            return list((await conn.execute(sa.select(jobs.c.tenant_id).distinct())).scalars())

    async def delete_tenant(self, tenant_id: str) -> int:
        """Delete every job of the tenant with its items (offboarding); how many jobs."""
        return await delete_tenant_jobs(self._db, tenant_id)

    async def counts_by_state(self) -> dict[str, int]:
        """How many jobs are queued, running and completed; only the items of unfinished
        jobs are scanned."""
        unfinished = (
            sa.select(job_items.c.job_id).where(job_items.c.outcome.is_(None)).distinct().subquery()
        )
        progress = (
            sa.select(job_items.c.job_id, sa.func.count(job_items.c.outcome))
            .where(job_items.c.job_id.in_(sa.select(unfinished.c.job_id)))
            .group_by(job_items.c.job_id)
        )
        async with self._db.read() as conn:
            total = (await conn.execute(sa.select(sa.func.count()).select_from(jobs))).scalar_one()
            counted = [row[1] for row in await conn.execute(progress)]
        running = sum(1 for n in counted if n)
        queued = len(counted) - running
        return {"queued": queued, "running": running, "completed": int(total) - len(counted)}

    async def _statuses(
        self, conn: AsyncConnection, query: sa.Select[Any]
    ) -> builtins.list[JobStatus]:
        job_rows = (await conn.execute(query)).all()
        if not job_rows:
            return []
        ids = [row.id for row in job_rows]
        counts = await _counts(conn, ids)
        failures = await _failures(conn, ids)
        statuses = []
        for row in job_rows:
            by_kind = counts.get(row.id, {})
            done, unchanged, not_found, failed = (by_kind.get(kind, 0) for kind in OUTCOMES)
            statuses.append(
                JobStatus(
                    job_id=row.id,
                    tenant_id=row.tenant_id,
                    status=_state(row.total, done + unchanged + not_found + failed),
                    total=row.total,
                    done=done,
                    unchanged=unchanged,
                    not_found=not_found,
                    failed=failed,
                    created_at=as_utc(row.created_at),
                    finished_at=as_utc(row.finished_at) if row.finished_at else None,
                    failures=failures.get(row.id, []),
                )
            )
        return statuses


def _finish(job_id: str) -> sa.Update:
    """Stamp the job finished once no item lacks an outcome (a no-op before, and after)."""
    open_items = sa.select(job_items.c.record_id).where(
        job_items.c.job_id == job_id, job_items.c.outcome.is_(None)
    )
    return (
        sa.update(jobs)
        .where(jobs.c.id == job_id, jobs.c.finished_at.is_(None), ~open_items.exists())
        .values(finished_at=utcnow())
    )


async def _rowcount(conn: AsyncConnection, stmt: sa.Update) -> int:
    return (await conn.execute(stmt)).rowcount


async def _counts(conn: AsyncConnection, job_ids: Iterable[str]) -> dict[str, dict[str, int]]:
    query = (
        sa.select(job_items.c.job_id, job_items.c.outcome, sa.func.count())
        .where(job_items.c.job_id.in_(list(job_ids)), job_items.c.outcome.is_not(None))
        .group_by(job_items.c.job_id, job_items.c.outcome)
    )
    counts: dict[str, dict[str, int]] = {}
    for job_id, outcome, count in await conn.execute(query):
        counts.setdefault(job_id, {})[outcome] = count
    return counts


async def _failures(conn: AsyncConnection, job_ids: Iterable[str]) -> dict[str, list[JobFailure]]:
    """Up to MAX_FAILURES_REPORTED failures per job, by record id."""
    rank = (
        sa.func.row_number()
        .over(partition_by=job_items.c.job_id, order_by=job_items.c.record_id)
        .label("rank")
    )
    ranked = (
        sa.select(job_items.c.job_id, job_items.c.record_id, job_items.c.error, rank)
        .where(job_items.c.job_id.in_(list(job_ids)), job_items.c.outcome == "failed")
        .subquery()
    )
    query = (
        sa.select(ranked.c.job_id, ranked.c.record_id, ranked.c.error)
        .where(ranked.c.rank <= MAX_FAILURES_REPORTED)
        .order_by(ranked.c.job_id, ranked.c.record_id)
    )
    failures: dict[str, list[JobFailure]] = {}
    for job_id, record_id, error in await conn.execute(query):
        failures.setdefault(job_id, []).append({"id": record_id, "error": error})
    return failures


async def delete_tenant_jobs(handle: DatabaseHandle, tenant_id: str) -> int:
    """Delete every job of the tenant with its items (offboarding); how many jobs."""
    async with handle.write() as conn:
        owned = sa.select(jobs.c.id).where(jobs.c.tenant_id == tenant_id)
        await conn.execute(sa.delete(sync_jobs).where(sync_jobs.c.tenant_id == tenant_id))
        await conn.execute(sa.delete(job_items).where(job_items.c.job_id.in_(owned)))
        return (await conn.execute(sa.delete(jobs).where(jobs.c.tenant_id == tenant_id))).rowcount
