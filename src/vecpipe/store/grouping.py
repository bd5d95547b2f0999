"""One search hit per record, for any backend that returns scored chunk points.

A record is split into chunks and each chunk is a point, so the nearest points can be many
chunks of few records. `search_records` over-fetches chunks (limit x 4, growing while too few
distinct records turn up), keeps each record's best chunk, and reads the full text of the
records whose best chunk is not chunk 0 with one batched fetch of their chunk 0s.

The top `limit` records are exact whenever `limit` distinct records are found: a record not
seen among the best F chunks has no chunk scoring above the F-th, so it ranks below them all.

`later_chunk_penalty` is a prior for a record's first chunk: every later chunk's score is
lowered by it before the best is kept. A long record has many chunks, so many chances to
match a query by accident; the first chunk is where a record says what it is about
(bench/README.md §7 measures it). With a penalty the top is exact up to it: a record
unseen among the best F chunks could score at most the F-th, and a seen one as low as the
F-th minus the penalty; the over-fetch keeps that rare.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from vecpipe.models import SearchHit
from vecpipe.store.payload import (
    CHUNK_INDEX,
    CHUNK_TEXT,
    METADATA,
    RECORD_ID,
    belongs_to,
    full_text,
)

OVERFETCH = 4
MAX_FETCH = 4096


@dataclass(frozen=True)
class ChunkHit:
    """One scored chunk point with (at least) the payload fields in `SEARCH_FIELDS`."""

    score: float
    payload: Mapping[str, Any]

    @property
    def record_id(self) -> str:
        return str(self.payload[RECORD_ID])

    @property
    def chunk_index(self) -> int:
        return int(self.payload.get(CHUNK_INDEX, 0))


QueryChunks = Callable[[int], Awaitable[Sequence[ChunkHit]]]
"""Given a chunk limit, the tenant's best chunk points, best first."""

FetchChunkZero = Callable[[Sequence[str]], Awaitable[Mapping[str, Mapping[str, Any]]]]
"""Given record ids, the payloads of their chunk 0 that belong to the tenant, by record id."""


async def search_records(
    query_chunks: QueryChunks,
    fetch_chunk_zero: FetchChunkZero,
    tenant_id: str,
    limit: int,
    offset: int = 0,
    mode: str = "dense",
    engine_order: bool = False,
    *,
    later_chunk_penalty: float = 0.0,
) -> list[SearchHit]:
    """The best `limit` records after the first `offset`, each with its best chunk, best first.
    With `engine_order`, "best" is the engine's order, not the score's (MMR ranks by relevance
    and novelty together, and its scores are relevance alone)."""
    if limit <= 0:
        return []
    best = await best_chunks(
        query_chunks, tenant_id, offset + limit, engine_order, later_chunk_penalty
    )
    best = best[offset:]
    missing = [hit.record_id for hit in best if full_text(hit.payload) is None]
    chunk_zeros = await fetch_chunk_zero(missing) if missing else {}
    return [_search_hit(hit, chunk_zeros.get(hit.record_id), mode) for hit in best]


async def best_chunks(
    query_chunks: QueryChunks,
    tenant_id: str,
    limit: int,
    engine_order: bool = False,
    later_chunk_penalty: float = 0.0,
) -> list[ChunkHit]:
    """Each record's best chunk among the nearest chunks, fetching more while needed."""
    fetch = limit * OVERFETCH
    max_fetch = max(MAX_FETCH, fetch)
    while True:
        hits = await query_chunks(fetch)
        best = best_per_record(hits, tenant_id, engine_order, later_chunk_penalty)
        if len(best) >= limit or len(hits) < fetch or fetch >= max_fetch:
            return best[:limit]
        fetch = min(fetch * OVERFETCH, max_fetch)


def best_per_record(
    hits: Iterable[ChunkHit],
    tenant_id: str,
    engine_order: bool = False,
    later_chunk_penalty: float = 0.0,
) -> list[ChunkHit]:
    """The first (best) hit of each record, best first; another tenant's points are dropped.

    With a penalty, a chunk after the first scores that much less (and is reported so)."""
    if later_chunk_penalty:
        hits = [_penalised(hit, later_chunk_penalty) for hit in hits]
    ranked = list(hits) if engine_order else sorted(hits, key=lambda hit: -hit.score)
    seen: dict[str, ChunkHit] = {}
    for hit in ranked:
        if belongs_to(hit.payload, tenant_id) and hit.record_id not in seen:
            seen[hit.record_id] = hit
    return list(seen.values())


def _penalised(hit: ChunkHit, penalty: float) -> ChunkHit:
    return replace(hit, score=hit.score - penalty) if hit.chunk_index > 0 else hit


def _search_hit(best: ChunkHit, chunk_zero: Mapping[str, Any] | None, mode: str) -> SearchHit:
    chunk_text = str(best.payload.get(CHUNK_TEXT, ""))
    text = full_text(best.payload)
    if text is None and chunk_zero is not None:
        text = full_text(chunk_zero)
    return SearchHit(
        id=best.record_id,
        score=best.score,
        text=chunk_text if text is None else text,  # no chunk 0 stored: this chunk's text
        metadata=dict(best.payload.get(METADATA) or {}),
        chunk=chunk_text,
        chunk_index=best.chunk_index,
        mode=mode,
    )
