"""Queue jobs: the bulk body processed by the worker, with exact progress counts."""

from __future__ import annotations

from fastapi import APIRouter

from vecpipe.api.deps import PipelineDep, TenantDep
from vecpipe.api.limits import check_records_request
from vecpipe.api.schemas import FailedRecord, JobAccepted, JobResponse, RecordsRequest

router = APIRouter(prefix="/v1/tenants/{tenant_id}/jobs", tags=["jobs"])


@router.post("", response_model=JobAccepted, status_code=202)
async def submit_job(
    tenant_id: TenantDep, body: RecordsRequest, pipeline: PipelineDep
) -> JobAccepted:
    check_records_request(body, pipeline.settings.limits)
    job_id = await pipeline.submit_job(tenant_id, upserts=body.upsert, deletes=body.delete)
    return JobAccepted(job_id=job_id, total=len(body.upsert) + len(body.delete))


@router.get("/{job_id}", response_model=JobResponse)
async def get_job(tenant_id: TenantDep, job_id: str, pipeline: PipelineDep) -> JobResponse:
    status = await pipeline.job(tenant_id, job_id)
    return JobResponse(
        job_id=status.job_id,
        status=status.status,
        total=status.total,
        done=status.done,
        unchanged=status.unchanged,
        failed=status.failed,
        failures=[FailedRecord(id=f["id"], error=f["error"] or "") for f in status.failures],
    )
