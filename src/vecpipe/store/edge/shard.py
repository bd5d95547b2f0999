"""Synchronous Qdrant Edge pieces: shard config, open/create, filters, calls.

Everything here blocks (and holds the GIL while Edge works): `EdgeStore` runs it on its own
executor threads (one for writes, one for reads), never on the event loop.

Indexing, measured on qdrant-edge-py 0.9.0, 384-d, 2 CPUs shared with other work (load ~5).
Edge never optimizes by itself: writes land in an appendable plain segment, searched brute
force (20k points: ~2-3 ms a query), until `EdgeShard.optimize()` builds HNSW for segments
over `indexing_threshold`. A first optimize of 20k points took 10-15 s. Optimizing after
every 10k new points up to 50k, Qdrant's defaults (about 2 segments, merged on every run)
took 10, 16, 12, 30, 19 s per run, growing with the shard; with up to 8 segments of at most
32 MB each, runs took 7-10 s and stayed flat, and searches at 50k were no slower (p50
2.6 ms vs 3.0 ms, limit 10 with a tenant filter). Hence the optimizer settings below.
`prevent_unoptimized` stays off: with it, fresh writes would be invisible until optimized.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import numpy
import qdrant_edge as qe

from vecpipe.store.grouping import ChunkHit
from vecpipe.store.payload import (
    CHUNK_INDEX,
    RECORD_ID,
    SEARCH_FIELDS,
    TENANT_ID,
    VERSION,
    MetadataMatch,
)

INDEXING_THRESHOLD_KB = 10_000
"""Segments larger than this get an HNSW index on optimize (~6.5k vectors at 384-d)."""
MAX_SEGMENT_KB = 32_000
"""Merges stop at this size (~21k vectors at 384-d), bounding the cost of one optimize run."""
SEGMENT_NUMBER = 8
"""Segments kept before the optimizer merges small ones."""

_PAYLOAD_INDEXES: dict[str, qe.KeywordIndexParams | qe.IntegerIndexParams] = {
    TENANT_ID: qe.KeywordIndexParams(is_tenant=True),
    RECORD_ID: qe.KeywordIndexParams(),
    CHUNK_INDEX: qe.IntegerIndexParams(lookup=True, range=True),
}


def shard_config(dimension: int) -> qe.EdgeConfig:
    return qe.EdgeConfig(
        vectors=qe.EdgeVectorParams(size=dimension, distance=qe.Distance.Cosine),
        hnsw_config=qe.HnswIndexConfig(
            m=16, ef_construct=100, full_scan_threshold=INDEXING_THRESHOLD_KB
        ),
        optimizers=qe.EdgeOptimizersConfig(
            indexing_threshold=INDEXING_THRESHOLD_KB,
            max_segment_size=MAX_SEGMENT_KB,
            default_segment_number=SEGMENT_NUMBER,
            prevent_unoptimized=False,
        ),
    )


def open_shard(path: Path, dimension: int) -> qe.EdgeShard:
    """Load the shard at `path` (checking its dimension), or create it; add missing indexes.

    Fails while another EdgeShard (in any process) has the directory open: its WAL is locked.
    """
    config = shard_config(dimension)
    if (path / "edge_config.json").exists():
        shard = qe.EdgeShard.load(str(path), config)
    else:
        path.mkdir(parents=True, exist_ok=True)
        shard = qe.EdgeShard.create(str(path), config)
    try:
        existing = shard.info().payload_schema
        for field, params in _PAYLOAD_INDEXES.items():
            if field not in existing:
                shard.update(qe.UpdateOperation.create_field_index(field, params))
    except BaseException:
        shard.close()
        raise
    return shard


def close_shard(shard: qe.EdgeShard) -> None:
    try:
        shard.flush()
    finally:
        shard.close()


# ---------------------------------------------------------------------------- filters


def tenant_filter(tenant_id: str, *conditions: qe.FieldCondition | qe.Filter) -> qe.Filter:
    return qe.Filter(must=[_equals(TENANT_ID, tenant_id), *conditions])


def records_filter(tenant_id: str, record_ids: Sequence[str]) -> qe.Filter:
    any_record = qe.FieldCondition(key=RECORD_ID, match=qe.MatchAny(list(record_ids)))
    return tenant_filter(tenant_id, any_record)


def chunks_from_filter(tenant_id: str, record_id: str, first_chunk: int, version: int) -> qe.Filter:
    """The record's chunks whose index is >= first_chunk, of versions up to `version`."""
    return tenant_filter(
        tenant_id,
        _equals(RECORD_ID, record_id),
        qe.FieldCondition(key=CHUNK_INDEX, range=qe.RangeFloat(gte=first_chunk)),
        not_newer_than(version),
    )


def search_filter(tenant_id: str, matches: Sequence[MetadataMatch]) -> qe.Filter:
    return tenant_filter(tenant_id, *(_metadata_condition(match) for match in matches))


