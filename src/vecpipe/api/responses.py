"""What an error response looks like in the OpenAPI document, for `responses=` on routes.

Every error leaves the API as `{"error": {"code", "message"}}` (api/errors.py); a route
declares the statuses it can answer with `responses=errors(401, 404, 422)`, so the schema
tells clients the truth (schemathesis holds the code to it).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


DESCRIPTIONS = {
    400: "the request cannot be read",
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


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for these error statuses, each with the error body's schema."""
    return {
        status: {"model": ErrorBody, "description": DESCRIPTIONS.get(status, "error")}
        for status in statuses
    }
