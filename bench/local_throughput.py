"""Scenario 1: ingest of real text through the bulk API and the queue, against the model alone.

One process: the app (API + in-process worker) served by uvicorn on this loop, and
`SentenceTransformer.encode` of the same texts on the very same model object. The baseline
encodes with torch's default thread count (one per core): the model's own limit on this
machine. The app's ingest encodes use `VECPIPE_TORCH_THREADS` (default: one less than the
cores, see `LocalProvider`), so a ratio above 1 can mean that choice beats torch's default
on a busy machine, and one below 1 on a quiet one can be the price of it. Each round
measures every method side by side, in a rotating order; every text carries a run tag so no
run hits the embedding cache or the unchanged-text check of another.

The model's `encode` is metered for the whole run, so each figure splits into "how much of
the wall time the model was busy" and "how fast it encoded while busy": a service loses
throughput either by leaving the model idle (its own overhead, serialized) or by handing it
work that costs more (padding) or competing with it for the CPUs or the GIL.

Three extra methods (`*_b16`) run a second app with VECPIPE_LOCAL_BATCH_SIZE=16, the fix
proposed in bench/README.md, against `encode(batch_size=16)`; they carry no target.
"""

from __future__ import annotations

import asyncio
import tempfile
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from tests.support.corpus import english_paragraphs

from bench import charts
from bench.common import Result, Stopwatch, Target, median, quiet_environment
from bench.model_meter import ModelMeter
from bench.padding import padding_report
from bench.serving import bodies, post_bodies, records, run_job, served_app

NAME = "local_throughput"
TITLE = "Local throughput against the model's own limit"
METHODS = ("encode", "bulk", "queue", "encode_b16", "bulk_b16", "queue_b16")
LABELS = {
    "encode": "encode(batch 64)",
    "bulk": "bulk API",
    "queue": "queue job",
    "encode_b16": "encode(batch 16)",
    "bulk_b16": "bulk API\nbatch 16",
    "queue_b16": "queue job\nbatch 16",
}


@dataclass(frozen=True)
class Params:
    records: int
    rounds: int
    request_batch: int
    request_concurrency: int = 2


PARAMS = {
    "tiny": Params(records=8, rounds=1, request_batch=4),
    "small": Params(records=300, rounds=1, request_batch=150),
    "full": Params(records=600, rounds=2, request_batch=300),
}


def run(size: str) -> Result:
    quiet_environment()
    return asyncio.run(_main(PARAMS[size], size))


async def _main(params: Params, size: str) -> Result:
    from vecpipe.providers.local import load_model
    from vecpipe.settings import Settings

    paragraphs = english_paragraphs(params.records)
    with tempfile.TemporaryDirectory(prefix="bench-local-") as tmp:
        async with AsyncExitStack() as stack:
            clients = {}
            for label, batch in (("", 64), ("_b16", 16)):
                settings = Settings(data_dir=Path(tmp) / f"data{label}", local_batch_size=batch)
                _, clients[label] = await stack.enter_async_context(
                    served_app(settings, run_worker=True)
                )
            model = load_model("all-MiniLM-L6-v2").model  # the very instance the apps use
            meter = stack.enter_context(ModelMeter(model))
            runner = _Runner(clients, meter, paragraphs, params)
            await runner.warm_up()
            runs: dict[str, list[dict[str, float]]] = {m: [] for m in METHODS}
            for round_no in range(params.rounds):
                shift = round_no % len(METHODS)
                for method in METHODS[shift:] + METHODS[:shift]:
                    runs[method].append(await runner.measure(method, round_no))
    result = _result(size, params, runs)
    result.figures["padded_tokens"] = padding_report(model.tokenizer, runner.texts("t0r0"))
    return result


class _Runner:
    def __init__(
        self,
        clients: dict[str, httpx.AsyncClient],
        meter: ModelMeter,
        paragraphs: list[str],
        params: Params,
    ) -> None:
        self.clients = clients
        self.meter = meter
        self.paragraphs = paragraphs
        self.params = params

    def texts(self, tag: str) -> list[str]:
        return [f"{tag}: {p}" for p in self.paragraphs]

    async def warm_up(self) -> None:
        warm = self.texts("w0")[: min(64, self.params.records)]
        await asyncio.to_thread(self._encode, warm, 64)
        for http in self.clients.values():
            await post_bodies(http, "warm", bodies(records(warm), len(warm)))

    async def measure(self, method: str, round_no: int) -> dict[str, float]:
        kind, _, variant = method.partition("_")
        http = self.clients[f"_{variant}" if variant else ""]
        texts = self.texts(f"t{METHODS.index(method)}r{round_no}")  # one length for all
        payloads = bodies(records(texts), self.params.request_batch)
        self.meter.take()
        clock = Stopwatch()
        if kind == "encode":
            await asyncio.to_thread(self._encode, texts, 16 if variant else 64)
        elif kind == "bulk":
            tenant = f"{method}{round_no}"
            done = await post_bodies(http, tenant, payloads, self.params.request_concurrency)
            _expect(done["upserted"], len(texts), method)
        else:
            done = await run_job(http, f"{method}{round_no}", records(texts))
            _expect(done["done"], len(texts), method)
        wall = clock.elapsed
        busy, encoded = self.meter.take()
        return {
            "records_per_s": len(texts) / wall,
            "model_busy_fraction": busy / wall,
            "encode_texts_per_busy_s": encoded / busy if busy else 0.0,
        }

    def _encode(self, texts: list[str], batch_size: int) -> Any:
        # what LocalProvider asks of the model, minus the service around it
        return self.meter.model.encode(
            texts,
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )


def _expect(got: int, wanted: int, method: str) -> None:
    if got != wanted:
        raise RuntimeError(f"{method}: {got} of {wanted} records were ingested")


def _result(size: str, params: Params, runs: dict[str, list[dict[str, float]]]) -> Result:
    def med_of(key: str) -> dict[str, float]:
        return {m: median([r[key] for r in rs]) for m, rs in runs.items()}

    rate, busy = med_of("records_per_s"), med_of("model_busy_fraction")
    speed = med_of("encode_texts_per_busy_s")
    figures: dict[str, Any] = {
        "records_per_run": params.records,
        "rounds": params.rounds,
        "request_batch": params.request_batch,
        "request_concurrency": params.request_concurrency,
        **{f"{m}_records_per_s": round(rate[m], 1) for m in METHODS},
        **{f"{m}_vs_encode": round(rate[m] / rate["encode"], 3) for m in METHODS[1:]},
        **{f"{m}_vs_encode_b16": round(rate[m] / rate["encode_b16"], 3) for m in METHODS[4:]},
        **{f"{m}_model_busy_fraction": round(busy[m], 3) for m in METHODS},
        **{f"{m}_encode_texts_per_busy_s": round(speed[m], 1) for m in METHODS},
        "per_round": {
            m: [{k: round(v, 3) for k, v in r.items()} for r in rs] for m, rs in runs.items()
        },
    }
    return Result(
        scenario=NAME,
        title=TITLE,
        size=size,
        figures=figures,
        targets=[
            Target("bulk API / model encode", figures["bulk_vs_encode"], 0.95),
            Target("queue job / model encode", figures["queue_vs_encode"], 0.95),
        ],
    )


def chart(result: Result, path: Path) -> None:
    f = result.figures
    charts.bars(
        path,
        f"{TITLE}\n({f['records_per_run']} records, median of {f['rounds']} rounds)",
        {LABELS[m]: f[f"{m}_records_per_s"] for m in METHODS},
        "records/s",
        reference=("0.95 x encode(batch 64)", 0.95 * f["encode_records_per_s"]),
    )
