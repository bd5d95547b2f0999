"""Offboarding a tenant (admin only): everything of it goes (core/offboard.py)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from vecpipe.api.deps import AdminTenantDep, get_state
from vecpipe.api.responses import ADMIN, TENANT, WRITES, errors
from vecpipe.core.offboard import offboard_tenant

router = APIRouter(prefix="/v1/tenants/{tenant_id}", tags=["tenants"])


class TenantRemoved(BaseModel):
    """What offboarding removed; a repeat (after a crash, or again) reports what was left."""

    tenant_id: str
    records: int
    points: int
    spaces: list[str] = Field(description="spaces the tenant had points in")
    ai_config: bool
    migration: bool
    tokens: int
    jobs: int
    queued_messages: int
    dead_letters: int
    compacted_spaces: list[str] = Field(
        description="spaces rewritten so that deleted bytes leave the disk (Edge)"
    )


@router.delete("", response_model=TenantRemoved, responses=errors(*ADMIN, *TENANT, *WRITES))
async def delete_tenant(tenant_id: AdminTenantDep, request: Request) -> TenantRemoved:
    """Delete every record (in every space), the AI config, tokens, jobs, queued messages
    and dead letters of the tenant. Idempotent: call it again after a failure. The tenant's
    writes are refused with 409 meanwhile (api/write_gate.py), and until a call cut short
    by a crash is repeated."""
    state = get_state(request)
    resources = state.resources
    async with state.writes.offboarding(tenant_id):
        removed = await offboard_tenant(resources.pipeline, resources.database, tenant_id)
    return TenantRemoved(tenant_id=tenant_id, **removed)
