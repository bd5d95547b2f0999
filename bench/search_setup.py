"""Filling a store with synthetic chunks, and timing store-only queries."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from tests.support.corpus import english_paragraphs

from bench.common import Stopwatch

TENANT = "search"
MODEL = "all-MiniLM-L6-v2"  # the default local model: the server searches this space
DIMENSION = 384
CHUNKS_PER_RECORD = 2
FILL_BATCH = 2048


_paragraphs = functools.cache(english_paragraphs)  # built once: not part of a fill's timing


def random_unit_vectors(count: int, dimension: int, seed: int) -> list[list[float]]:
    vectors = np.random.default_rng(seed).standard_normal((count, dimension), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    rows: list[list[float]] = vectors.tolist()
    return rows


async def fill_store(store: Any, chunks: int, tenant: str = TENANT) -> Any:
    """`chunks` points in the default model's space, two per record; returns the space."""
    from vecpipe.models import EmbeddingSpace

    space = EmbeddingSpace(MODEL, DIMENSION)
    await store.ensure_space(space)
    for start in range(0, chunks, FILL_BATCH):
        count = min(FILL_BATCH, chunks - start)
        await upsert_records(store, space, "doc", count, seed=start, first=start, tenant=tenant)
    await store.flush(space)
    return space


async def upsert_records(
    store: Any,
    space: Any,
    prefix: str,
    chunks: int,
    seed: int,
    first: int = 0,
    tenant: str = TENANT,
) -> None:
    """`chunks` points, two per record, records named `<prefix>-<n>` from chunk `first` on."""
    from vecpipe.models import ChunkPoint
    from vecpipe.text.hashing import content_hash

    paragraphs = _paragraphs(1000)
    points = []
    for offset, vector in enumerate(random_unit_vectors(chunks, space.dimension, seed=seed)):
        record, chunk = divmod(first + offset, CHUNKS_PER_RECORD)
        texts = [paragraphs[(record + i) % len(paragraphs)] for i in range(2)]
        record_text = " ".join(texts)
        points.append(
            ChunkPoint(
                tenant_id=tenant,
                record_id=f"{prefix}-{record}",
                chunk_index=chunk,
                chunk_count=CHUNKS_PER_RECORD,
                chunk_text=texts[chunk],
                record_text=record_text,
                content_hash=content_hash(record_text),
                metadata={"group": record % 10, "lang": "en", "bucket": f"b{record % 100}"},
                vector=vector,
            )
        )
    await store.upsert_chunks(space, points)


WARM_QUERIES = 50
"""A shard generation fresh from an optimize answers its first few dozen queries 2-3x slower
(measured at 20k: p50 4.2 vs 1.7 ms; warming the copy on the store's write thread before it
goes live did not help); they are reported apart from the steady state."""


async def store_queries(store: Any, space: Any, count: int) -> list[float]:
    """Seconds per `store.search` (limit 10, tenant filter) with random query vectors.

    The first WARM_QUERIES are extra: the caller reports them apart (the warm-up).
    """
    from vecpipe.store.query import SearchQuery

    latencies = []
    for query in random_unit_vectors(count + WARM_QUERIES, space.dimension, seed=7):
        clock = Stopwatch()
        await store.search(space, SearchQuery(TENANT, query, limit=10))
        latencies.append(clock.elapsed)
    return latencies


def split_warm_up(latencies: list[float]) -> tuple[list[float], list[float]]:
    return latencies[:WARM_QUERIES], latencies[WARM_QUERIES:]


def query_encode_by_threads(count: int) -> dict[str, float]:
    """p50/p99 ms of encoding one short query with 1 torch thread vs the default, alternating.

    A diagnostic for the HTTP figures: intra-op threads that wait on each other suffer when
    other processes hold the CPUs, and one query has too little work to share anyway.
    """
    import torch

    from bench.common import percentile
    from vecpipe.providers.local import load_model

    model = load_model(MODEL).model
    default = torch.get_num_threads()
    questions = [" ".join(p.split()[:8]) for p in english_paragraphs(count)]
    model.encode(questions[:2])
    samples: dict[int, list[float]] = {1: [], default: []}
    try:
        for question in questions:
            for threads in samples:
                torch.set_num_threads(threads)
                clock = Stopwatch()
                model.encode([question], normalize_embeddings=True)
                samples[threads].append(clock.elapsed * 1000)
    finally:
        torch.set_num_threads(default)
    figures = {}
    for threads, ms in samples.items():
        figures[f"query_encode_{threads}_threads_p50_ms"] = round(percentile(ms, 50), 1)
        figures[f"query_encode_{threads}_threads_p99_ms"] = round(percentile(ms, 99), 1)
    return figures
