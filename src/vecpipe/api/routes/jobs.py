"""Queue jobs: the bulk body processed by the worker, with exact progress counts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from vecpipe import metrics
from vecpipe.api.deps import PipelineDep, QuotasDep, TenantDep, WritableTenantDep
from vecpipe.api.job_status import with_sync
from vecpipe.api.json_body import JSONBodyRoute
from vecpipe.api.limits import check_records_request
from vecpipe.api.responses import BODY, OFFBOARDING, QUOTA, STORE, TENANT, WRITES, errors
from vecpipe.api.schemas import JobAccepted, JobResponse, RecordsRequest

router = APIRouter(prefix="/v1/tenants/{tenant_id}/jobs", tags=["jobs"], route_class=JSONBodyRoute)


@router.post(
    "",
    response_model=JobAccepted,
    status_code=202,
    responses=errors(*TENANT, *BODY, *QUOTA, *WRITES, *OFFBOARDING),
)
async def submit_job(
    tenant_id: WritableTenantDep, body: RecordsRequest, pipeline: PipelineDep, quotas: QuotasDep
) -> JobAccepted:
    check_records_request(body, pipeline.settings.limits)
    await quotas.admit(pipeline, tenant_id, body.upsert, body.delete)
    job_id = await pipeline.submit_job(tenant_id, upserts=body.upsert, deletes=body.delete)
    metrics.JOBS_SUBMITTED.labels(metrics.tenant_label(tenant_id)).inc()
    return JobAccepted(job_id=job_id, total=len(body.upsert) + len(body.delete))


@router.get("/{job_id}", response_model=JobResponse, responses=errors(*TENANT, *STORE))
async def get_job(tenant_id: TenantDep, job_id: str, pipeline: PipelineDep) -> JobResponse:
    """A job's progress; a sync job's also its drift (`sync`)."""
    return await with_sync(pipeline, JobResponse.from_status(await pipeline.job(tenant_id, job_id)))


@router.get("", response_model=list[JobResponse], responses=errors(*TENANT, *STORE))
async def list_jobs(
    tenant_id: TenantDep,
    pipeline: PipelineDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[JobResponse]:
    """The tenant's jobs, newest first, with progress."""
    return [JobResponse.from_status(s) for s in await pipeline.jobs.list(tenant_id, limit)]
