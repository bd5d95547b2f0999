"""The payload layout both Qdrant adapters share, and the records read back from it.

Nothing here imports a Qdrant library. One point per chunk of a record (ids: point_ids.py):

    tenant_id     keyword index with is_tenant=True; every read, write and delete filters on it
    record_id     keyword index
    chunk_index   integer index (0-based)
    chunk_count   chunks of the record when it was written
    content_hash  hash of the record text: unchanged text is not re-embedded
    metadata      the record's JSON metadata (conditions on `metadata.<path>`: conditions.py)
    chunk_text    the text of this chunk
    text          the full record text, on chunk 0 only, and only where it differs from
                  chunk_text (a record of one chunk holding all its text stores it once)
    version       the record version written; writes only replace points of an older version
    expires_at    seconds since the epoch past which the record is invisible (absent: never)

Chunk 0 stands for the record: reads of a record (stored_records, scroll_records, counts of
records) read its chunk 0, and it is written last (versioned.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vecpipe.models import ChunkPoint, StoredRecord

TENANT_ID = "tenant_id"
RECORD_ID = "record_id"
CHUNK_INDEX = "chunk_index"
CHUNK_COUNT = "chunk_count"
CONTENT_HASH = "content_hash"
METADATA = "metadata"
CHUNK_TEXT = "chunk_text"
TEXT = "text"
VERSION = "version"
EXPIRES_AT = "expires_at"

SEARCH_FIELDS = [TENANT_ID, RECORD_ID, CHUNK_INDEX, METADATA, CHUNK_TEXT, TEXT]
"""Payload a search reads per chunk (not content_hash or chunk_count)."""


def chunk_payload(point: ChunkPoint) -> dict[str, Any]:
    """The payload stored with one chunk point."""
    payload: dict[str, Any] = {
        TENANT_ID: point.tenant_id,
        RECORD_ID: point.record_id,
        CHUNK_INDEX: point.chunk_index,
        CHUNK_COUNT: point.chunk_count,
        CONTENT_HASH: point.content_hash,
        METADATA: dict(point.metadata),
        CHUNK_TEXT: point.chunk_text,
        VERSION: point.version,
    }
    if point.expires_at is not None:
        payload[EXPIRES_AT] = point.expires_at
    if point.chunk_index == 0 and (point.chunk_count > 1 or point.record_text != point.chunk_text):
        payload[TEXT] = point.record_text
    return payload


def full_text(payload: Mapping[str, Any]) -> str | None:
    """The record's text from one of its chunks' payload; None when that chunk does not
    carry it (a later chunk: read chunk 0)."""
    if TEXT in payload:
        return str(payload[TEXT])
    if int(payload.get(CHUNK_INDEX, 0)) == 0:
        return str(payload.get(CHUNK_TEXT, ""))  # a record of one chunk: its chunk is its text
    return None


def metadata_payload(metadata: Mapping[str, Any], version: int) -> dict[str, Any]:
    """What a metadata-only update sets on every chunk of a record. Top-level keys are each
    replaced whole: the stored metadata object keeps none of the keys the new one lacks."""
    return {METADATA: dict(metadata), VERSION: version}


def belongs_to(payload: Mapping[str, Any] | None, tenant_id: str) -> bool:
    """Whether a point read by id is the tenant's: ids are never trusted alone."""
    return payload is not None and payload.get(TENANT_ID) == tenant_id


def stored_record(payload: Mapping[str, Any]) -> StoredRecord:
    """A StoredRecord from the payload of a record's chunk 0."""
    return StoredRecord(
        tenant_id=str(payload[TENANT_ID]),
        record_id=str(payload[RECORD_ID]),
        text=full_text(payload) or "",
        metadata=dict(payload.get(METADATA) or {}),
        content_hash=str(payload.get(CONTENT_HASH, "")),
        chunk_count=int(payload.get(CHUNK_COUNT, 1)),
        version=int(payload.get(VERSION, 0)),
        expires_at=_expiry(payload.get(EXPIRES_AT)),
    )


def _expiry(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
