"""Scenario 7: retrieval quality on a labelled set, vecpipe against the model used naively.

The Debian FAQ's questions are the queries, each answer section the one relevant record,
among the Debian Reference's sections (bench/retrieval_corpus.py). In one run, with the same
model (all-MiniLM-L6-v2) in every dense row:

- naive: each record truncated to the model's window, one vector, brute-force cosine;
- BM25 (rank-bm25 over lower-cased words), outside vecpipe;
- vecpipe: each variant of the tenant's AI config (the levers: chunk size and overlap, a
  title prepended to each chunk, prefixes) ingested through the real pipeline (library API,
  Edge store in a temporary directory, the local model) and searched like a user would.
  `search_modes` lists the modes measured on each variant: keyword and hybrid join dense
  once `Pipeline.search` takes a `mode` (issue 14). On each variant's stored vectors, the
  record-score lever `later_chunk_penalty` is also swept at search time (`penalty_rows`).

MRR@10, nDCG@10, Recall@10 and the ingest time of each row. Targets: vecpipe's default
dense search at least the naive baseline on all three.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import charts
from bench.common import Result, Stopwatch, Target, quiet_environment
from bench.retrieval_corpus import Corpus, load_corpus, sample
from bench.retrieval_metrics import K, bm25_rankings, cosine_rankings, naive_vectors, scores

NAME = "retrieval"
TITLE = "Retrieval quality: Debian FAQ among Debian Reference sections"
MODEL = "all-MiniLM-L6-v2"
TENANT_PREFIX = "bench"
INGEST_BATCH = 64
DEFAULT = "default"


@dataclass(frozen=True)
class Variant:
    """One AI config measured through vecpipe: `lever` names what it changes."""

    name: str
    lever: str
    config: dict[str, Any]


def _local(**options: Any) -> dict[str, Any]:
    return {"primary": {"kind": "local", "model": MODEL, **options}}


VARIANTS: tuple[Variant, ...] = (
    Variant(DEFAULT, "defaults (254-token chunks, overlap 32)", {}),
    Variant("chunk-128", "chunk_tokens 128", _local(chunk_tokens=128)),
    Variant(
        "chunk-128-overlap-0",
        "chunk_tokens 128, chunk_overlap 0",
        _local(chunk_tokens=128, chunk_overlap=0),
    ),
    Variant("title", "title_field title", _local(title_field="title")),
    Variant(
        "chunk-128-title", "chunk_tokens 128 + title", _local(chunk_tokens=128, title_field="title")
    ),
    Variant(
        "e5-prefixes",
        "query: / passage: prefixes",
        _local(query_prefix="query: ", document_prefix="passage: "),
    ),
    # the inference backends (issue 18): the defaults otherwise; the first use exports the
    # model into the run's data dir, so these rows' ingest times include the export
    Variant("onnx", "backend onnx (fp32)", _local(backend="onnx")),
    Variant("onnx-int8", "backend onnx-int8", _local(backend="onnx-int8")),
)


@dataclass(frozen=True)
class Params:
    queries: int | None  # None: every question and every distractor
    distractors: int
    variants: tuple[str, ...] | None  # None: every variant


PARAMS = {
    "tiny": Params(queries=8, distractors=24, variants=(DEFAULT,)),
    "small": Params(queries=None, distractors=0, variants=(DEFAULT, "onnx", "onnx-int8")),
    "full": Params(queries=None, distractors=0, variants=None),
}


def run(size: str) -> Result:
    quiet_environment()
    params = PARAMS[size]
    corpus = load_corpus()
    if params.queries is not None:
        corpus = sample(corpus, params.queries, params.distractors)
    variants = [v for v in VARIANTS if params.variants is None or v.name in params.variants]
    rows = [naive_row(corpus), bm25_row(corpus)]
    with tempfile.TemporaryDirectory(prefix="bench-retrieval-") as tmp:
        rows += asyncio.run(vecpipe_rows(corpus, variants, Path(tmp) / "data"))
    return _result(size, corpus, rows)


def _row(
    method: str, lever: str, rankings: list[list[str]], corpus: Corpus, **extra: Any
) -> dict[str, Any]:
    metrics = scores(rankings, [q.relevant for q in corpus.queries])
    return {"method": method, "lever": lever} | {k: round(v, 4) for k, v in metrics.items()} | extra


def naive_row(corpus: Corpus) -> dict[str, Any]:
    from vecpipe.providers.local import load_model

    model = load_model(MODEL).model
    ids = [d.id for d in corpus.documents]
    clock = Stopwatch()
    documents = naive_vectors(model, MODEL, [d.text for d in corpus.documents])
    seconds = clock.elapsed
    queries = model.encode([q.text for q in corpus.queries], normalize_embeddings=True)
    rankings = cosine_rankings(ids, documents, queries)
    return _row(
        "naive", "truncated to the window", rankings, corpus, ingest_seconds=round(seconds, 1)
    )


def bm25_row(corpus: Corpus) -> dict[str, Any]:
    ids = [d.id for d in corpus.documents]
    clock = Stopwatch()
    rankings = bm25_rankings(
        ids, [d.text for d in corpus.documents], [q.text for q in corpus.queries]
    )
    return _row("bm25", "rank-bm25", rankings, corpus, ingest_seconds=round(clock.elapsed, 1))


def search_modes(pipeline: Any) -> tuple[str, ...]:
    """Dense always; keyword and hybrid once `Pipeline.search` takes a `mode` (issue 14)."""
    if "mode" in inspect.signature(pipeline.search).parameters:
        return ("dense", "keyword", "hybrid")
    return ("dense",)


async def vecpipe_rows(
    corpus: Corpus, variants: list[Variant], data_dir: Path
) -> list[dict[str, Any]]:
    from vecpipe import open_pipeline
    from vecpipe.models import Record
    from vecpipe.settings import Settings

    records = [Record(id=d.id, text=d.text, metadata={"title": d.title}) for d in corpus.documents]
    rows = []
    async with open_pipeline(Settings(data_dir=data_dir, embed_cache_items=0)) as pipeline:
        for n, variant in enumerate(variants):
            tenant = f"{TENANT_PREFIX}-{n}"
            await pipeline.set_ai_config(tenant, variant.config)
            clock = Stopwatch()
            for start in range(0, len(records), INGEST_BATCH):
                result = await pipeline.ingest(tenant, records[start : start + INGEST_BATCH])
                if result.failed:
                    raise RuntimeError(f"{variant.name}: ingest failed: {result.failed}")
            seconds = round(clock.elapsed, 1)
            rows += await penalty_rows(pipeline, tenant, variant, corpus, seconds)
            for mode in search_modes(pipeline):
                rankings = [await _search(pipeline, tenant, q.text, mode) for q in corpus.queries]
                rows.append(
                    row := _row(
                        f"vecpipe {mode}",
                        variant.lever,
                        rankings,
                        corpus,
                        variant=variant.name,
                        config=variant.config,
                        ingest_seconds=seconds,
                    )
                )
                print(f"   [{variant.name} {mode}] {row}", file=sys.stderr, flush=True)
    return rows


PENALTIES = (0.0, 0.02, 0.05, 0.1, 0.2, 0.4, 2.0)
"""`later_chunk_penalty` values tried at search time on each variant's records (no re-embedding);
2.0 ranks by the first chunk alone whenever it is among the chunks fetched."""


async def penalty_rows(
    pipeline: Any, tenant: str, variant: Variant, corpus: Corpus, seconds: float
) -> list[dict[str, Any]]:
    """The store searched with each penalty, query vectors made as `Pipeline.search` does."""
    from vecpipe.store.query import SearchQuery

    async with pipeline.providers.lease(tenant) as chain:
        texts = [chain.text_format.query(q.text) for q in corpus.queries]
        vectors = await chain.embed(texts, purpose="query")
        space = chain.space
    rows = []
    for penalty in PENALTIES:
        rankings = []
        for vector in vectors:
            query = SearchQuery(tenant, vector, limit=K, later_chunk_penalty=penalty)
            rankings.append([hit.id for hit in await pipeline.store.search(space, query)])
        row = _row(
            "vecpipe dense",
            f"{variant.lever}; later_chunk_penalty {penalty}",
            rankings,
            corpus,
            variant=f"{variant.name} p={penalty}",
            config=variant.config,
            penalty=penalty,
            ingest_seconds=seconds,
        )
        print(f"   [{row['variant']}] {row}", file=sys.stderr, flush=True)
        rows.append(row)
    return rows


async def _search(pipeline: Any, tenant: str, query: str, mode: str) -> list[str]:
    if mode == "dense":
        hits = await pipeline.search(tenant, query, K)
    else:
        hits = await pipeline.search(tenant, query, K, mode=mode)
    return [hit.id for hit in hits]


def _result(size: str, corpus: Corpus, rows: list[dict[str, Any]]) -> Result:
    naive = next(r for r in rows if r["method"] == "naive")
    dense = next(r for r in rows if r["method"] == "vecpipe dense" and r["variant"] == DEFAULT)
    figures: dict[str, Any] = {
        "queries": len(corpus.queries),
        "records": len(corpus.documents),
        "record_chars_total": sum(len(d.text) for d in corpus.documents),
        "rows": rows,
    }
    for row in rows:
        label = row["method"] if "variant" not in row else f"{row['method']} [{row['variant']}]"
        for metric in ("mrr@10", "ndcg@10", "recall@10"):
            figures[f"{label} {metric}"] = row[metric]
    targets = [
        Target(f"vecpipe dense {m} vs naive", dense[m], naive[m], unit="")
        for m in ("mrr@10", "ndcg@10", "recall@10")
    ]
    notes = [f"nice: {os.nice(0)}"]
    return Result(NAME, TITLE, size, figures, targets, notes)


def main_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The baselines and each variant as configured (the penalty sweep left out)."""
    return [row for row in rows if "penalty" not in row]


def chart(result: Result, path: Path) -> None:
    rows = main_rows(result.figures["rows"])
    values = {}
    for row in rows:
        values[row.get("variant") or row["method"]] = row["ndcg@10"]
    naive = next(r for r in rows if r["method"] == "naive")
    charts.bars(
        path,
        f"{TITLE}\n({result.figures['queries']} queries, {result.figures['records']} records)",
        values,
        "nDCG@10",
        reference=("naive", naive["ndcg@10"]),
    )


def markdown(rows: list[dict[str, Any]]) -> str:
    """The rows as the Markdown table of bench/README.md §7."""
    lines = [
        "| method | lever | MRR@10 | nDCG@10 | Recall@10 | ingest s |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        cells = [row["method"], row["lever"], row["mrr@10"], row["ndcg@10"], row["recall@10"]]
        cells.append(row.get("ingest_seconds", ""))
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":  # the README table from the last results
    import json

    from bench.common import RESULTS_DIR

    data = json.loads((RESULTS_DIR / f"{NAME}.json").read_text())
    print(markdown(data["figures"]["rows"]))
