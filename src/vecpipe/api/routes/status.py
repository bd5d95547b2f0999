"""Operator routes (admin token only): the status report and jobs across tenants.

`vecpipe status --url` and `vecpipe jobs --url` read these, so the operator commands work
while `vecpipe serve` holds the embedded store.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from vecpipe.api.deps import PipelineDep, PrincipalDep, get_resources
from vecpipe.api.job_status import with_sync
from vecpipe.api.responses import ADMIN, STORE, errors
from vecpipe.api.schemas import JobResponse
from vecpipe.errors import Forbidden, NotFound
from vecpipe.models import TENANT_ID_PATTERN
from vecpipe.status import DEFAULT_TENANT_LIMIT, StatusReport, collect_status


def require_admin(principal: PrincipalDep) -> None:
    if not principal.is_admin:
        raise Forbidden("this route needs the admin token")


router = APIRouter(
    prefix="/v1",
    tags=["operator"],
    dependencies=[Depends(require_admin)],
    responses=errors(*ADMIN, 422, *STORE),
)


@router.get("/status", response_model=StatusReport)
async def status(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=1000)] = DEFAULT_TENANT_LIMIT,
) -> StatusReport:
    """Tenants, points per tenant and space, queue depth, dead letters, provider health."""
    return await collect_status(get_resources(request), limit)


@router.get("/jobs", response_model=list[JobResponse])
async def list_jobs(
    pipeline: PipelineDep,
    tenant: Annotated[str | None, Query(pattern=TENANT_ID_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[JobResponse]:
    """Newest jobs first, of every tenant or one."""
    return [JobResponse.from_status(s) for s in await pipeline.jobs.list(tenant, limit)]


@router.get("/jobs/{job_id}", response_model=JobResponse, responses=errors(404))
async def get_job(request: Request, job_id: str, pipeline: PipelineDep) -> JobResponse:
    """One job, whichever tenant it belongs to."""
    tenant_id = await get_resources(request).database.jobs.tenant_of(job_id)
    if tenant_id is None:
        raise NotFound("job not found")
    return await with_sync(pipeline, JobResponse.from_status(await pipeline.job(tenant_id, job_id)))
