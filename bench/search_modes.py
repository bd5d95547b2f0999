"""Search modes and filters at scale: dense, keyword (BM25), hybrid (RRF), MMR, filters.

Store-only (EdgeStore in-process, one tenant, two chunks per record of real text with
random unit vectors; bench/search_setup.py), so that the ratios compare the engine's work
and not the model's:

1. Ingest throughput with BM25 sparse vectors (a new shard) against without (a shard made
   with the pre-keyword config): the same points, through `upsert_chunks`, then flushed.
2. After an optimize (HNSW built), p50/p99 of `store.search` for dense, keyword, hybrid and
   dense with diversity 0.5; then dense with a selective filter (`bucket`: 1 % of the
   tenant's records) and a broad one (`group` < 5: 50 %), both before and after the
   filtered keys get their index (`ensure_payload_index`: keyword for `bucket`, float for
   `group`, as the pipeline learns them from filters).

Targets (issue 14): hybrid p99 <= 2x dense p99; filtered p99 <= 1.5x unfiltered p99;
ingest with sparse vectors >= 0.9x without.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.corpus import english_paragraphs

from bench import charts
from bench.common import Result, Stopwatch, Target, latency_summary, quiet_environment
from bench.search_setup import (
    DIMENSION,
    MODEL,
    TENANT,
    WARM_QUERIES,
    random_unit_vectors,
    upsert_records,
)

NAME = "search_modes"
TITLE = "Search modes and filters"
FILL_BATCH = 2048


@dataclass(frozen=True)
class Params:
    chunks: int
    queries: int


PARAMS = {
    "tiny": Params(2_000, 30),
    "small": Params(20_000, 300),
    "full": Params(100_000, 500),
}


def run(size: str) -> Result:
    quiet_environment()
    params = PARAMS[size]
    with tempfile.TemporaryDirectory(prefix="bench-modes-") as tmp:
        figures = asyncio.run(_run(Path(tmp), params))
    return _result(size, params, figures)


async def _run(tmp: Path, params: Params) -> dict[str, Any]:
    import qdrant_edge as qe

    from vecpipe.models import EmbeddingSpace
    from vecpipe.store.edge import EdgeStore
    from vecpipe.store.edge import shard as edge_shard

    space = EmbeddingSpace(MODEL, DIMENSION)
    # without sparse vectors: a shard made with the config from before keyword search
    plain_dir = tmp / "plain"
    shard_path = plain_dir / "shards" / space.key
    shard_path.mkdir(parents=True)
    config = edge_shard.shard_config(DIMENSION, keyword=False)
    edge_shard.close_shard(qe.EdgeShard.create(str(shard_path), config))
    async with EdgeStore(plain_dir) as plain, EdgeStore(tmp / "data") as store:
        await plain.ensure_space(space)
        await store.ensure_space(space)
        # batch by batch, one store then the other: drift in the box's load hits both alike
        fill = {"dense_only": 0.0, "with_sparse": 0.0}
        for start in range(0, params.chunks, FILL_BATCH):
            count = min(FILL_BATCH, params.chunks - start)
            for name, target in (("dense_only", plain), ("with_sparse", store)):
                clock = Stopwatch()
                await upsert_records(target, space, "doc", count, seed=start, first=start)
                await target.flush(space)
                fill[name] += clock.elapsed
        figures: dict[str, Any] = {"chunks": params.chunks}
        figures.update({f"fill_seconds_{n}": round(s, 2) for n, s in fill.items()})
        clock = Stopwatch()
        await store.optimize(space)
        figures["optimize_seconds"] = round(clock.elapsed, 1)
        figures["latencies"] = await _queries(store, space, params.queries)
    return figures


async def _queries(store: Any, space: Any, count: int) -> dict[str, list[float]]:
    """Each query vector asked in every kind in turn (drift in load hits all kinds alike);
    the selective filter's key gets its keyword index half way, for before and after."""
    from vecpipe.core.filters import parse_filter
    from vecpipe.store.query import SearchQuery

    vectors = random_unit_vectors(count + WARM_QUERIES, DIMENSION, seed=11)
    words = [w for p in english_paragraphs(200) for w in p.split() if w.isalpha()]
    rng = random.Random(5)
    texts = [" ".join(rng.sample(words, 3)) for _ in vectors]
    selective = parse_filter({"bucket": "b7"})
    broad = parse_filter({"group": {"$lt": 5}})
    kinds: dict[str, Any] = {
        "dense": lambda v, t: SearchQuery(TENANT, v),
        "keyword": lambda v, t: SearchQuery(TENANT, v, mode="keyword", text=t),
        "hybrid": lambda v, t: SearchQuery(TENANT, v, mode="hybrid", text=t),
        "dense_mmr": lambda v, t: SearchQuery(TENANT, v, diversity=0.5),
    }
    found: dict[str, list[float]] = {name: [] for name in kinds}
    for name in ("selective", "broad"):
        found[f"{name}_unindexed"], found[f"{name}_indexed"] = [], []
    half = WARM_QUERIES + count // 2
    for i, (vector, text) in enumerate(zip(vectors, texts, strict=True)):
        if i == half:  # what the pipeline learns from these filters (core/pipeline.py)
            await store.ensure_payload_index(space, "bucket", "keyword")
            await store.ensure_payload_index(space, "group", "float")
        asks = dict(kinds)
        state = "indexed" if i >= half else "unindexed"
        asks[f"selective_{state}"] = lambda v, t: SearchQuery(TENANT, v, selective)
        asks[f"broad_{state}"] = lambda v, t: SearchQuery(TENANT, v, broad)
        for name, make in asks.items():
            clock = Stopwatch()
            await store.search(space, make(vector, text))
            if i >= WARM_QUERIES:
                found[name].append(clock.elapsed)
    return found


def _result(size: str, params: Params, figures: dict[str, Any]) -> Result:
    latencies = figures.pop("latencies")
    summaries = {name: latency_summary(seconds) for name, seconds in latencies.items()}
    p99 = {name: s["p99_ms"] for name, s in summaries.items()}
    ingest_ratio = figures["fill_seconds_dense_only"] / figures["fill_seconds_with_sparse"]
    figures.update(
        {
            **{f"{n}_p50_ms": s["p50_ms"] for n, s in summaries.items()},
            **{f"{n}_p99_ms": s["p99_ms"] for n, s in summaries.items()},
            "ingest_ratio_with_sparse": round(ingest_ratio, 3),
            "search": summaries,
            "latencies_ms": {n: [round(x * 1000, 3) for x in s] for n, s in latencies.items()},
        }
    )
    dense = p99["dense"]
    targets = [
        Target("hybrid p99 / dense p99", p99["hybrid"] / dense, 2.0, False),
        Target("selective filter p99 / unfiltered", p99["selective_indexed"] / dense, 1.5, False),
        Target("broad filter p99 / unfiltered", p99["broad_indexed"] / dense, 1.5, False),
        Target("ingest with sparse / without", ingest_ratio, 0.9),
    ]
    notes = [f"{params.queries} queries per kind after {WARM_QUERIES} warm-up ones, limit 10"]
    return Result(
        scenario=NAME, title=TITLE, size=size, figures=figures, targets=targets, notes=notes
    )


def chart(result: Result, path: Path) -> None:
    f = result.figures
    charts.latency_cdf(
        path,
        f"{TITLE} ({f['chunks']:,} chunks)",
        f["latencies_ms"],
        limits={"5 ms": 5, "20 ms": 20},
    )
