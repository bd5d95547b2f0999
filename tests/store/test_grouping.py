"""One hit per record over any backend: over-fetching, best chunk, chunk-0 texts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from vecpipe.store.grouping import MAX_FETCH, ChunkHit, best_per_record, search_records


def hit(record: str, chunk: int, score: float, tenant: str = "t") -> ChunkHit:
    payload: dict[str, Any] = {
        "tenant_id": tenant,
        "record_id": record,
        "chunk_index": chunk,
        "chunk_text": f"{record}#{chunk}",
        "metadata": {"r": record},
    }
    if chunk == 0:
        payload["text"] = f"{record} full"
    return ChunkHit(score, payload)


class FakeBackend:
    def __init__(self, hits: list[ChunkHit]) -> None:
        self.hits = sorted(hits, key=lambda h: -h.score)
        self.fetches: list[int] = []
        self.chunk_zero_calls: list[list[str]] = []

    async def query(self, limit: int) -> list[ChunkHit]:
        self.fetches.append(limit)
        return self.hits[:limit]

    async def chunk_zero(self, record_ids: Sequence[str]) -> Mapping[str, Mapping[str, Any]]:
        self.chunk_zero_calls.append(list(record_ids))
        return {h.record_id: h.payload for h in self.hits if h.chunk_index == 0}


def test_best_per_record_keeps_the_first_and_drops_other_tenants() -> None:
    hits = [hit("a", 1, 0.5), hit("a", 0, 0.9), hit("b", 0, 0.7), hit("c", 0, 0.95, "other")]
    assert [(h.record_id, h.chunk_index) for h in best_per_record(hits, "t")] == [
        ("a", 0),
        ("b", 0),
    ]


async def test_fetches_more_until_enough_records() -> None:
    flood = [hit("flood", i, 1.0 - i / 1000) for i in range(1, 100)]
    backend = FakeBackend([*flood, hit("flood", 0, 0.1), hit("x", 0, 0.5), hit("y", 2, 0.4)])
    results = await search_records(backend.query, backend.chunk_zero, "t", 3)
    assert backend.fetches == [12, 48, 192]
    assert [(r.id, r.chunk, r.text) for r in results] == [
        ("flood", "flood#1", "flood full"),
        ("x", "x#0", "x full"),
        ("y", "y#2", "y#2"),  # no chunk 0 stored: the chunk's own text
    ]
    assert backend.chunk_zero_calls == [["flood", "y"]]


async def test_fetching_stops_at_the_cap_or_when_exhausted() -> None:
    backend = FakeBackend([hit("only", i, 1.0 - i / 10_000) for i in range(MAX_FETCH + 10)])
    assert [r.id for r in await search_records(backend.query, backend.chunk_zero, "t", 5)] == [
        "only"
    ]
    assert backend.fetches[-1] == MAX_FETCH
    small = FakeBackend([hit("a", 0, 0.5)])
    assert len(await search_records(small.query, small.chunk_zero, "t", 5)) == 1
    assert small.fetches == [20]
    assert small.chunk_zero_calls == []


def test_a_later_chunk_penalty_favours_the_first_chunk_and_reports_its_score() -> None:
    hits = [hit("long", 3, 0.80), hit("long", 0, 0.60), hit("short", 0, 0.75)]
    plain = best_per_record(hits, "t")
    assert [(h.record_id, h.chunk_index, h.score) for h in plain] == [
        ("long", 3, 0.80),
        ("short", 0, 0.75),
    ]
    penalised = best_per_record(hits, "t", later_chunk_penalty=0.1)
    assert [(h.record_id, h.chunk_index, round(h.score, 6)) for h in penalised] == [
        ("short", 0, 0.75),
        ("long", 3, 0.70),  # still its best chunk, 0.1 lower: one hit per record
    ]


async def test_search_records_passes_the_penalty_on() -> None:
    backend = FakeBackend([hit("long", 2, 0.9), hit("long", 0, 0.1), hit("short", 0, 0.85)])
    results = await search_records(
        backend.query, backend.chunk_zero, "t", 2, later_chunk_penalty=0.2
    )
    assert [(r.id, round(r.score, 6)) for r in results] == [("short", 0.85), ("long", 0.7)]


async def test_a_single_chunk_record_needs_no_chunk_zero_fetch() -> None:
    single = ChunkHit(
        0.9, {"tenant_id": "t", "record_id": "s", "chunk_index": 0, "chunk_text": "whole"}
    )
    backend = FakeBackend([single])
    [result] = await search_records(backend.query, backend.chunk_zero, "t", 1)
    assert (result.text, result.chunk) == ("whole", "whole")
    assert backend.chunk_zero_calls == []
