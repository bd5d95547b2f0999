"""Request dependencies: the pipeline and the caller's right to a tenant."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Path, Request

from vecpipe.core.pipeline import Pipeline
from vecpipe.errors import AuthError
from vecpipe.models import TENANT_ID_PATTERN
from vecpipe.resources import Resources


def get_resources(request: Request) -> Resources:
    resources: Resources = request.app.state.resources
    return resources


def get_pipeline(request: Request) -> Pipeline:
    return get_resources(request).pipeline


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def require_token(request: Request) -> None:
    """With VECPIPE_ADMIN_TOKEN set, every /v1 call must present it (constant-time check)."""
    expected = get_resources(request).settings.admin_token
    if expected is None:
        return
    presented = _bearer(request)
    if presented is None or not hmac.compare_digest(
        presented.encode(), expected.get_secret_value().encode()
    ):
        raise AuthError("missing or invalid bearer token")


def tenant_path(
    tenant_id: Annotated[str, Path(pattern=TENANT_ID_PATTERN, max_length=64)],
    _auth: Annotated[None, Depends(require_token)],
) -> str:
    return tenant_id


PipelineDep = Annotated[Pipeline, Depends(get_pipeline)]
TenantDep = Annotated[str, Depends(tenant_path)]
