"""Scenario 5: search latency over a large store, idle and under ingest, and the worst stall.

1. Fill one tenant with N chunks straight through the store API (random unit vectors, real
   text payloads, two chunks per record), flush, and `optimize()` it (online: a copy is
   optimized in a child process, then swapped in) while a ticker measures how long this
   process's loop stalls, a probe searches the space every 100 ms, and a writer upserts a
   few batches of new records into it (as an ingest would).
2. Store-only queries: `EdgeStore.search` in-process, random unit vectors.
3. `vecpipe serve` (subprocess) on that data dir; HTTP search with the local model embedding
   the query: idle, then while a client ingests through the bulk API with the local model
   (the model is shared with the query), then while it ingests through a gateway tenant
   (store writes only). A /healthz probe every 50 ms measures the server's worst stall.
4. A diagnostic for the figures above: one short query encoded in this process with one
   torch thread against the default thread count.
"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import charts
from bench.common import Result, Stopwatch, Target, latency_summary, quiet_environment
from bench.search_setup import (
    fill_store,
    query_encode_by_threads,
    random_unit_vectors,
    split_warm_up,
    store_queries,
    upsert_records,
)
from bench.search_traffic import Traffic, http_phases

NAME = "search_latency"
WRITES_DURING_OPTIMIZE = 8  # batches of 256 points
TITLE = "Search latency at scale"


@dataclass(frozen=True)
class Params:
    chunks: int
    store_queries: int
    optimize: bool
    traffic: Traffic


PARAMS = {
    "tiny": Params(1_000, 20, optimize=False, traffic=Traffic(4, 10, 2, 50)),
    "small": Params(20_000, 300, optimize=True, traffic=Traffic(100, 30, 64, 500)),
    "full": Params(100_000, 1000, optimize=True, traffic=Traffic(300, 60, 64, 500)),
}


def run(size: str) -> Result:
    quiet_environment()
    params = PARAMS[size]
    with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
        data_dir = Path(tmp) / "data"
        setup = asyncio.run(_setup(data_dir, params))
        phases = http_phases(data_dir, params.traffic)
    setup.update(query_encode_by_threads(params.traffic.queries))
    return _result(size, params, setup, phases)


async def _setup(data_dir: Path, params: Params) -> dict[str, Any]:
    from vecpipe.settings import Settings
    from vecpipe.store.edge import EdgeStore

    Settings(data_dir=data_dir).data_dir.mkdir(parents=True, exist_ok=True)
    async with EdgeStore(data_dir) as store:
        clock = Stopwatch()
        space = await fill_store(store, params.chunks)
        figures: dict[str, Any] = {"fill_seconds": round(clock.elapsed, 1)}
        if params.optimize:
            figures.update(await _optimize(store, space))
        status = await store.index_status(space)
        figures["indexed_vectors"], figures["segments"] = status.indexed_vectors, status.segments
        figures["store_latencies"] = await store_queries(store, space, params.store_queries)
    return figures


async def _optimize(store: Any, space: Any) -> dict[str, Any]:
    """Optimize, measuring this loop's worst stall and how long a search of the space waits."""
    from vecpipe.store.query import SearchQuery

    stalls: list[float] = []
    waits: list[float] = []
    write_waits: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        while not done.is_set():
            clock = Stopwatch()
            await asyncio.sleep(0.01)
            stalls.append(clock.elapsed - 0.01)

    async def prober() -> None:
        [query] = random_unit_vectors(1, space.dimension, seed=99)
        while not done.is_set():
            clock = Stopwatch()
            await store.search(space, SearchQuery("search", query, limit=10))
            waits.append(clock.elapsed)
            await asyncio.sleep(0.1)

    async def writer() -> None:
        """A few batches only: points written meanwhile stay unindexed, and would slow the
        store-only queries below, measured on the same data as before."""
        for batch in range(WRITES_DURING_OPTIMIZE):
            if done.is_set():
                break
            clock = Stopwatch()
            await upsert_records(store, space, f"during-optimize-{batch}", 256, seed=10**6 + batch)
            write_waits.append(clock.elapsed)
            await asyncio.sleep(0.5)

    tasks = [asyncio.create_task(task()) for task in (ticker, prober, writer)]
    clock = Stopwatch()
    try:
        report = await store.optimize(space)
    finally:
        done.set()
        await asyncio.gather(*tasks)
    return {
        "optimize_seconds": round(clock.elapsed, 1),
        "optimize_child_seconds": round(report.seconds, 1),
        "optimize_copy_seconds": round(report.copy_seconds, 1),
        "optimize_catch_up_seconds": round(report.catch_up_seconds, 2),
        "optimize_replayed_points": report.replayed_points,
        "loop_stall_during_optimize_max_ms": round(max(stalls, default=0) * 1000, 1),
        "search_wait_during_optimize_max_ms": round(max(waits, default=0) * 1000, 1),
        "searches_during_optimize": len(waits),
        "points_written_during_optimize": 256 * len(write_waits),
        "write_wait_during_optimize_max_ms": round(max(write_waits, default=0) * 1000, 1),
    }


def _result(size: str, params: Params, setup: dict[str, Any], phases: dict[str, Any]) -> Result:
    warm_lat, store_lat = split_warm_up(setup.pop("store_latencies"))
    summaries = {name: latency_summary(p["search"]) for name, p in phases.items()}
    stalls = {name: latency_summary(p["healthz"]) for name, p in phases.items()}
    store = latency_summary(store_lat)
    warm = latency_summary(warm_lat)
    figures: dict[str, Any] = {
        "chunks": params.chunks,
        **setup,
        "store_p50_ms": store["p50_ms"],
        "store_p99_ms": store["p99_ms"],
        "store_first_queries_p50_ms": warm["p50_ms"],
        "store_first_queries_max_ms": warm["max_ms"],
        **{f"{n}_p50_ms": s["p50_ms"] for n, s in summaries.items()},
        **{f"{n}_p99_ms": s["p99_ms"] for n, s in summaries.items()},
        **{f"{n}_worst_search_ms": s["max_ms"] for n, s in summaries.items()},
        **{f"{n}_worst_healthz_ms": s["max_ms"] for n, s in stalls.items()},
        **{f"{n}_ingested_records": p["ingested"] for n, p in phases.items()},
        "search": summaries,
        "healthz": stalls,
        "latencies_ms": {
            "store": [round(x * 1000, 3) for x in store_lat],
            **{n: [round(x * 1000, 3) for x in p["search"]] for n, p in phases.items()},
        },
    }
    targets = [
        Target("HTTP search p99 idle", summaries["idle"]["p99_ms"], 50, False, "ms"),
        Target(
            "HTTP search p99, local-model ingest",
            summaries["local_ingest"]["p99_ms"],
            150,
            False,
            "ms",
        ),
        Target(
            "HTTP search p99, gateway ingest",
            summaries["gateway_ingest"]["p99_ms"],
            150,
            False,
            "ms",
        ),
        Target("store-only query p99 (after the first 50)", store["p99_ms"], 5, False, "ms"),
    ]
    return Result(scenario=NAME, title=TITLE, size=size, figures=figures, targets=targets)


def chart(result: Result, path: Path) -> None:
    f = result.figures
    charts.latency_cdf(
        path,
        f"{TITLE} ({f['chunks']:,} chunks)",
        f["latencies_ms"],
        limits={"5 ms": 5, "50 ms": 50, "150 ms": 150},
    )
