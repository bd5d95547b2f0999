"""Liveness, readiness and metrics; they say nothing about tenants beyond counts."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from vecpipe import metrics
from vecpipe.api.deps import get_resources, require_metrics_token
from vecpipe.errors import VecpipeError

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    resources = get_resources(request)
    try:
        await resources.store.check_ready()
        async with resources.database.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        metrics.QUEUE_DEPTH.set(await resources.queue.depth())
    except VecpipeError as exc:
        return JSONResponse({"status": "not_ready", "reason": exc.message}, status_code=503)
    except Exception as exc:
        reason = f"{type(exc).__name__}"
        return JSONResponse({"status": "not_ready", "reason": reason}, status_code=503)
    worker = getattr(request.app.state, "worker_task", None)
    if worker is not None and worker.done():
        return JSONResponse({"status": "not_ready", "reason": "worker stopped"}, status_code=503)
    return JSONResponse({"status": "ready"})


@router.get("/metrics", dependencies=[Depends(require_metrics_token)])
async def metrics_endpoint(request: Request) -> Response:
    await metrics.refresh(get_resources(request))  # state gauges: queue, breakers, jobs
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
