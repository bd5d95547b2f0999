"""The OpenAPI document as the contract: what each route's code enforces, the schema says.

FastAPI builds the document from the routes (their models, `responses=`, the bearer scheme
that `deps.authenticate` declares); this adds what depends on this server's settings or on
checks the code makes itself, so that schemathesis (every check, tests/api) finds the two
agreeing:

- security: bearer on every /v1 route; optional (`{}` beside it) when no admin token is
  set, since the server then listens on loopback only and serves token-less requests as the
  admin (deps.py); /metrics takes a bearer only when VECPIPE_METRICS_TOKEN is set;
- path and header ids: a tenant id's pattern and length, a record id's length (the
  configured VECPIPE_LIMIT_MAX_ID_LENGTH) and characters (no control characters);
- /metrics answers Prometheus text, not JSON.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from vecpipe.models import TENANT_ID_PATTERN
from vecpipe.settings import Settings

BEARER = "HTTPBearer"
TENANT_ID_SCHEMA = {"type": "string", "pattern": TENANT_ID_PATTERN, "minLength": 1, "maxLength": 64}
PRINTABLE = r"^[^\x00-\x1f\x7f-\x9f]+$"  # models.check_record_id: no control characters
METRICS_TEXT = {"text/plain; version=0.0.4": {"schema": {"type": "string"}}}


def install_openapi(app: FastAPI, settings: Settings) -> None:
    """Make `app.openapi()` the document described above (built once, then kept)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
            )
            app.openapi_schema = complete(document, settings)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def complete(document: dict[str, Any], settings: Settings) -> dict[str, Any]:
    record_id = {
        "type": "string",
        "minLength": 1,
        "maxLength": settings.limits.max_id_length,
        "pattern": PRINTABLE,
    }
    for path, operations in document.get("paths", {}).items():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                name = parameter["name"].lower()
                if name in ("tenant_id", "x-vecpipe-tenant"):
                    parameter["schema"] = dict(TENANT_ID_SCHEMA)
                elif name == "record_id":
                    parameter["schema"] = dict(record_id)
            _security(path, operation, settings)
    metrics = document.get("paths", {}).get("/metrics", {}).get("get")
    if metrics is not None:
        metrics["responses"]["200"]["content"] = METRICS_TEXT
    return document


def _security(path: str, operation: dict[str, Any], settings: Settings) -> None:
    if path == "/metrics":
        if settings.metrics_token is None:
            operation.pop("security", None)
        return
    if "security" in operation and settings.admin_token is None:
        operation["security"] = [{BEARER: []}, {}]
