"""Explicit limits on what a caller may send, each answered with a 4xx JSON error."""

from __future__ import annotations

from vecpipe.api.schemas import RecordsRequest
from vecpipe.errors import LimitExceeded, ValidationError
from vecpipe.record_checks import check_record, check_record_id
from vecpipe.settings import Limits


def check_records_request(body: RecordsRequest, limits: Limits) -> None:
    """The request's size, then each record (record_checks.py: the checks every entry
    shares): one record that may not be stored refuses the request, before anything is."""
    count = len(body.upsert) + len(body.delete)
    if count == 0:
        raise ValidationError("nothing to do: give records in 'upsert' or ids in 'delete'")
    if count > limits.max_records_per_batch:
        raise LimitExceeded(
            f"{count} records in one request; the limit is {limits.max_records_per_batch}"
        )
    for record in body.upsert:
        check_record(record, limits)
    for record_id in body.delete:
        check_record_id(record_id, limits)


def check_query(query: str, limit: int, limits: Limits) -> None:
    if not query.strip():
        raise ValidationError("query must not be blank")
    if len(query.encode("utf-8", "surrogatepass")) > limits.max_query_bytes:
        raise LimitExceeded(f"query larger than {limits.max_query_bytes} bytes")
    if limit > limits.max_search_limit:
        raise ValidationError(f"limit must be at most {limits.max_search_limit}")
