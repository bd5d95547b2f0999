"""Browsing and bulk-deleting a tenant's records: list (paged), count, delete by filter.

Every read goes through the store's `visible(...)` scope, every filter through
`core.filters.parse_filter` (the one filter language). Pages come in the store's point-id
order, which does not move when records are written between two pages; the cursor handed
out is opaque (base64 of a version tag and the store's own offset), so a caller cannot
forge a position in another tenant's data: the offset only ever starts a scan that is
filtered by the caller's tenant.

A tenant that is migrating to another model (core/reindex.py) is read from its current
space; a delete by filter applies to the migration's target space too, else the copy would
bring the deleted records back.
"""

from __future__ import annotations

import base64
import binascii
import logging
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vecpipe import metrics
from vecpipe.core.filters import parse_filter
from vecpipe.core.reindex import space_of
from vecpipe.errors import ValidationError
from vecpipe.models import EmbeddingSpace, StoredRecord

if TYPE_CHECKING:
    from vecpipe.core.pipeline import Pipeline

log = logging.getLogger(__name__)

MAX_PAGE = 1000
DEFAULT_PAGE = 100
_CURSOR_TAG = "v1:"


@dataclass(frozen=True)
class Page:
    records: list[StoredRecord]
    next_cursor: str | None


def encode_cursor(offset: str | None) -> str | None:
    if offset is None:
        return None
    return base64.urlsafe_b64encode((_CURSOR_TAG + offset).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> str | None:
    """The store offset a cursor stands for; ValidationError for anything not handed out."""
    if cursor is None or cursor == "":
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not text.startswith(_CURSOR_TAG):
            raise ValueError
        offset = text[len(_CURSOR_TAG) :]
        return str(uuid.UUID(offset))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ValidationError(
            "malformed cursor: pass back the next_cursor of a previous page unchanged"
        ) from None


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE:
        raise ValidationError(f"limit must be between 1 and {MAX_PAGE}")
    return limit


async def list_records(
    pipeline: Pipeline,
    tenant_id: str,
    *,
    limit: int = DEFAULT_PAGE,
    cursor: str | None = None,
    filter: Any = None,
) -> Page:
    check_limit(limit)
    after = decode_cursor(cursor)
    where = parse_filter(filter)
    space = await _read_space(pipeline, tenant_id)
    records, offset = await pipeline.store.scroll_records(space, tenant_id, after, limit, where)
    metrics.count_lifecycle(tenant_id, "listed", len(records))
    return Page(records, encode_cursor(offset))


async def count_records(pipeline: Pipeline, tenant_id: str, filter: Any = None) -> int:
    where = parse_filter(filter)
    space = await _read_space(pipeline, tenant_id)
    return await pipeline.store.count_records(space, tenant_id, where)


async def delete_records(
    pipeline: Pipeline, tenant_id: str, filter: Any, *, dry_run: bool = False
) -> int:
    """Records the filter selects, deleted unless `dry_run`; refused without a filter, so
    that an empty request never wipes a tenant."""
    where = parse_filter(filter)
    if where is None:
        raise ValidationError(
            "a filter is required: deleting by filter refuses to select every record "
            "(to remove a whole tenant, an admin uses DELETE /v1/tenants/{tenant_id})"
        )
    space = await _read_space(pipeline, tenant_id)
    if dry_run:
        return await pipeline.store.count_records(space, tenant_id, where)
    deleted = 0
    for target in await _write_spaces(pipeline, tenant_id, space):
        n = await pipeline.store.delete_records(target, tenant_id, where)
        await pipeline.store.flush(target)
        deleted = n if target == space else deleted
    metrics.count_lifecycle(tenant_id, "deleted_by_filter", deleted)
    log.info("tenant %s: %d records deleted by filter", tenant_id, deleted)
    return deleted


async def _read_space(pipeline: Pipeline, tenant_id: str) -> EmbeddingSpace:
    space = await pipeline.space_of(tenant_id)
    await pipeline.store.ensure_space(space)
    return space


async def _write_spaces(
    pipeline: Pipeline, tenant_id: str, current: EmbeddingSpace
) -> list[EmbeddingSpace]:
    spaces = [current]
    reindexes = pipeline.reindexes
    if reindexes is not None:
        row = await reindexes.repo.get(tenant_id)
        if row is not None and row.state == "running":
            target = space_of(row.to_space)
            if target != current:
                await pipeline.store.ensure_space(target)
                spaces.append(target)
    return spaces
