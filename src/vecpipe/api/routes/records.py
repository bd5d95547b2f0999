"""Bulk vector operations (synchronous) and single records."""

from __future__ import annotations

from fastapi import APIRouter, Response

from vecpipe.api.deps import PipelineDep, QuotasDep, RecordIdDep, TenantDep
from vecpipe.api.json_body import JSONBodyRoute
from vecpipe.api.limits import check_records_request
from vecpipe.api.responses import BODY, EMBEDS, QUOTA, TENANT, WRITES, errors
from vecpipe.api.schemas import FailedRecord, RecordResponse, RecordsRequest, RecordsResponse
from vecpipe.models import check_record_id

router = APIRouter(
    prefix="/v1/tenants/{tenant_id}/records", tags=["records"], route_class=JSONBodyRoute
)


@router.post(
    "", response_model=RecordsResponse, responses=errors(*TENANT, *BODY, *QUOTA, *EMBEDS, *WRITES)
)
async def bulk_records(
    tenant_id: TenantDep, body: RecordsRequest, pipeline: PipelineDep, quotas: QuotasDep
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


@router.delete("/{record_id:anypath}", status_code=204, responses=errors(*TENANT, *EMBEDS, *WRITES))
async def delete_record(
    tenant_id: TenantDep, record_id: RecordIdDep, pipeline: PipelineDep
) -> Response:
    _valid_id(record_id, pipeline.settings.limits.max_id_length)
    await pipeline.get_record(tenant_id, record_id)  # 404 when absent
    await pipeline.delete(tenant_id, [record_id])
    return Response(status_code=204)


def _valid_id(record_id: str, max_length: int) -> None:
    from vecpipe.errors import ValidationError

    try:
        check_record_id(record_id, max_length)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None
