"""A whole Edge search as one synchronous call, run as one job on the store's read thread.

`grouping.search_records` queries chunks (more while too few distinct records turn up), then
fetches the chunk 0 of records whose best chunk is another one. Each step as its own executor
job would cost a loop-to-thread round trip, and a wait behind other reads, per step; here the
steps run back to back in the thread. The retrieve of up to `limit` chunk 0s adds ~0.03 ms.
"""

from __future__ import annotations

from collections.abc import Coroutine, Mapping, Sequence
from typing import Any, TypeVar

import qdrant_edge as qe

from vecpipe.errors import NotFound
from vecpipe.models import SearchHit
from vecpipe.store import sparse
from vecpipe.store.edge import shard as edge_shard
from vecpipe.store.grouping import ChunkHit, search_records
from vecpipe.store.payload import RECORD_ID, SEARCH_FIELDS, belongs_to
from vecpipe.store.point_ids import point_id
from vecpipe.store.query import SearchQuery, mmr_candidates
from vecpipe.store.sparse import SPARSE_VECTOR

T = TypeVar("T")


def search(
    shard: qe.EdgeShard, vector: list[float] | None, flt: qe.Filter, query: SearchQuery
) -> list[SearchHit]:
    """`query`'s hits; `vector` and `flt` are its checked vector (None: the vector of the
    record `query.like`) and its compiled condition."""
    tenant_id = query.tenant_id
    if vector is None and query.mode != "keyword":
        vector = like_vector(shard, tenant_id, str(query.like))

    async def query_chunks(fetch: int) -> list[ChunkHit]:
        engine_query, prefetches = _engine_query(query, vector, flt, fetch)
        return edge_shard.query_chunks(
            shard, engine_query, flt, fetch, query.score_threshold, prefetches
        )

    async def fetch_chunk_zero(record_ids: Sequence[str]) -> dict[str, Mapping[str, Any]]:
        return chunk_zeros(shard, tenant_id, record_ids, SEARCH_FIELDS)

    hits = search_records(
        query_chunks,
        fetch_chunk_zero,
        tenant_id,
        query.limit,
        query.offset,
        query.mode,
        query.diversity > 0,
        later_chunk_penalty=query.later_chunk_penalty,
    )
    return _run_to_completion(hits)


def _engine_query(
    query: SearchQuery, vector: list[float] | None, flt: qe.Filter, fetch: int
) -> tuple[edge_shard.EngineQuery, list[qe.Prefetch] | None]:
    """The mode's query: nearest dense, nearest BM25, or RRF over both (each filtered)."""
    if query.mode == "dense" and vector is not None:
        if query.diversity:
            return qe.Mmr(vector, 1.0 - query.diversity, mmr_candidates(fetch)), None
        return qe.Query.Nearest(vector), None
    keyword = qe.Query.Nearest(sparse.query(str(query.text)), using=SPARSE_VECTOR)
    if query.mode == "keyword" or vector is None:
        return keyword, None
    prefetches = [
        qe.Prefetch(fetch, query=qe.Query.Nearest(vector), filter=flt),
        qe.Prefetch(fetch, query=keyword, filter=flt),
    ]
    return qe.Fusion.Rrf(k=query.fusion_k), prefetches


def like_vector(shard: qe.EdgeShard, tenant_id: str, record_id: str) -> list[float]:
    """The vector of the tenant's record's chunk 0, which a `like` query searches with."""
    found = edge_shard.retrieve_vector(shard, point_id(tenant_id, record_id, 0))
    if found is None or not belongs_to(found[0], tenant_id) or found[0].get(RECORD_ID) != record_id:
        raise NotFound(f"record not found in tenant {tenant_id}")
    return found[1]


def chunk_zeros(
    shard: qe.EdgeShard, tenant_id: str, record_ids: Sequence[str], fields: Sequence[str] | None
) -> dict[str, Mapping[str, Any]]:
    """Chunk 0 payloads of these records, by record id; other tenants' points dropped."""
    wanted = set(record_ids)
    ids = [point_id(tenant_id, record_id, 0) for record_id in record_ids]
    found: dict[str, Mapping[str, Any]] = {}
    for payload in edge_shard.retrieve_payloads(shard, ids, fields):
        record_id = payload.get(RECORD_ID)
        if belongs_to(payload, tenant_id) and record_id in wanted:
            found[str(record_id)] = payload
    return found


def _run_to_completion(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine whose awaits never suspend (its callbacks above are synchronous).

    This reuses the search algorithm shared with the Qdrant adapter without an event loop.
    """
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise RuntimeError("the search suspended: a callback awaited real I/O")
