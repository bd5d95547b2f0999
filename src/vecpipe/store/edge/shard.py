"""Synchronous Qdrant Edge pieces: shard config, open/create, calls (filters: filters.py).

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

Optimized segments keep their HNSW graph and payload indexes on disk (memory-mapped, served
from the page cache), the vectors in memory, because loading a shard holds the GIL, and an
online optimize loads its copy in this process (rebuild.py). Measured at 100k points (384-d,
2 chunks a record, 4 payload indexes, one optimize), a load took 236-277 ms all in memory,
158-185 ms so, 65-72 ms with the vectors on disk too (the engine populates in-memory vectors
while holding the GIL). Vectors on disk made searches slower, though: HTTP search p99 idle
49-59 ms in five runs against 34-39 ms with them in memory (the search_latency scenario),
for no gain under ingest, so they stay in memory. A shard made before loads with this config,
which Edge saves: its next optimize writes its graph on disk; its payload indexes stay in
memory.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import qdrant_edge as qe

from vecpipe.durable import fsync_directory_files, fsync_tree
from vecpipe.store import sparse
from vecpipe.store.conditions import not_newer_than
from vecpipe.store.edge.filters import compile_filter
from vecpipe.store.grouping import ChunkHit
from vecpipe.store.payload import (
    CHUNK_INDEX,
    CHUNK_TEXT,
    EXPIRES_AT,
    RECORD_ID,
    SEARCH_FIELDS,
    TENANT_ID,
)
from vecpipe.store.sparse import DENSE_VECTOR, SPARSE_VECTOR

WAL_DIR = "wal"
"""Where a shard keeps its write-ahead log (qdrant-edge-py 0.9: segment files `open-N`,
`closed-N` and `first-index`)."""

EngineQuery = qe.Query | qe.Fusion.Rrf | qe.Mmr
"""What a query request ranks by: nearest points, a fusion of prefetches, or MMR."""

INDEXING_THRESHOLD_KB = 10_000
"""Segments larger than this get an HNSW index on optimize (~6.5k vectors at 384-d)."""
MAX_SEGMENT_KB = 32_000
"""Merges stop at this size (~21k vectors at 384-d), bounding the cost of one optimize run."""
SEGMENT_NUMBER = 8
"""Segments kept before the optimizer merges small ones."""

_PAYLOAD_INDEXES: dict[str, qe.KeywordIndexParams | qe.IntegerIndexParams | qe.FloatIndexParams] = {
    TENANT_ID: qe.KeywordIndexParams(is_tenant=True, on_disk=True),
    RECORD_ID: qe.KeywordIndexParams(on_disk=True),
    CHUNK_INDEX: qe.IntegerIndexParams(lookup=True, range=True, on_disk=True),
    EXPIRES_AT: qe.FloatIndexParams(on_disk=True),
}
"""On disk (memory-mapped), as the HNSW graph is (`shard_config`): see the module's
docstring. Shards made before keep the in-memory indexes they were made with."""


def shard_config(dimension: int, keyword: bool = True) -> qe.EdgeConfig:
    """New shards get a BM25 sparse vector (sparse.py) beside the dense one; shards made
    before it existed are loaded without one (Edge refuses a config they do not match)."""
    sparse = {SPARSE_VECTOR: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)}
    return qe.EdgeConfig(
        vectors=qe.EdgeVectorParams(size=dimension, distance=qe.Distance.Cosine),
        sparse_vectors=sparse if keyword else None,
        hnsw_config=qe.HnswIndexConfig(
            m=16, ef_construct=100, full_scan_threshold=INDEXING_THRESHOLD_KB, on_disk=True
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
    if (path / "edge_config.json").exists():
        shard = qe.EdgeShard.load(str(path), shard_config(dimension, has_keyword_index(path)))
    else:
        path.mkdir(parents=True, exist_ok=True)
        shard = qe.EdgeShard.create(str(path), shard_config(dimension))
    try:
        existing = shard.info().payload_schema
        for field, params in _PAYLOAD_INDEXES.items():
            if field not in existing:
                shard.update(qe.UpdateOperation.create_field_index(field, params))
    except BaseException:
        shard.close()
        raise
    return shard


def has_keyword_index(path: Path) -> bool:
    """Whether the shard at `path` holds BM25 sparse vectors (shards made before do not)."""
    config = json.loads((path / "edge_config.json").read_text())
    return SPARSE_VECTOR in (config.get("sparse_vectors") or {})


def sync_wal(path: Path) -> None:
    """Make every write the shard at `path` took so far survive a power loss, without
    Edge's flush: fsync its WAL files.

    `EdgeShard.update` appends each operation to the shard's WAL (memory-mapped segment
    files under `wal/`) before applying it, and a load replays the WAL past what the
    segments persisted: a synced WAL is a durable write, as `wait=true` is in Qdrant server,
    which fsyncs its WAL per update and flushes segments on a timer. `EdgeShard.flush` does
    both (WAL, then every segment's files) holding the GIL throughout, 40-300 ms; this holds
    it only between fsyncs.
    """
    fsync_directory_files(path / WAL_DIR)


def flush_shard(shard: qe.EdgeShard, path: Path | None) -> None:
    """Edge's flush of the shard at `path`, its files fsynced from here first.

    Edge's flush holds the GIL while the kernel writes the shard's dirty pages out; after
    a burst of writes synced through the WAL only (`sync_wal`) that is seconds' worth of
    segment pages (measured: 458 ms for 100k fresh points). An fsync from Python frees the
    GIL while it waits, so Edge's flush then finds little left to write."""
    if path is not None:
        fsync_tree(path)
    shard.flush()


def close_shard(shard: qe.EdgeShard, path: Path | None = None) -> None:
    try:
        flush_shard(shard, path)
    finally:
        shard.close()


# ---------------------------------------------------------------------------- calls
# Writes are built as UpdateOperations, which one shard's `update` does not consume: an online
# optimize applies the same operation to the shard and to its copy (rebuild.py).


def upsert_op(
    points: Sequence[tuple[str, list[float], dict[str, Any]]], version: int, keyword: bool = False
) -> qe.UpdateOperation:
    """Insert new points; replace existing ones only where their version is not newer.
    With `keyword`, each point gets the BM25 vector of its chunk text too (built here, on
    the write thread)."""
    batch = [
        qe.Point(pid, _vectors(vector, payload) if keyword else vector, payload)
        for pid, vector, payload in points
    ]
    return qe.UpdateOperation.upsert_points(batch, compile_filter(not_newer_than(version)))


def _vectors(dense: list[float], payload: Mapping[str, Any]) -> dict[str, Any]:
    return {DENSE_VECTOR: dense, SPARSE_VECTOR: sparse.document(str(payload.get(CHUNK_TEXT, "")))}


def query_chunks(
    shard: qe.EdgeShard,
    query: EngineQuery,
    flt: qe.Filter,
    limit: int,
    score_threshold: float | None = None,
    prefetches: list[qe.Prefetch] | None = None,
) -> list[ChunkHit]:
    request = qe.QueryRequest(
        limit=limit,
        query=query,  # type: ignore[arg-type]  # the stub names Fusion, not Fusion.Rrf
        prefetches=prefetches,
        filter=flt,
        with_payload=list(SEARCH_FIELDS),
        with_vector=False,
        score_threshold=score_threshold,
    )
    return [ChunkHit(point.score, point.payload or {}) for point in shard.query(request)]


def retrieve_vector(
    shard: qe.EdgeShard, point_id: str
) -> tuple[Mapping[str, Any], list[float]] | None:
    """One point's payload (tenant and record id) and dense vector; None when missing."""
    records = shard.retrieve([point_id], [TENANT_ID, RECORD_ID], True)
    if not records or records[0].payload is None:
        return None
    stored = records[0].vector
    vector = stored.get(DENSE_VECTOR) if isinstance(stored, dict) else stored
    if not isinstance(vector, list):
        return None
    return records[0].payload, [float(v) for v in vector if isinstance(v, int | float)]


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


def facet_counts(shard: qe.EdgeShard, key: str, flt: qe.Filter, limit: int) -> dict[str, int]:
    """Points per value of a keyword field, exact (the `limit` most frequent values)."""
    request = qe.FacetRequest(key, limit=limit, exact=True, filter=flt)
    return {str(hit.value): hit.count for hit in shard.facet(request)}


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
