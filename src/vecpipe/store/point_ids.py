"""Deterministic point ids: one per chunk of a record, the same on every write of it.

    id = uuid5(POINT_ID_NAMESPACE, json.dumps([tenant_id, record_id, chunk_index]))

A retry or a redelivery overwrites the same point, never adds one. Both Qdrant adapters use
these ids; the tenant is part of the id, yet a point read by id is still checked for its
tenant (`payload.belongs_to`): ids are never trusted alone.
"""

from __future__ import annotations

import hashlib
import uuid
from json.encoder import encode_basestring

from vecpipe.models import ChunkPoint

POINT_ID_NAMESPACE = uuid.UUID("6cbc386e-0fd6-4e1c-b339-cba29ccc0dc7")
"""Fixed forever: changing it would orphan every stored point."""
_POINT_ID_NAMESPACE_BYTES = POINT_ID_NAMESPACE.bytes


def point_id(tenant_id: str, record_id: str, chunk_index: int) -> str:
    """The deterministic id of one chunk point (a UUID string): uuid5 of the JSON text
    `json.dumps([tenant_id, record_id, chunk_index], ensure_ascii=False)`.

    Built by hand (one per chunk written): json.dumps and uuid.UUID cost ~4x as much.
    tests/store/test_point_ids.py holds this to the uuid5/json.dumps definition.
    """
    name = f"[{encode_basestring(tenant_id)}, {encode_basestring(record_id)}, {chunk_index:d}]"
    digest = bytearray(
        hashlib.sha1(_POINT_ID_NAMESPACE_BYTES + name.encode(), usedforsecurity=False).digest()[:16]
    )
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def point_id_of(point: ChunkPoint) -> str:
    return point_id(point.tenant_id, point.record_id, point.chunk_index)
