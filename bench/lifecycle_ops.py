"""Lifecycle figures (issue 15), on an Edge store filled with synthetic records:

- list / export throughput: `scroll_records` pages of 1000 (list), and the same turned into
  the JSON lines `vecpipe export` writes (export), records/s;
- dry-run sync of the whole set, unchanged (`core.full_sync`, no provider involved);
- offboarding a tenant of N records (every point deleted, then the shard rewritten so the
  deleted bytes leave the disk), with another tenant's store-search p99 meanwhile.

    .venv/bin/python -m bench.lifecycle_ops [--records N]

Not a registered scenario of `python -m bench`: it prints its figures and writes
bench/results/lifecycle_ops.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.search_setup import FILL_BATCH, random_unit_vectors, upsert_records

OWNER, OTHER = "leaving", "staying"


class _Pipeline:
    """What core.full_sync reads of a Pipeline for a dry run."""

    def __init__(self, store: Any, space: Any) -> None:
        from vecpipe.settings import Settings

        self.store, self._space = store, space
        self.settings = Settings()

    async def space_of(self, tenant_id: str) -> Any:
        return self._space


async def _fill(store: Any, space: Any, tenant: str, records: int) -> None:
    chunks = records * 2
    for start in range(0, chunks, FILL_BATCH):
        count = min(FILL_BATCH, chunks - start)
        await upsert_records(store, space, "doc", count, seed=start, first=start, tenant=tenant)
    await store.flush(space)


async def _all_records(store: Any, space: Any, tenant: str) -> list[Any]:
    found, cursor = [], None
    while True:
        page, cursor = await store.scroll_records(space, tenant, cursor, 1000)
        found += page
        if cursor is None:
            return found


async def run(records: int, data_dir: Path) -> dict[str, Any]:
    from vecpipe.core.full_sync import sync_records
    from vecpipe.core.offboard import delete_tenant_points
    from vecpipe.models import EmbeddingSpace, Record
    from vecpipe.store.edge import EdgeStore
    from vecpipe.store.query import SearchQuery

    figures: dict[str, Any] = {"records": records}
    space = EmbeddingSpace("all-MiniLM-L6-v2", 384)
    async with EdgeStore(data_dir) as store:
        started = time.perf_counter()
        await _fill(store, space, OWNER, records)
        await _fill(store, space, OTHER, max(1000, records // 10))
        figures["fill_seconds"] = round(time.perf_counter() - started, 1)
        await store.optimize(space)

        clock = time.perf_counter()
        listed = await _all_records(store, space, OWNER)
        figures["list_records_per_s"] = round(len(listed) / (time.perf_counter() - clock))
        clock = time.perf_counter()
        lines = 0
        for stored in await _all_records(store, space, OWNER):
            record = Record(id=stored.record_id, text=stored.text, metadata=stored.metadata)
            lines += len(json.dumps(record.model_dump(mode="json", exclude_none=True)))
        figures["export_records_per_s"] = round(len(listed) / (time.perf_counter() - clock))

        wanted = [Record(id=r.record_id, text=r.text, metadata=r.metadata) for r in listed]
        clock = time.perf_counter()
        report = await sync_records(_Pipeline(store, space), OWNER, wanted, dry_run=True)  # type: ignore[arg-type]
        figures["dry_run_sync_seconds"] = round(time.perf_counter() - clock, 2)
        figures["dry_run_counts"] = report["counts"]

        latencies: list[float] = []
        done = asyncio.Event()

        async def search_other() -> None:
            queries = random_unit_vectors(100_000, space.dimension, seed=3)
            for query in queries:
                if done.is_set():
                    return
                clock = time.perf_counter()
                await store.search(space, SearchQuery(OTHER, query, limit=10))
                latencies.append(time.perf_counter() - clock)
                await asyncio.sleep(0.01)

        baseline: list[float] = []
        for query in random_unit_vectors(200, space.dimension, seed=5):
            clock = time.perf_counter()
            await store.search(space, SearchQuery(OTHER, query, limit=10))
            baseline.append(time.perf_counter() - clock)
        searcher = asyncio.create_task(search_other())
        clock = time.perf_counter()
        await delete_tenant_points(store, OWNER)
        deleted = time.perf_counter()
        await store.compact_tenant_data(space)
        finished = time.perf_counter()
        done.set()
        await searcher
        figures["offboard_delete_seconds"] = round(deleted - clock, 2)
        figures["offboard_rewrite_seconds"] = round(finished - deleted, 2)
        figures["other_search_p50_ms_idle"] = round(1000 * statistics.median(baseline), 1)
        figures["other_search_p99_ms_idle"] = round(1000 * _p99(baseline), 1)
        figures["other_search_p50_ms_during"] = round(1000 * statistics.median(latencies), 1)
        figures["other_search_p99_ms_during"] = round(1000 * _p99(latencies), 1)
        figures["other_searches_during"] = len(latencies)
        assert await store.count(space, OWNER) == 0
    return figures


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        figures = asyncio.run(run(args.records, Path(tmp) / "data"))
    print(json.dumps(figures, indent=2))
    out = Path(__file__).with_name("results") / "lifecycle_ops.json"
    out.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
