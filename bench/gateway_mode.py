"""Scenario 2: the worker on a gateway tenant against the seed's per-message pattern.

Both talk to the same loopback OpenAI-compatible gateway (20 ms per request, in a child
process). The seed's pattern, reproduced faithfully except that it closes its client (the
seed leaked it): per message, `asyncio.run(embed_one(text))` where `embed_one` builds a new
`openai.AsyncOpenAI`. The worker: a job of N records submitted through the pipeline, consumed
by `VectorizationWorker.run()` on this process's one loop, timed from submit to completed
(queue, gateway, Edge writes, flush, job accounting and acks all included).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from tests.support.corpus import english_paragraphs

from bench import charts
from bench.common import Result, Target, quiet_environment
from bench.gateway_process import GatewayProcess
from bench.phase_timer import PhaseTimer

NAME = "gateway_mode"
TITLE = "Gateway mode against the seed's per-message pattern"
LATENCY = 0.02
DIMENSION = 384
MODEL = "bench-embed"
API_KEY = "sk-bench-not-a-secret"


@dataclass(frozen=True)
class Params:
    records: int
    seed_messages: int


@dataclass(frozen=True)
class WorkerConfig:
    label: str
    batch: int  # VECPIPE_WORKER_BATCH_SIZE
    concurrency: int  # VECPIPE_WORKER_CONCURRENCY
    provider_batch: int = 256  # max_batch_size in the tenant's provider config
    provider_concurrency: int = 4  # max_concurrency in the tenant's provider config

    @property
    def bound(self) -> float:
        """Records/s the gateway allows: texts in flight at once / latency."""
        in_flight = min(
            self.batch * self.concurrency, self.provider_batch * self.provider_concurrency
        )
        return in_flight / LATENCY


CONFIGS = (
    WorkerConfig("defaults (batch 256 x 2)", batch=256, concurrency=2),
    WorkerConfig("batch 64 x 2", batch=64, concurrency=2),
    WorkerConfig("batch 128 x 2", batch=128, concurrency=2),
    WorkerConfig("batch 256 x 4", batch=256, concurrency=4),
)

PARAMS = {
    "tiny": Params(records=200, seed_messages=5),
    "small": Params(records=2000, seed_messages=40),
    "full": Params(records=10_000, seed_messages=150),
}


def run(size: str) -> Result:
    quiet_environment()
    params = PARAMS[size]
    texts = _texts(params.records)
    with GatewayProcess(LATENCY, DIMENSION) as gateway:
        seed_rate = seed_pattern(gateway.url, texts[: params.seed_messages])
        runs = []
        for config in CONFIGS:
            gateway.reset()
            runs.append(asyncio.run(_worker_run(gateway, config, texts)))
    return _result(size, params, seed_rate, runs)


def _texts(count: int) -> list[str]:
    paragraphs = english_paragraphs(min(count, 3000))
    return [f"{paragraphs[i % len(paragraphs)]} (#{i})" for i in range(count)]


# ---------------------------------------------------------------------------- the seed


def seed_pattern(base_url: str, texts: list[str]) -> float:
    """Messages/s of a sync loop calling asyncio.run() per message with a new client."""
    import openai

    async def embed_one(text: str) -> list[float]:
        async with openai.AsyncOpenAI(base_url=base_url, api_key=API_KEY) as client:
            response = await client.embeddings.create(model=MODEL, input=text)
            return response.data[0].embedding

    asyncio.run(embed_one("warm up"))
    started = time.perf_counter()
    for text in texts:
        asyncio.run(embed_one(text))
    return len(texts) / (time.perf_counter() - started)


# ---------------------------------------------------------------------------- the worker


async def _worker_run(
    gateway: GatewayProcess, config: WorkerConfig, texts: list[str]
) -> dict[str, Any]:
    from vecpipe.heap import freeze_long_lived
    from vecpipe.models import Record
    from vecpipe.resources import open_resources
    from vecpipe.settings import Settings
    from vecpipe.worker.background import worker_for

    with tempfile.TemporaryDirectory(prefix="bench-gw-") as tmp:
        settings = Settings(
            data_dir=Path(tmp) / "data",
            gateway_allowlist="127.0.0.1",
            secret_key=SecretStr("bench-secret-key"),
            worker_batch_size=config.batch,
            worker_concurrency=config.concurrency,
        )
        async with open_resources(settings) as resources:
            freeze_long_lived()  # as `vecpipe worker` does once its resources are open
            pipeline = resources.pipeline
            await pipeline.set_ai_config("gw", {"primary": _provider(gateway.url, config)})
            timer = await _timed_parts(resources)
            worker = worker_for(resources, settings=settings)
            task = asyncio.create_task(worker.run(), name="bench-worker")
            try:
                warm = [Record(id=f"w{i}", text=f"warm up {i}") for i in range(64)]
                await _until_done(pipeline, await pipeline.submit_job("gw", upserts=warm))
                before = gateway.stats()
                timer.reset()
                records = [Record(id=f"r{i}", text=t) for i, t in enumerate(texts)]
                started, cpu_started = time.perf_counter(), time.process_time()
                job_id = await pipeline.submit_job("gw", upserts=records)
                submitted = time.perf_counter()
                status = await _until_done(pipeline, job_id)
                finished, cpu = time.perf_counter(), time.process_time() - cpu_started
            finally:
                worker.request_stop()
                await task
            after = gateway.stats()
    if status.done != len(texts):
        raise RuntimeError(f"worker stored {status.done} of {len(texts)} records")
    requests = after["requests"] - before["requests"]
    seconds = finished - started
    return {
        "config": config.label,
        "worker_batch": config.batch,
        "worker_concurrency": config.concurrency,
        "bound_records_per_s": config.bound,
        "seconds": round(seconds, 3),
        "submit_seconds": round(submitted - started, 3),
        "records_per_s": round(len(texts) / seconds, 1),
        "records_per_s_after_submit": round(len(texts) / (finished - submitted), 1),
        # every thread of this process (loop, Edge, SQLite), the gateway's child excluded
        "cpu_us_per_record": round(cpu / len(texts) * 1e6, 1),
        "gateway_requests": requests,
        "texts_per_request": round(len(texts) / max(1, requests), 1),
        "max_in_flight": after["max_in_flight"],
        "phases": timer.report(),
    }


async def _timed_parts(resources: Any) -> PhaseTimer:
    timer = PhaseTimer()
    timer.wrap(resources.store, "store")
    timer.wrap(resources.queue, "queue")
    timer.wrap(resources.pipeline.jobs, "jobs")
    timer.wrap(resources.pipeline.ingestor, "ingestor")
    async with resources.pipeline.providers.lease("gw") as chain:
        timer.wrap(chain, "chain")
    return timer


def _provider(url: str, config: WorkerConfig) -> dict[str, Any]:
    return {
        "kind": "openai",
        "base_url": url,
        "model": MODEL,
        "api_key": API_KEY,
        "dimensions": DIMENSION,
        "max_batch_size": config.provider_batch,
        "max_concurrency": config.provider_concurrency,
    }


async def _until_done(pipeline: Any, job_id: str) -> Any:
    while True:  # polled, as a client would
        status = await pipeline.job("gw", job_id)
        if status.status == "completed":
            return status
        await asyncio.sleep(0.1)


def _result(size: str, params: Params, seed: float, runs: list[dict[str, Any]]) -> Result:
    best = max(runs, key=lambda r: r["records_per_s"])
    default = runs[0]
    figures: dict[str, Any] = {
        "records": params.records,
        "seed_messages": params.seed_messages,
        "gateway_latency_ms": LATENCY * 1000,
        "dimension": DIMENSION,
        "seed_records_per_s": round(seed, 2),
        "worker_defaults_records_per_s": default["records_per_s"],
        "worker_best_records_per_s": best["records_per_s"],
        "worker_best_config": best["config"],
        "worker_defaults_cpu_us_per_record": default["cpu_us_per_record"],
        "defaults_vs_seed": round(default["records_per_s"] / seed, 1),
        "best_vs_seed": round(best["records_per_s"] / seed, 1),
        "best_fraction_of_bound": round(best["records_per_s"] / best["bound_records_per_s"], 3),
        "runs": runs,
    }
    return Result(
        scenario=NAME,
        title=TITLE,
        size=size,
        figures=figures,
        targets=[
            Target("worker (defaults) / seed pattern", figures["defaults_vs_seed"], 100),
            Target(f"worker ({best['config']}) / seed pattern", figures["best_vs_seed"], 100),
        ],
    )


def chart(result: Result, path: Path) -> None:
    f = result.figures
    values = {"seed pattern": f["seed_records_per_s"]}
    for run_ in f["runs"]:
        shape = f"{run_['worker_batch']} x {run_['worker_concurrency']}"
        values[f"worker\n{shape}"] = run_["records_per_s"]
        values[f"bound\n{shape}"] = run_["bound_records_per_s"]
    charts.bars(
        path,
        f"{TITLE}\n({f['records']} records, gateway latency {f['gateway_latency_ms']:.0f} ms)",
        values,
        "records/s (log scale)",
        reference=("100 x seed", 100 * f["seed_records_per_s"]),
        log=True,
    )
