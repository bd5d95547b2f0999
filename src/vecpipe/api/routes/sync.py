"""Full sync of a tenant's records against the caller's complete set (core/full_sync.py).

Two body forms, one route:
- `application/json`: `{"records": [...], "scope", "dry_run", "sample"}`, up to
  VECPIPE_LIMIT_MAX_BODY_BYTES, parsed whole (json_body.py) like every JSON body;
- `application/x-ndjson`: one record per line, `scope` (JSON), `dry_run` and `sample` as
  query parameters, up to VECPIPE_LIMIT_MAX_SYNC_STREAM_BYTES, read line by line as it
  streams (api/ndjson.py) into a spool on disk: memory holds ids, not texts.

Either way every record is checked before anything is written: a bad one (a line number
names it in the JSON-lines form) refuses the whole sync with a 4xx. `job=true` queues the
writes as a job (core/sync_job.py) and answers 202 with its id and the drift; the job's
GET shows the drift and the progress.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from vecpipe.api.deps import PipelineDep, QuotasDep, WritableTenantDep, get_state
from vecpipe.api.json_body import JSONBodyRequest, JSONBodyRoute
from vecpipe.api.ndjson import MEDIA_TYPES, is_ndjson, read_records
from vecpipe.api.responses import BODY, EMBEDS, OFFBOARDING, QUOTA, TENANT, WRITES, errors
from vecpipe.api.schemas import SyncJobAccepted, SyncRequest, SyncResponse
from vecpipe.api.write_gate import WriteGate
from vecpipe.core.full_sync import DEFAULT_SAMPLE, Drift, SyncSet, sync_set
from vecpipe.core.pipeline import Pipeline
from vecpipe.core.quotas import QuotaService
from vecpipe.core.sync_job import submit_sync_job
from vecpipe.errors import ValidationError

SCOPE_QUERY_MAX = 16 * 1024
NDJSON_BODY = {
    "schema": {
        "type": "string",
        "description": "one record per line ({id, text, metadata?, version?, expires_at?}); "
        "scope, dry_run and sample as query parameters",
    }
}


class _StreamedRequest(JSONBodyRequest):
    """A JSON-lines body: the endpoint reads `stream()` itself, FastAPI sees no body."""

    async def body(self) -> bytes:
        return b""


class SyncRoute(JSONBodyRoute):
    """JSON bodies as every JSON route reads them; JSON lines left to stream."""

    def get_route_handler(self) -> Any:
        json_handler = super().get_route_handler()
        streaming_handler = APIRoute.get_route_handler(self)

        async def route(request: Request) -> Response:
            if is_ndjson(request.headers):
                streamed = _StreamedRequest(request.scope, request.receive, request._send)
                response: Response = await streaming_handler(streamed)
                return response
            response = await json_handler(request)
            return response

        return route


router = APIRouter(prefix="/v1/tenants/{tenant_id}/sync", tags=["records"], route_class=SyncRoute)


@router.post(
    "",
    response_model=SyncResponse,
    responses={
        202: {"model": SyncJobAccepted, "description": "job=true: the writes were queued"},
        **errors(*TENANT, *BODY, *QUOTA, *EMBEDS, *WRITES, *OFFBOARDING),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {media: NDJSON_BODY for media in sorted(MEDIA_TYPES)},
        }
    },
)
async def sync(
    tenant_id: WritableTenantDep,
    request: Request,
    pipeline: PipelineDep,
    quotas: QuotasDep,
    body: SyncRequest | None = None,
    job: Annotated[
        bool, Query(description="queue the writes as a job: 202 with its id and the drift")
    ] = False,
    scope: Annotated[
        str | None,
        Query(max_length=SCOPE_QUERY_MAX, description="JSON-lines form: the scope filter, JSON"),
    ] = None,
    dry_run: Annotated[bool | None, Query(description="JSON-lines form: report only")] = None,
    sample: Annotated[
        int | None, Query(ge=0, le=1000, description="JSON-lines form: ids shown per kind")
    ] = None,
) -> Any:
    """Upsert what is missing or changed, leave what is unchanged (no provider call), delete
    what is stored in the scope but absent from the set; `dry_run` only reports the drift.
    The set comes as a JSON body or as JSON lines (`Content-Type: application/x-ndjson`)."""
    limits = pipeline.settings.limits
    with SyncSet(limits) as sset:
        if is_ndjson(request.headers):
            where = _scope_query(scope)
            dry = bool(dry_run)
            shown = DEFAULT_SAMPLE if sample is None else sample
            await read_records(request.stream(), sset.add, limits.max_body_bytes)
        else:
            if body is None:
                raise ValidationError(
                    "a body is required: a JSON object {records, scope?, dry_run?, sample?}, "
                    "or JSON lines with Content-Type: application/x-ndjson"
                )
            if scope is not None or dry_run is not None or sample is not None:
                raise ValidationError(
                    "with a JSON body, give scope, dry_run and sample in the body (the query "
                    "parameters are for the JSON-lines form)"
                )
            where, dry, shown = body.scope, body.dry_run, body.sample
            for index, record in enumerate(body.records):
                sset.add(record, f"records[{index}]")
        admit = _admit(quotas, pipeline, tenant_id, get_state(request).writes)
        if job:
            if dry:
                raise ValidationError("a dry run changes nothing: it is not run as a job")
            accepted = await submit_sync_job(
                pipeline, tenant_id, sset, scope=where, sample=shown, admit=admit
            )
            return JSONResponse(SyncJobAccepted.model_validate(accepted).model_dump(), 202)
        report = await sync_set(
            pipeline, tenant_id, sset, scope=where, dry_run=dry, sample=shown, admit=admit
        )
    return SyncResponse.model_validate(report)


def _scope_query(scope: str | None) -> Any:
    if scope is None:
        return None
    try:
        return json.loads(scope)
    except ValueError:
        raise ValidationError("scope: not JSON (a filter, as in searches)") from None


def _admit(quotas: QuotaService, pipeline: Pipeline, tenant_id: str, gate: WriteGate) -> Any:
    """Called with the drift, before anything is written: an offboarding that began while
    the set streamed in refuses it (409), then the quotas judge what it would write."""

    async def admit(drift: Drift) -> None:
        gate.check_open(tenant_id)
        counts = drift.counts
        await quotas.admit_sync(
            pipeline,
            tenant_id,
            new=counts["missing"],
            upserts=counts["missing"] + counts["changed"],
            deletes=counts["extra"],
        )

    return admit
