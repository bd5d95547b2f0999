"""A tenant's provider chain. GET never returns a secret."""

from __future__ import annotations

from fastapi import APIRouter, Response

from vecpipe.api.deps import PipelineDep, TenantDep, WritableTenantDep
from vecpipe.api.json_body import JSONBodyRoute
from vecpipe.api.responses import BODY, EMBEDS, OFFBOARDING, TENANT, WRITES, errors
from vecpipe.api.schemas import AIConfigResponse
from vecpipe.errors import NotFound
from vecpipe.providers.config import AIConfig

router = APIRouter(
    prefix="/v1/tenants/{tenant_id}/ai-config", tags=["ai-config"], route_class=JSONBodyRoute
)


@router.put(
    "",
    response_model=AIConfigResponse,
    responses=errors(*TENANT, *BODY, *EMBEDS, *WRITES, *OFFBOARDING),
)
async def put_ai_config(
    tenant_id: WritableTenantDep, body: AIConfig, pipeline: PipelineDep
) -> AIConfigResponse:
    space = await pipeline.set_ai_config(tenant_id, body)
    config, _ = await pipeline.configs.show(tenant_id)
    return AIConfigResponse(
        tenant_id=tenant_id,
        configured=True,
        space={"model": space.model, "dimension": space.dimension},
        config=config,
        migration=await pipeline.migration_status(tenant_id),
    )


@router.get("", response_model=AIConfigResponse, responses=errors(*TENANT, *EMBEDS))
async def get_ai_config(tenant_id: TenantDep, pipeline: PipelineDep) -> AIConfigResponse:
    config, configured = await pipeline.configs.show(tenant_id)
    migration = await pipeline.migration_status(tenant_id)
    pipeline.providers.forget(tenant_id)  # the active space as stored now, not as cached
    space = await pipeline.space_of(tenant_id)
    return AIConfigResponse(
        tenant_id=tenant_id,
        configured=configured,
        space={"model": space.model, "dimension": space.dimension},
        config=config,
        migration=migration,
    )


@router.delete("/migration", status_code=204, responses=errors(*TENANT, *WRITES, *OFFBOARDING))
async def cancel_migration(tenant_id: WritableTenantDep, pipeline: PipelineDep) -> Response:
    """Cancel a running migration: the old model stays active, the partial new space goes."""
    await pipeline.cancel_migration(tenant_id)
    return Response(status_code=204)


@router.delete("", status_code=204, responses=errors(*TENANT, *WRITES, *OFFBOARDING))
async def delete_ai_config(tenant_id: WritableTenantDep, pipeline: PipelineDep) -> Response:
    if not await pipeline.delete_ai_config(tenant_id):
        raise NotFound(f"tenant {tenant_id} has no stored AI config")
    return Response(status_code=204)
