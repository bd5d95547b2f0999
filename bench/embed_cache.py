"""Scenario 4: a corpus where half the records repeat another record's text, cache on vs off.

N records over two tenants of the same local model (one embedding space); N/2 distinct
texts, each used twice, shuffled so a repeat may be in the same request, a later request or
the other tenant. Each run is a fresh data dir and app (`embed_cache_items` default vs 0),
the runs alternate, and throughput is records/s over the bulk API.
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
from bench.common import Result, Stopwatch, Target, median, quiet_environment
from bench.serving import RecordDict, bodies, post_many, served_app

NAME = "embed_cache"
TITLE = "Embedding cache on vs off, 50% duplicate texts"
TENANTS = ("alpha", "beta")


@dataclass(frozen=True)
class Params:
    records: int
    rounds: int
    request_batch: int = 250


PARAMS = {
    "tiny": Params(records=24, rounds=1, request_batch=6),
    "small": Params(records=500, rounds=1),
    "full": Params(records=1500, rounds=2),
}


def run(size: str) -> Result:
    quiet_environment()
    return asyncio.run(_main(PARAMS[size], size))


def corpus(count: int) -> dict[str, list[RecordDict]]:
    """Records by tenant; every distinct text appears exactly twice."""
    distinct = english_paragraphs(count // 2)
    order = list(range(len(distinct))) * 2
    random.Random(5).shuffle(order)
    by_tenant: dict[str, list[RecordDict]] = {t: [] for t in TENANTS}
    for i, text_index in enumerate(order):
        tenant = TENANTS[i % 2]
        by_tenant[tenant].append({"id": f"r{i}", "text": distinct[text_index], "metadata": {}})
    return by_tenant


async def _main(params: Params, size: str) -> Result:
    by_tenant = corpus(params.records)
    per_tenant = {t: bodies(items, params.request_batch) for t, items in by_tenant.items()}
    requests = [  # alternate the tenants, request by request
        (tenant, per_tenant[tenant][i])
        for i in range(max(len(b) for b in per_tenant.values()))
        for tenant in TENANTS
        if i < len(per_tenant[tenant])
    ]
    total = sum(len(items) for items in by_tenant.values())
    runs: dict[str, list[dict[str, Any]]] = {"on": [], "off": []}
    for round_no in range(params.rounds):
        for mode in ("on", "off") if round_no % 2 == 0 else ("off", "on"):
            runs[mode].append(await _ingest(mode, requests, total))
    return _result(size, params, runs)


async def _ingest(mode: str, requests: list[tuple[str, bytes]], total: int) -> dict[str, Any]:
    from vecpipe.settings import Settings

    with tempfile.TemporaryDirectory(prefix="bench-cache-") as tmp:
        settings = Settings(data_dir=Path(tmp) / "data")
        if mode == "off":
            settings = settings.model_copy(update={"embed_cache_items": 0})
        async with served_app(settings) as (resources, http):
            ingestor = resources.pipeline.ingestor
            clock = Stopwatch()
            done = await post_many(http, requests)
            seconds = clock.elapsed
            if done["upserted"] != total:
                raise RuntimeError(f"cache {mode}: {done['upserted']} of {total} upserted")
            return {
                "seconds": round(seconds, 3),
                "records_per_s": round(total / seconds, 1),
                "provider_texts": ingestor.provider_texts,
            }


def _result(size: str, params: Params, runs: dict[str, list[dict[str, Any]]]) -> Result:
    rate = {mode: median([r["records_per_s"] for r in rs]) for mode, rs in runs.items()}
    figures: dict[str, Any] = {
        "records": params.records,
        "distinct_texts": params.records // 2,
        "rounds": params.rounds,
        "cache_on_records_per_s": rate["on"],
        "cache_off_records_per_s": rate["off"],
        "speedup": round(rate["on"] / rate["off"], 3),
        "provider_texts_cache_on": runs["on"][0]["provider_texts"],
        "provider_texts_cache_off": runs["off"][0]["provider_texts"],
        "runs": runs,
    }
    return Result(
        scenario=NAME,
        title=TITLE,
        size=size,
        figures=figures,
        targets=[Target("cache on / cache off", figures["speedup"], 1.8)],
    )


def chart(result: Result, path: Path) -> None:
    f = result.figures
    charts.bars(
        path,
        f"{TITLE}\n({f['records']} records, {f['distinct_texts']} distinct texts, 2 tenants)",
        {"cache off": f["cache_off_records_per_s"], "cache on": f["cache_on_records_per_s"]},
        "records/s",
        reference=("1.8 x cache off", 1.8 * f["cache_off_records_per_s"]),
    )
