"""Full sync of a tenant's records against the caller's complete set (core/full_sync.py)."""

from __future__ import annotations

from fastapi import APIRouter

from vecpipe.api.deps import PipelineDep, QuotasDep, TenantDep
from vecpipe.api.json_body import JSONBodyRoute
from vecpipe.api.responses import BODY, EMBEDS, QUOTA, TENANT, WRITES, errors
from vecpipe.api.schemas import SyncRequest, SyncResponse
from vecpipe.core.full_sync import sync_records

router = APIRouter(
    prefix="/v1/tenants/{tenant_id}/sync", tags=["records"], route_class=JSONBodyRoute
)


@router.post(
    "", response_model=SyncResponse, responses=errors(*TENANT, *BODY, *QUOTA, *EMBEDS, *WRITES)
)
async def sync(
    tenant_id: TenantDep, body: SyncRequest, pipeline: PipelineDep, quotas: QuotasDep
) -> SyncResponse:
    """Upsert what is missing or changed, leave what is unchanged (no provider call), delete
    what is stored in the scope but absent from the set; `dry_run` only reports the drift."""
    if not body.dry_run and body.records:
        await quotas.admit(pipeline, tenant_id, body.records, [])
    report = await sync_records(
        pipeline,
        tenant_id,
        body.records,
        scope=body.scope,
        dry_run=body.dry_run,
        sample=body.sample,
    )
    return SyncResponse.model_validate(report)
