"""A job's response, with a sync job's drift (core/sync_job.py) where the job is one."""

from __future__ import annotations

from vecpipe.api.schemas import JobResponse, SyncJobProgress
from vecpipe.core.pipeline import Pipeline
from vecpipe.core.sync_job import sync_jobs, sync_progress


async def with_sync(pipeline: Pipeline, response: JobResponse) -> JobResponse:
    """`sync` set for a sync job; `status: failed` when its queuing was cut short."""
    progress = sync_progress(await sync_jobs(pipeline).get(response.job_id))
    if progress is None:
        return response
    sync = SyncJobProgress.model_validate(progress)
    status = "failed" if sync.state == "interrupted" else response.status
    return response.model_copy(update={"sync": sync, "status": status})
