"""Bulk vector operations (synchronous) and single records."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from starlette.routing import Match
from starlette.types import Scope

from vecpipe.api.deps import PipelineDep, QuotasDep, RecordIdDep, TenantDep, WritableTenantDep
from vecpipe.api.json_body import JSONBodyRoute
from vecpipe.api.limits import check_records_request
from vecpipe.api.responses import BODY, EMBEDS, OFFBOARDING, QUOTA, TENANT, WRITES, errors
from vecpipe.api.schemas import (
    CountRequest,
    CountResponse,
    DeleteByFilterRequest,
    DeleteByFilterResponse,
    FailedRecord,
    ListedRecord,
    RecordResponse,
    RecordsPage,
    RecordsRequest,
    RecordsResponse,
)
from vecpipe.core.records import DEFAULT_PAGE, MAX_PAGE
from vecpipe.errors import ValidationError
from vecpipe.models import check_record_id

FILTER = "a filter as a URL-encoded JSON object, in the language of searches"
FILTER_QUERY_MAX = 16 * 1024

RESERVED_IDS = frozenset({"count", "delete"})


class RecordsRoute(JSONBodyRoute):
    """`.../records/count` and `.../records/delete` are the bulk routes' alone: the
    single-record routes never take them as record ids, so the path has one meaning and
    `Allow` names POST only (records with these ids are reached by listing)."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match != Match.NONE and child.get("path_params", {}).get("record_id") in RESERVED_IDS:
            return Match.NONE, {}
        return match, child


router = APIRouter(
    prefix="/v1/tenants/{tenant_id}/records", tags=["records"], route_class=RecordsRoute
)


@router.post(
    "",
    response_model=RecordsResponse,
    responses=errors(*TENANT, *BODY, *QUOTA, *EMBEDS, *WRITES, *OFFBOARDING),
)
async def bulk_records(
    tenant_id: WritableTenantDep, body: RecordsRequest, pipeline: PipelineDep, quotas: QuotasDep
) -> RecordsResponse:
    check_records_request(body, pipeline.settings.limits)
    await quotas.admit(pipeline, tenant_id, body.upsert, body.delete)
    result = await pipeline.apply(tenant_id, upserts=body.upsert, deletes=body.delete)
    return RecordsResponse(
        upserted=len(result.upserted),
        unchanged=len(result.unchanged),
        deleted=len(result.deleted),
        not_found=len(result.not_found),
        failed=[FailedRecord(id=i, error=e) for i, e in result.failed.items()],
    )


@router.get("", response_model=RecordsPage, responses=errors(*TENANT, *EMBEDS))
async def list_records(
    tenant_id: TenantDep,
    pipeline: PipelineDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    filter: Annotated[str | None, Query(max_length=FILTER_QUERY_MAX, description=FILTER)] = None,
    text: bool = True,
) -> RecordsPage:
    page = await pipeline.list_records(
        tenant_id, limit=limit, cursor=cursor, filter=_json_filter(filter)
    )
    return RecordsPage(
        records=[
            ListedRecord(
                id=r.record_id,
                metadata=r.metadata,
                version=r.version,
                text=r.text if text else None,
                expires_at=r.expiry_time(),
            )
            for r in page.records
        ],
        next_cursor=page.next_cursor,
    )


@router.post("/count", response_model=CountResponse, responses=errors(*TENANT, *BODY, *EMBEDS))
async def count_records(
    tenant_id: TenantDep, pipeline: PipelineDep, body: CountRequest | None = None
) -> CountResponse:
    where = body.filter if body is not None else None
    return CountResponse(records=await pipeline.count_records(tenant_id, where))


@router.post(
    "/delete",
    response_model=DeleteByFilterResponse,
    responses=errors(*TENANT, *BODY, *EMBEDS, *WRITES, *OFFBOARDING),
)
async def delete_by_filter(
    tenant_id: WritableTenantDep, body: DeleteByFilterRequest, pipeline: PipelineDep
) -> DeleteByFilterResponse:
    deleted = await pipeline.delete_records(tenant_id, body.filter, dry_run=body.dry_run)
    return DeleteByFilterResponse(deleted=deleted, dry_run=body.dry_run)


@router.get(
    "/{record_id:anypath}", response_model=RecordResponse, responses=errors(*TENANT, *EMBEDS)
)
async def get_record(
    tenant_id: TenantDep, record_id: RecordIdDep, pipeline: PipelineDep
) -> RecordResponse:
    _valid_id(record_id, pipeline.settings.limits.max_id_length)
    stored = await pipeline.get_record(tenant_id, record_id)
    return RecordResponse(
        id=stored.record_id,
        text=stored.text,
        metadata=stored.metadata,
        chunks=stored.chunk_count,
        content_hash=stored.content_hash,
    )


@router.delete(
    "/{record_id:anypath}",
    status_code=204,
    responses=errors(*TENANT, *EMBEDS, *WRITES, *OFFBOARDING),
)
async def delete_record(
    tenant_id: WritableTenantDep, record_id: RecordIdDep, pipeline: PipelineDep
) -> Response:
    _valid_id(record_id, pipeline.settings.limits.max_id_length)
    await pipeline.get_record(tenant_id, record_id)  # 404 when absent
    await pipeline.delete(tenant_id, [record_id])
    return Response(status_code=204)


def _json_filter(text: str | None) -> Any:
    """The `filter` query parameter: a JSON object, as in a search body."""
    if text is None or text == "":
        return None
    try:
        value = json.loads(text)
    except ValueError:
        raise ValidationError("filter must be a JSON object (URL-encoded)") from None
    if not isinstance(value, dict):
        raise ValidationError("filter must be a JSON object (URL-encoded)")
    return value


def _valid_id(record_id: str, max_length: int) -> None:
    try:
        check_record_id(record_id, max_length)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None