def _equals(key: str, value: str | int | bool) -> qe.FieldCondition:
    if isinstance(value, bool):
        # Edge 0.9.0 turns MatchValue(True) into the integer 1, which never matches a JSON
        # boolean; a numpy bool survives the conversion as a boolean.
        value = cast(bool, numpy.bool_(value))
    return qe.FieldCondition(key=key, match=qe.MatchValue(value))


def _metadata_condition(match: MetadataMatch) -> qe.FieldCondition | qe.Filter:
    if len(match.values) == 1:
        return _equals(match.path, match.values[0])
    strings = [value for value in match.values if isinstance(value, str)]
    integers = [v for v in match.values if isinstance(v, int) and not isinstance(v, bool)]
    booleans = sorted({value for value in match.values if isinstance(value, bool)})
    any_of: list[qe.FieldCondition] = [_equals(match.path, value) for value in booleans]
    if strings:
        any_of.append(qe.FieldCondition(key=match.path, match=qe.MatchAny(strings)))
    if integers:
        any_of.append(qe.FieldCondition(key=match.path, match=qe.MatchAny(integers)))
    return any_of[0] if len(any_of) == 1 else qe.Filter(should=list(any_of))


# ---------------------------------------------------------------------------- calls
# Writes are built as UpdateOperations, which one shard's `update` does not consume: an online
# optimize applies the same operation to the shard and to its copy (edge_rebuild.py).


def upsert_op(
    points: Sequence[tuple[str, list[float], dict[str, Any]]], version: int
) -> qe.UpdateOperation:
    """Insert new points; replace existing ones only where their version is not newer."""
    batch = [qe.Point(pid, vector, payload) for pid, vector, payload in points]
    return qe.UpdateOperation.upsert_points(batch, not_newer_than(version))


def not_newer_than(version: int) -> qe.Filter:
    """Points written before versions existed have none: they count as oldest."""
    return qe.Filter(
        should=[
            qe.IsEmptyCondition(VERSION),
            qe.FieldCondition(key=VERSION, range=qe.RangeFloat(lte=float(version))),
        ]
    )


def older_versions_filter(tenant_id: str, versions: Mapping[str, int]) -> qe.Filter:
    """Points of each named record whose version is older than the one given for it."""
    per_record: list[qe.ConditionType] = [
        qe.Filter(
            must=[_equals(RECORD_ID, record_id)],
            should=[
                qe.IsEmptyCondition(VERSION),
                qe.FieldCondition(key=VERSION, range=qe.RangeFloat(lt=float(version))),
            ],
        )
        for record_id, version in versions.items()
    ]
    return tenant_filter(tenant_id, qe.Filter(should=per_record))


def version_is(version: int) -> qe.FieldCondition:
    return qe.FieldCondition(
        key=VERSION, range=qe.RangeFloat(gte=float(version), lte=float(version))
    )


def record_filter(
    tenant_id: str, record_id: str, *conditions: qe.FieldCondition | qe.Filter
) -> qe.Filter:
    return tenant_filter(tenant_id, _equals(RECORD_ID, record_id), *conditions)


def query_chunks(
    shard: qe.EdgeShard, vector: list[float], flt: qe.Filter, limit: int
) -> list[ChunkHit]:
    request = qe.QueryRequest(
        limit=limit,
        query=qe.Query.Nearest(vector),
        filter=flt,
        with_payload=list(SEARCH_FIELDS),
        with_vector=False,
    )
    return [ChunkHit(point.score, point.payload or {}) for point in shard.query(request)]


def retrieve_payloads(
    shard: qe.EdgeShard, point_ids: Sequence[str], fields: Sequence[str] | None = None
) -> list[Mapping[str, Any]]:
    selector: bool | list[str] = list(fields) if fields is not None else True
    records = shard.retrieve(list(point_ids), selector, False)
    return [record.payload for record in records if record.payload is not None]


def delete_op(flt: qe.Filter) -> qe.UpdateOperation:
    return qe.UpdateOperation.delete_points_by_filter(flt)


def set_payload_op(flt: qe.Filter, payload: dict[str, Any]) -> qe.UpdateOperation:
    """Set top-level payload keys (each replaced whole) on the matching points."""
    return qe.UpdateOperation.set_payload_by_filter(flt, payload)


def count(shard: qe.EdgeShard, flt: qe.Filter | None) -> int:
    return shard.count(qe.CountRequest(exact=True, filter=flt))


def chunk_zeros_filter(tenant_id: str) -> qe.Filter:
    return tenant_filter(tenant_id, _equals(CHUNK_INDEX, 0))


def scroll_payloads(
    shard: qe.EdgeShard, flt: qe.Filter, cursor: str | None, limit: int
) -> tuple[list[Mapping[str, Any]], str | None]:
    """One page of payloads in point-id order, and where the next page starts."""
    request = qe.ScrollRequest(
        offset=cursor, limit=limit, filter=flt, with_payload=True, with_vector=False
    )
    records, next_id = shard.scroll(request)
    payloads: list[Mapping[str, Any]] = [r.payload for r in records if r.payload is not None]
    return payloads, None if next_id is None else str(next_id)
