"""The point layout both Qdrant adapters share: ids, payload, stored records, metadata filters.

Nothing here imports a Qdrant library; `edge.py` and `qdrant.py` turn these into their own
request types. One point per chunk of a record:

    id            uuid5(POINT_ID_NAMESPACE, [tenant_id, record_id, chunk_index]): a retry or a
                  redelivery overwrites the same point, never adds one
    tenant_id     keyword index with is_tenant=True; every read, write and delete filters on it
    record_id     keyword index
    chunk_index   integer index (0-based)
    chunk_count   chunks of the record when it was written
    content_hash  hash of the record text: unchanged text is not re-embedded
    metadata      the record's JSON metadata (filters match `metadata.<key>`)
    chunk_text    the text of this chunk
    text          the full record text, on chunk 0 only
    version       the record version written; writes only replace points of an older version
"""

from __future__ import annotations

import hashlib
import math
import re
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from json.encoder import encode_basestring
from typing import Any, TypeVar

from vecpipe.errors import LimitExceeded, ValidationError
from vecpipe.models import ChunkPoint, StoredRecord

POINT_ID_NAMESPACE = uuid.UUID("6cbc386e-0fd6-4e1c-b339-cba29ccc0dc7")
"""Fixed forever: changing it would orphan every stored point."""
_POINT_ID_NAMESPACE_BYTES = POINT_ID_NAMESPACE.bytes

TENANT_ID = "tenant_id"
RECORD_ID = "record_id"
CHUNK_INDEX = "chunk_index"
CHUNK_COUNT = "chunk_count"
CONTENT_HASH = "content_hash"
METADATA = "metadata"
CHUNK_TEXT = "chunk_text"
TEXT = "text"
VERSION = "version"

SEARCH_FIELDS = [TENANT_ID, RECORD_ID, CHUNK_INDEX, METADATA, CHUNK_TEXT, TEXT]
"""Payload a search reads per chunk (not content_hash or chunk_count)."""

MAX_FILTER_KEYS = 16
MAX_FILTER_VALUES = 256
_METADATA_KEY = re.compile(r"^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*$")
_INT64 = (-(2**63), 2**63 - 1)

FilterValue = str | int | bool
T = TypeVar("T")


def point_id(tenant_id: str, record_id: str, chunk_index: int) -> str:
    """The deterministic id of one chunk point (a UUID string): uuid5 of the JSON text
    `json.dumps([tenant_id, record_id, chunk_index], ensure_ascii=False)`.

    Built by hand (one per chunk written): json.dumps and uuid.UUID cost ~4x as much.
    tests/store/test_payload.py holds this to the uuid5/json.dumps definition.
    """
    name = f"[{encode_basestring(tenant_id)}, {encode_basestring(record_id)}, {chunk_index:d}]"
    digest = bytearray(
        hashlib.sha1(_POINT_ID_NAMESPACE_BYTES + name.encode(), usedforsecurity=False).digest()[:16]
    )
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


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
    if point.chunk_index == 0:
        payload[TEXT] = point.record_text
    return payload


def belongs_to(payload: Mapping[str, Any] | None, tenant_id: str) -> bool:
    """Whether a point read by id is the tenant's: ids are never trusted alone."""
    return payload is not None and payload.get(TENANT_ID) == tenant_id


def stored_record(payload: Mapping[str, Any]) -> StoredRecord:
    """A StoredRecord from the payload of a record's chunk 0."""
    return StoredRecord(
        tenant_id=str(payload[TENANT_ID]),
        record_id=str(payload[RECORD_ID]),
        text=str(payload.get(TEXT, payload.get(CHUNK_TEXT, ""))),
        metadata=dict(payload.get(METADATA) or {}),
        content_hash=str(payload.get(CONTENT_HASH, "")),
        chunk_count=int(payload.get(CHUNK_COUNT, 1)),
        version=int(payload.get(VERSION, 0)),
    )


@dataclass(frozen=True)
class MetadataMatch:
    """`metadata.<key>` equals the value, or one of the values when there are several."""

    path: str
    values: tuple[FilterValue, ...]


def parse_metadata_filter(metadata_filter: Mapping[str, Any] | None) -> list[MetadataMatch]:
    """Validate a `{key: value}` filter; a list value matches any of its items.

    Keys are dotted paths of `[A-Za-z0-9_-]` segments (`a.b` reaches a nested object);
    values are strings, integers or booleans. A stored list matches when any item does.
    """
    if not metadata_filter:
        return []
    if len(metadata_filter) > MAX_FILTER_KEYS:
        raise LimitExceeded(f"a filter may name at most {MAX_FILTER_KEYS} keys")
    return [_parse_match(key, value) for key, value in metadata_filter.items()]


def _parse_match(key: object, value: object) -> MetadataMatch:
    if not isinstance(key, str) or not _METADATA_KEY.match(key):
        raise ValidationError(
            "filter keys are dotted names of letters, digits, '_' and '-' (got an invalid key)"
        )
    items = list(value) if isinstance(value, list | tuple) else [value]
    if not items:
        raise ValidationError(f"filter key {key!r}: an empty list matches nothing")
    if len(items) > MAX_FILTER_VALUES:
        raise LimitExceeded(f"filter key {key!r}: at most {MAX_FILTER_VALUES} values")
    return MetadataMatch(f"{METADATA}.{key}", tuple(_scalar(key, item) for item in items))


def _scalar(key: str, value: object) -> FilterValue:
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        if not _INT64[0] <= value <= _INT64[1]:
            raise ValidationError(f"filter key {key!r}: integer out of 64-bit range")
        return value
    raise ValidationError(
        f"filter key {key!r}: values are strings, integers or booleans, not {type(value).__name__}"
    )


def checked_vector(vector: Sequence[float], dimension: int) -> list[float]:
    """A query or point vector as floats, refused when its dimension or a value is wrong."""
    if len(vector) != dimension:
        raise ValidationError(f"vector has {len(vector)} dimensions, the space has {dimension}")
    values = [float(value) for value in vector]
    if not all(math.isfinite(value) for value in values):
        raise ValidationError("vector has a non-finite value")
    return values


OLDER_VERSIONS_GROUP = 16
"""Records per older-versions delete. Its filter is one clause per record and costs grow
with the square of their number (Edge, 256 one-chunk records: one delete 217 ms, 16 deletes
of 16 25 ms); groups of 16 keep it linear."""


def batched(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def write_batches(
    points: Sequence[ChunkPoint], size: int
) -> Iterator[tuple[int, Sequence[ChunkPoint]]]:
    """Points in batches of one version each: a conditional write carries one version."""
    by_version: dict[int, list[ChunkPoint]] = {}
    for point in points:
        by_version.setdefault(point.version, []).append(point)
    for version, same_version in by_version.items():
        for batch in batched(same_version, size):
            yield version, batch


def point_id_of(point: ChunkPoint) -> str:
    return point_id(point.tenant_id, point.record_id, point.chunk_index)
