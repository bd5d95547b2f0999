"""Scenario 10: the local inference backends (issue 18) through the bulk API, side by side.

One app (API on a loopback port, as `vecpipe serve` runs it) and one data dir; one tenant per
backend and round, each configured `{"kind": "local", "backend": ...}` over the API. Every
round posts the same real text (docstrings, tests/support/corpus.py; each round and
backend its own tag, so nothing hits the embedding cache) to each backend's tenant in a
rotating order, with the same threads (VECPIPE_TORCH_THREADS: torch's intra-op threads,
ONNX Runtime's too). The first use of an ONNX backend exports the packaged model into the
data dir's model cache: that is timed apart (`*_first_use_s`), before the rounds.

Then, on the same texts, each backend's vectors against torch's: cosine mean and minimum,
the rule for sharing torch's space being a minimum of at least 0.9999.

Targets: onnx-int8 / torch >= 2.0 records/s (issue 18, must-show 1).
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from tests.support.corpus import english_paragraphs

from bench import charts
from bench.common import Result, Stopwatch, Target, median, quiet_environment
from bench.serving import bodies, post_bodies, records, served_app

NAME = "local_backends"
TITLE = "Local backends: bulk API ingest, torch vs ONNX fp32 vs ONNX int8"
BACKENDS = ("torch", "onnx", "onnx-int8")
MODEL = "all-MiniLM-L6-v2"


class Params:
    def __init__(self, records: int, rounds: int, request_batch: int) -> None:
        self.records, self.rounds, self.request_batch = records, rounds, request_batch
        self.request_concurrency = 2


PARAMS = {
    "tiny": Params(records=8, rounds=1, request_batch=4),
    "small": Params(records=300, rounds=2, request_batch=150),
    "full": Params(records=600, rounds=3, request_batch=300),
}


def run(size: str) -> Result:
    quiet_environment()
    return asyncio.run(_main(PARAMS[size], size))


async def _main(params: Params, size: str) -> Result:
    from vecpipe.settings import Settings

    paragraphs = english_paragraphs(params.records)
    runs: dict[str, list[float]] = {b: [] for b in BACKENDS}
    first_use: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-backends-") as tmp:
        settings = Settings(data_dir=Path(tmp) / "data")
        async with served_app(settings) as (_, http):
            for backend in BACKENDS:  # the ONNX exports happen here, timed apart
                clock = Stopwatch()
                await _ingest(http, backend, "warm", paragraphs[:16], params)
                first_use[backend] = clock.elapsed
            for round_no in range(params.rounds):
                shift = round_no % len(BACKENDS)
                for backend in BACKENDS[shift:] + BACKENDS[:shift]:
                    # each backend its own texts: onnx shares torch's space, so the same
                    # texts would hit the embedding cache torch filled
                    texts = [f"t{round_no}{backend}: {p}" for p in paragraphs]
                    clock = Stopwatch()
                    await _ingest(http, backend, f"r{round_no}", texts, params)
                    runs[backend].append(len(texts) / clock.elapsed)
        cosines = await asyncio.to_thread(_cosines, paragraphs, settings.data_dir / "models")
        threads = settings.torch_threads
    return _result(size, params, runs, first_use, cosines, threads)


async def _ingest(
    http: httpx.AsyncClient, backend: str, tag: str, texts: list[str], params: Params
) -> None:
    tenant = f"{backend}-{tag}"
    config = {"primary": {"kind": "local", "model": MODEL, "backend": backend}}
    response = await http.put(f"/v1/tenants/{tenant}/ai-config", json=config)
    response.raise_for_status()
    payloads = bodies(records(texts), params.request_batch)
    done = await post_bodies(http, tenant, payloads, params.request_concurrency)
    if done["upserted"] != len(texts):
        raise RuntimeError(f"{backend}: {done['upserted']} of {len(texts)} records were ingested")


def _cosines(texts: list[str], models_dir: Path) -> dict[str, dict[str, float]]:
    """Each backend's vectors of `texts` against torch's (the app's own loaded models)."""
    from vecpipe.providers.local_model import load_model

    vectors = {}
    for backend in BACKENDS:
        model = load_model(MODEL, backend, cache_dir=models_dir).model
        vectors[backend] = model.encode(texts, batch_size=16, normalize_embeddings=True)
    out = {}
    for backend in BACKENDS[1:]:
        cosine = (np.asarray(vectors[backend]) * np.asarray(vectors["torch"])).sum(axis=1)
        out[backend] = {"mean": float(cosine.mean()), "min": float(cosine.min())}
    return out


def _result(
    size: str,
    params: Params,
    runs: dict[str, list[float]],
    first_use: dict[str, float],
    cosines: dict[str, dict[str, float]],
    threads: int,
) -> Result:
    rate = {b: median(rs) for b, rs in runs.items()}
    figures: dict[str, Any] = {
        "records_per_run": params.records,
        "rounds": params.rounds,
        "request_batch": params.request_batch,
        "request_concurrency": params.request_concurrency,
        "torch_threads_setting": threads,
        **{f"{b}_records_per_s": round(rate[b], 1) for b in BACKENDS},
        **{f"{b}_vs_torch": round(rate[b] / rate["torch"], 3) for b in BACKENDS[1:]},
        **{f"{b}_first_use_s": round(first_use[b], 1) for b in BACKENDS},
        **{
            f"{b}_cosine_to_torch_{k}": round(v, 7)
            for b, stats in cosines.items()
            for k, v in stats.items()
        },
        "per_round_records_per_s": {b: [round(r, 1) for r in rs] for b, rs in runs.items()},
    }
    return Result(
        scenario=NAME,
        title=TITLE,
        size=size,
        figures=figures,
        targets=[
            Target("onnx-int8 / torch, bulk API", figures["onnx-int8_vs_torch"], 2.0),
            Target("onnx fp32 cosine to torch, min", figures["onnx_cosine_to_torch_min"], 0.9999),
        ],
    )


def chart(result: Result, path: Path) -> None:
    f = result.figures
    charts.bars(
        path,
        f"{TITLE}\n({f['records_per_run']} records, median of {f['rounds']} rounds)",
        {b: f[f"{b}_records_per_s"] for b in BACKENDS},
        "records/s",
        reference=("2.0 x torch", 2.0 * f["torch_records_per_s"]),
    )
