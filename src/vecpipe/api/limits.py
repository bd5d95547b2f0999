"""Explicit limits on what a caller may send, each answered with a 4xx JSON error."""

from __future__ import annotations

import json

from vecpipe.api.schemas import RecordsRequest
from vecpipe.errors import LimitExceeded, ValidationError
from vecpipe.settings import Limits


def check_records_request(body: RecordsRequest, limits: Limits) -> None:
    count = len(body.upsert) + len(body.delete)
    if count == 0:
        raise ValidationError("nothing to do: give records in 'upsert' or ids in 'delete'")
    if count > limits.max_records_per_batch:
        raise LimitExceeded(
            f"{count} records in one request; the limit is {limits.max_records_per_batch}"
        )
    for record in body.upsert:
        _check_id(record.id, limits)
        if not record.text.strip():
            raise ValidationError(f"record {record.id!r}: text must not be blank")
        if len(record.text.encode("utf-8", "surrogatepass")) > limits.max_text_bytes:
            raise LimitExceeded(
                f"record {record.id!r}: text larger than {limits.max_text_bytes} bytes"
            )
        metadata_size = len(json.dumps(record.metadata, ensure_ascii=False).encode())
        if metadata_size > limits.max_metadata_bytes:
            raise LimitExceeded(
                f"record {record.id!r}: metadata larger than {limits.max_metadata_bytes} bytes"
            )
    for record_id in body.delete:
        _check_id(record_id, limits)


def check_query(query: str, limit: int, limits: Limits) -> None:
    if not query.strip():
        raise ValidationError("query must not be blank")
    if len(query.encode("utf-8", "surrogatepass")) > limits.max_query_bytes:
        raise LimitExceeded(f"query larger than {limits.max_query_bytes} bytes")
    if limit > limits.max_search_limit:
        raise ValidationError(f"limit must be at most {limits.max_search_limit}")


def _check_id(record_id: str, limits: Limits) -> None:
    from vecpipe.models import check_record_id

    try:
        check_record_id(record_id, limits.max_id_length)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None
