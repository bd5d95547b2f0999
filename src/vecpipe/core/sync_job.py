"""A full sync run as a job: the drift is computed in the call, the writes go through the
queue, and GET /v1/tenants/{t}/jobs/{id} shows the drift and the progress.

`submit_sync_job` computes the drift of a received set (core/full_sync.py: SyncSet), then,
in one transaction, stores a job whose items are the missing and changed records (upserts)
and the extra ones (deletes), with the drift report (db/sync_jobs.py, state `publishing`).
It then publishes one queue message per item, reading the records back from the spool a
batch at a time, and marks the job `published`. The worker embeds and writes them as it
does any job's (either queue backend): the provider sees only the missing and changed
texts, each extra id is deleted by one message (a redelivery finds it gone: `not_found`),
and each record is counted once however often it is delivered.

Crashes. Once the call has answered 202, every message is durably queued (publisher
confirms on RabbitMQ, a committed row on SQLite): a worker or server restart resumes the
job where it was, nothing acknowledged is lost, and the progress counts stay exact. A crash
*before* the answer (while publishing) leaves the job `publishing`: once its heartbeat is
older than STALE_SECONDS, the job reports `status: failed` with `sync.state: interrupted`.
The messages already published are still applied (each one a record of the set: nothing
outside the set is written), the rest never will be: run the sync again, it computes the
drift afresh and does only what is left.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

from vecpipe import metrics
from vecpipe.core.full_sync import (
    BATCH,
    KINDS,
    Admit,
    SyncSet,
    check_sync_request,
    compute_drift,
)
from vecpipe.core.ingest import Op
from vecpipe.core.pipeline import Pipeline, check_tenant_id, message_for, new_version, with_version
from vecpipe.db.sync_jobs import SyncJobRepo, SyncJobRow

log = logging.getLogger(__name__)

STALE_SECONDS = 120.0  # a `publishing` job not heard of for this long has lost its publisher
HEARTBEAT_SECONDS = 5.0


def sync_jobs(pipeline: Pipeline) -> SyncJobRepo:
    return SyncJobRepo(pipeline.jobs.handle)


async def submit_sync_job(
    pipeline: Pipeline,
    tenant_id: str,
    sset: SyncSet,
    *,
    scope: Any = None,
    sample: int = 10,
    admit: Admit | None = None,
) -> dict[str, Any]:
    """Queue the sync of a received set as a job: `{job_id, total, counts, sample}`."""
    check_tenant_id(tenant_id)
    where = check_sync_request(sset, scope, dry_run=False)
    drift = await compute_drift(pipeline, tenant_id, sset, where, sample)
    if admit is not None:
        await admit(drift)
    report = drift.report(dry_run=False, failed={})
    items = [(rid, "upsert") for rid in drift.upsert] + [(rid, "delete") for rid in drift.extra]
    repo = sync_jobs(pipeline)
    job_id = await repo.create(tenant_id, items, report)
    version = new_version()  # one acceptance time for the whole set, as one request's
    beat = time.monotonic()
    for batch in sset.batches(BATCH):
        ops = [Op(tenant_id, r.id, with_version(r, version)) for r in batch if r.id in drift.upsert]
        if ops:
            # the tenant's ttl_seconds, as any write gets it
            ops = await pipeline.with_tenant_ttl(tenant_id, ops)
            await pipeline.queue.publish([message_for(op, job_id) for op in ops])
        if time.monotonic() - beat > HEARTBEAT_SECONDS:
            await repo.touch(job_id)
            beat = time.monotonic()
    for start in range(0, len(drift.extra), BATCH):
        ops = [Op(tenant_id, rid) for rid in drift.extra[start : start + BATCH]]
        await pipeline.queue.publish([message_for(op, job_id) for op in ops])
    await repo.touch(job_id, published=True)
    metrics.JOBS_SUBMITTED.labels(metrics.tenant_label(tenant_id)).inc()
    metrics.count_lifecycle(tenant_id, "synced_as_job", len(sset))
    log.info(
        "tenant %s sync queued as a job: %d missing, %d changed, %d unchanged, %d extra",
        tenant_id,
        *(drift.counts[kind] for kind in KINDS),
    )
    return {
        "job_id": job_id,
        "total": len(items),
        "counts": report["counts"],
        "sample": report["sample"],
    }


def sync_progress(row: SyncJobRow | None, now: float | None = None) -> dict[str, Any] | None:
    """The `sync` part of a job's status: its drift and publishing state; None for a job
    that is no sync. `interrupted`: its publisher died before the last message (see the
    module docstring)."""
    if row is None:
        return None
    state = row.state
    now_dt = datetime.fromtimestamp(now if now is not None else time.time(), UTC)
    if state == "publishing" and (now_dt - row.updated_at).total_seconds() > STALE_SECONDS:
        state = "interrupted"
    return {
        "state": state,
        "counts": row.report["counts"],
        "sample": row.report["sample"],
    }
