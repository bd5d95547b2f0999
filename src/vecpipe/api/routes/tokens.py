"""Tenant API tokens (admin only): issued once, stored hashed, revocable."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from vecpipe.api.deps import AdminTenantDep, WritableAdminTenantDep, get_resources
from vecpipe.api.responses import ADMIN, OFFBOARDING, STORE, TENANT, errors
from vecpipe.errors import NotFound

router = APIRouter(
    prefix="/v1/tenants/{tenant_id}/tokens",
    tags=["tokens"],
    responses=errors(*ADMIN, *TENANT, *STORE),
)


class TokenIssued(BaseModel):
    token: str
    token_id: str
    tenant_id: str
    created_at: datetime


class TokenEntry(BaseModel):
    token_id: str
    created_at: datetime
    revoked_at: datetime | None


class TokenList(BaseModel):
    tokens: list[TokenEntry]


@router.post("", response_model=TokenIssued, status_code=201, responses=errors(*OFFBOARDING))
async def create_token(
    tenant_id: WritableAdminTenantDep, request: Request, response: Response
) -> TokenIssued:
    info, token = await get_resources(request).database.tokens.create(tenant_id)
    response.headers["Cache-Control"] = "no-store"
    return TokenIssued(
        token=token, token_id=info.id, tenant_id=tenant_id, created_at=info.created_at
    )


@router.get("", response_model=TokenList)
async def list_tokens(tenant_id: AdminTenantDep, request: Request) -> TokenList:
    infos = await get_resources(request).database.tokens.list(tenant_id)
    return TokenList(
        tokens=[
            TokenEntry(token_id=i.id, created_at=i.created_at, revoked_at=i.revoked_at)
            for i in infos
        ]
    )


@router.delete("/{token_id}", status_code=204)
async def revoke_token(tenant_id: AdminTenantDep, token_id: str, request: Request) -> Response:
    if not await get_resources(request).database.tokens.revoke(token_id, tenant_id):
        raise NotFound("no active token with that id for this tenant")
    return Response(status_code=204)
