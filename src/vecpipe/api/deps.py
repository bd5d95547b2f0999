"""Request dependencies: the app's state (the lifespan's, state.py), who the caller is, and
which tenant it may touch.

Who (`authenticate`), from `Authorization: Bearer <token>`:
- the admin token (VECPIPE_ADMIN_TOKEN) may do everything;
- a tenant token (`vp_…`, see db/tokens.py) reaches only its own tenant;
- with no admin token configured the server listens on loopback only (runtime.check_bind),
  and a request without a tenant token acts as the admin there: whoever can reach loopback
  can read the data dir too. A `vp_` token presented there still confines the caller to its
  tenant, and an unknown or revoked one is refused, so a token never grants more than it says.

Missing or invalid token: 401. A tenant token on another tenant's path: 404, the same
answer whether that tenant exists or not (no enumeration). Admin-only routes answer a
tenant's token on its own path with 403.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import unquote, unquote_to_bytes

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.convertors import PathConvertor, register_url_convertor

from vecpipe import observe
from vecpipe.api.ndjson import has_lone_surrogate
from vecpipe.api.state import AppState
from vecpipe.core.pipeline import Pipeline
from vecpipe.core.quotas import QuotaService
from vecpipe.db.tokens import TOKEN_PREFIX
from vecpipe.errors import AuthError, Forbidden, NotFound, ValidationError
from vecpipe.models import TENANT_ID_PATTERN, check_record_id
from vecpipe.resources import Resources
from vecpipe.secrets import bearer_token, same_secret

MAX_TOKEN_LENGTH = 256
TENANT_ID_RULE = "tenant ids are 1-64 of A-Z a-z 0-9 . _ - and start with a letter or digit"
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_TENANT_ID = re.compile(TENANT_ID_PATTERN)


class AnyPathConvertor(PathConvertor):
    """`path` that also matches line breaks: an id holding one gets its 422, not a 404."""

    regex = "(?s:.*)"


register_url_convertor("anypath", AnyPathConvertor())


@dataclass(frozen=True)
class Principal:
    """Who is calling: the admin (tenant_id None) or one tenant."""

    tenant_id: str | None

    @property
    def is_admin(self) -> bool:
        return self.tenant_id is None


ADMIN = Principal(None)


def get_state(request: Request) -> AppState:
    """What the app's lifespan yielded (request.state is a copy of it per request)."""
    return AppState.of(request.scope.get("state", {}))


def get_resources(request: Request) -> Resources:
    return get_state(request).resources


def get_pipeline(request: Request) -> Pipeline:
    return get_resources(request).pipeline


def get_quotas(request: Request) -> QuotaService:
    return get_state(request).quotas


def _bearer(request: Request) -> str | None:
    return bearer_token(request.headers.get("authorization"))


# Declares the bearer scheme in the OpenAPI document (api/openapi.py); the token itself is
# read from the header by `authenticate`, which answers a missing or bad one with our 401.
BEARER = HTTPBearer(
    auto_error=False,
    description="the admin token (VECPIPE_ADMIN_TOKEN) or a tenant's token (vp_...)",
)
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]


async def authenticate(request: Request, _bearer_declared: BearerDep) -> Principal:
    resources = get_resources(request)
    admin = resources.settings.admin_token
    presented = _bearer(request)
    if (
        presented is not None
        and admin is not None
        and same_secret(presented, admin.get_secret_value())
    ):
        return ADMIN
    if presented is not None and presented.startswith(TOKEN_PREFIX):
        tenant_id = None
        if len(presented) <= MAX_TOKEN_LENGTH:
            # A lookup by SHA-256: the hash of a guess says nothing about the stored tokens.
            tenant_id = await resources.database.tokens.verify(presented)
        if tenant_id is None:
            raise AuthError("missing or invalid bearer token")
        return Principal(tenant_id)
    if admin is None:
        return ADMIN
    raise AuthError("missing or invalid bearer token")


require_token = authenticate
PrincipalDep = Annotated[Principal, Depends(authenticate)]


async def tenant_access(request: Request, tenant_id: str, principal: PrincipalDep) -> str:
    """The path's tenant, when the caller may touch it."""
    if principal.tenant_id is not None and tenant_id != principal.tenant_id:
        raise NotFound("not found")
    _check_tenant_id(tenant_id)
    await check_body_unicode(request)
    return tenant_id


async def admin_tenant(tenant_id: str, principal: PrincipalDep) -> str:
    """The path's tenant, on routes only the admin may use."""
    if principal.tenant_id is not None:
        if tenant_id != principal.tenant_id:
            raise NotFound("not found")
        raise Forbidden("this route needs the admin token")
    _check_tenant_id(tenant_id)
    return tenant_id


