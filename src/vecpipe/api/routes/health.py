"""Liveness, readiness and metrics; they say nothing about tenants beyond counts."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from vecpipe import metrics, observe
from vecpipe.api.deps import get_resources, get_state, require_metrics_token
from vecpipe.api.responses import errors
from vecpipe.errors import VecpipeError

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready", "not_ready"]
    reason: str | None = None


@router.get("/healthz", response_model=Health)
async def healthz() -> dict[str, str]:
    """The process answers (no dependency is asked)."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "not ready, and why"}},
)
async def readyz(request: Request) -> JSONResponse:
    state = get_state(request)
    resources = state.resources
    try:
        await resources.store.check_ready()
        await resources.database.ping()
        metrics.QUEUE_DEPTH.set(await resources.queue.depth())
    except VecpipeError as exc:
        return JSONResponse({"status": "not_ready", "reason": exc.message}, status_code=503)
    except Exception as exc:
        reason = f"{type(exc).__name__}"
        return JSONResponse({"status": "not_ready", "reason": reason}, status_code=503)
    if state.background is not None and not state.background.is_running():
        return JSONResponse({"status": "not_ready", "reason": "worker stopped"}, status_code=503)
    return JSONResponse({"status": "ready"})


@router.get(
    "/metrics",
    dependencies=[Depends(require_metrics_token)],
    response_class=Response,
    responses=errors(401),
)
async def metrics_endpoint(request: Request) -> Response:
    """Prometheus text; with VECPIPE_METRICS_TOKEN set, it takes that token (or the admin's)."""
    body = await observe.scrape(get_resources(request))  # state gauges: queue, breakers, jobs
    return Response(body, media_type=observe.CONTENT_TYPE)
