"""What an error response looks like in the OpenAPI document, for `responses=` on routes.

Every error leaves the API in one of two shapes (api/errors.py): vecpipe's
`{"error": {"code", "message"}}`, or OpenAI's `{"error": {"message", "type", "param",
"code"}}` on the OpenAI-compatible routes. A route declares every status it can answer:

    @router.post("", responses=errors(*TENANT, *BODY, *EMBEDS, 409))

The groups below name the statuses a kind of route gets from what it depends on (a token,
a tenant path, a JSON body, a provider, a write); tests/api/test_openapi.py derives them
from each route's dependencies and fails when a route leaves one out, and schemathesis
(tests/api/test_schemathesis.py) fails on any status the document does not list.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorDetail(BaseModel):
    code: str = Field(description="stable, machine-readable: invalid_request, not_found, ...")
    message: str = Field(description="what went wrong and, where it helps, what to do")


class ErrorBody(BaseModel):
    """vecpipe's error shape (every route but the OpenAI-compatible ones)."""

    error: ErrorDetail


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str = Field(description="invalid_request_error, rate_limit_error, server_error, ...")
    param: str | None = Field(description="the request field at fault, when one is")
    code: str | None = Field(description="context_length_exceeded, invalid_api_key, ...")


class OpenAIErrorBody(BaseModel):
    """OpenAI's error shape (/v1/embeddings)."""

    error: OpenAIErrorDetail


DESCRIPTIONS = {
    400: "the request cannot be read (OpenAI routes: any invalid request)",
    401: "no valid bearer token",
    403: "the route needs the admin token",
    404: "not found (or another tenant's)",
    409: "conflicts with the current state",
    413: "a size limit was exceeded",
    422: "the request is invalid",
    429: "a quota is used up for now (Retry-After)",
    502: "an embedding provider answered badly",
    503: "unavailable for now (Retry-After)",
    507: "the data dir's disk is below its free-space floor (Retry-After)",
}

# Statuses by what a route depends on (see the module docstring).
AUTH = (401,)  # authenticate (every /v1 route)
ADMIN = (401, 403)  # the admin token only
TENANT = (401, 404, 422)  # a {tenant_id} path: another tenant's is 404, a bad id 422
BODY = (400, 413, 422, 503)  # a JSON body: unreadable, too large, invalid, too many in flight
EMBEDS = (502, 503)  # calls a provider (and the store)
STORE = (503,)  # reads the store or database
WRITES = (503, 507)  # writes: the store may be down or the disk full
QUOTA = (429,)  # a tenant's ingest quota
OFFBOARDING = (409,)  # writes for a tenant whose offboarding runs (api/write_gate.py)


def errors(*statuses: int, openai: bool = False) -> dict[int | str, dict[str, Any]]:
    """`responses=` for these error statuses, each with its error body's schema."""
    model = OpenAIErrorBody if openai else ErrorBody
    return {
        status: {"model": model, "description": DESCRIPTIONS.get(status, "error")}
        for status in sorted(set(statuses))
    }