TenantDep = Annotated[str, Depends(tenant_access)]
AdminTenantDep = Annotated[str, Depends(admin_tenant)]


async def writable_tenant(request: Request, tenant_id: TenantDep) -> AsyncIterator[str]:
    """The path's tenant, for a route that writes: 409 while it is being offboarded
    (api/write_gate.py), held until the route has written."""
    state = get_state(request)
    async with state.writes.write(tenant_id, state.resources.database.tombstones):
        yield tenant_id


async def writable_admin_tenant(request: Request, tenant_id: AdminTenantDep) -> AsyncIterator[str]:
    """`writable_tenant` on a route only the admin may use."""
    state = get_state(request)
    async with state.writes.write(tenant_id, state.resources.database.tombstones):
        yield tenant_id


WritableTenantDep = Annotated[str, Depends(writable_tenant)]
WritableAdminTenantDep = Annotated[str, Depends(writable_admin_tenant)]


async def embeddings_tenant(
    request: Request,
    principal: PrincipalDep,
    x_vecpipe_tenant: Annotated[str | None, Header()] = None,
) -> str | None:
    """Whose chain /v1/embeddings uses: a tenant token's own; for the admin, the header's."""
    if principal.tenant_id is not None:
        if x_vecpipe_tenant is not None and x_vecpipe_tenant != principal.tenant_id:
            raise NotFound("not found")
        tenant_id: str | None = principal.tenant_id
    else:
        tenant_id = x_vecpipe_tenant
        if tenant_id is not None and not is_valid_tenant_id(tenant_id):
            raise ValidationError(f"X-Vecpipe-Tenant is not a valid tenant id: {TENANT_ID_RULE}")
    await check_body_unicode(request)
    return tenant_id


def record_id_path(request: Request, tenant_id: TenantDep, record_id: str) -> str:
    """The record id of the path, decoded strictly: invalid UTF-8 is a 422, not U+FFFD."""
    raw = _raw_record_id(request, tenant_id)
    if raw is not None:
        try:
            record_id = unquote_to_bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise ValidationError("record id is not valid UTF-8") from None
    try:
        return check_record_id(record_id, get_resources(request).settings.limits.max_id_length)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


def _raw_record_id(request: Request, tenant_id: str) -> bytes | None:
    """The still percent-encoded id after `/tenants/<tenant>/records/` in the raw path."""
    raw_path = request.scope.get("raw_path")
    if not isinstance(raw_path, bytes):
        return None
    segments = raw_path.split(b"/")
    for i in range(len(segments) - 3):
        if segments[i] != b"tenants" or segments[i + 2] != b"records":
            continue
        if unquote(segments[i + 1].decode("ascii", "replace")) == tenant_id:
            return b"/".join(segments[i + 3 :])
    return None


def require_metrics_token(request: Request, _bearer_declared: BearerDep) -> None:
    """With VECPIPE_METRICS_TOKEN set, /metrics takes it (or the admin token)."""
    authorization = request.headers.get("authorization")
    if not observe.scrape_allowed(get_resources(request).settings, authorization):
        raise AuthError("missing or invalid bearer token")


async def check_body_unicode(request: Request) -> None:
    """JSON may escape lone UTF-16 surrogates (\\ud800) that no UTF-8 text can hold: 422.

    `request.json()` is the parse FastAPI already made for the body (json_body.py), not a
    second one: a large body is parsed once, off the event loop.
    """
    if request.method not in ("POST", "PUT", "PATCH"):
        return
    body = await request.body()
    if not _SURROGATE_ESCAPE.search(body):
        return
    try:
        data = await request.json()
    except ValueError:
        return  # not JSON: the body's own validation answers
    if has_lone_surrogate(data):
        raise ValidationError("the body holds a lone UTF-16 surrogate: not valid Unicode text")


def is_valid_tenant_id(value: str) -> bool:
    """fullmatch: `$` alone would also accept a trailing newline."""
    return _TENANT_ID.fullmatch(value) is not None


def _check_tenant_id(tenant_id: str) -> None:
    if not is_valid_tenant_id(tenant_id):
        raise ValidationError(f"invalid tenant id: {TENANT_ID_RULE}")


PipelineDep = Annotated[Pipeline, Depends(get_pipeline)]
QuotasDep = Annotated[QuotaService, Depends(get_quotas)]
RecordIdDep = Annotated[str, Depends(record_id_path)]
EmbeddingsTenantDep = Annotated[str | None, Depends(embeddings_tenant)]
