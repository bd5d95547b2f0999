"""Scenario 6: `vecpipe serve` cold start to /readyz, and peak RSS during a large ingest.

Cold start: a fresh data dir each time, from process spawn to the first 200 from /readyz
(the default local model is loaded before the server reports ready). Peak RSS: the last
server of the cold starts ingests N one-chunk records through the bulk API on a gateway
tenant (the loopback gateway in a child process, 384-d, 20 ms), while a second client keeps
the local model busy on the default tenant; /proc/<pid>/status is sampled every 0.25 s and
its VmHWM (the kernel's high-water mark) read at the end.
"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from tests.support.corpus import english_paragraphs
from tests.support.server import ServeProcess

from bench import charts
from bench.common import Result, Stopwatch, Target, quiet_environment, rss_mb
from bench.gateway_process import GatewayProcess
from bench.search_traffic import ingest_until
from bench.serving import bodies, post_bodies

NAME = "footprint"
TITLE = "Footprint: cold start and peak RSS"
ENV = {"VECPIPE_GATEWAY_ALLOWLIST": "127.0.0.1", "VECPIPE_SECRET_KEY": "bench-secret-key"}


@dataclass(frozen=True)
class Params:
    cold_starts: int
    chunks: int
    local_batch: int
    request_batch: int = 1000


PARAMS = {
    "tiny": Params(cold_starts=1, chunks=300, local_batch=2, request_batch=150),
    "small": Params(cold_starts=2, chunks=20_000, local_batch=32),
    "full": Params(cold_starts=3, chunks=100_000, local_batch=32),
}


def run(size: str) -> Result:
    quiet_environment()
    params = PARAMS[size]
    starts: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-footprint-") as tmp:
        for attempt in range(params.cold_starts):
            server = ServeProcess(Path(tmp) / f"data{attempt}", extra_env=ENV)
            try:
                clock = Stopwatch()
                server.start(timeout=120)
                starts.append(clock.elapsed)
                if attempt == params.cold_starts - 1:
                    ingest = _measure_ingest(server, params)
            finally:
                server.__exit__(None, None, None)
    return _result(size, params, starts, ingest)


def _measure_ingest(server: ServeProcess, params: Params) -> dict[str, Any]:
    assert server.process is not None
    pid = server.process.pid
    with GatewayProcess(0.02, 384) as gateway:
        ready_rss = rss_mb(pid)[0]
        figures = asyncio.run(_ingest_all(server.base_url, gateway.url, pid, params))
    figures["ready_rss_mb"] = round(ready_rss, 1)
    figures["peak_rss_mb"] = round(rss_mb(pid)[1], 1)
    return figures


async def _ingest_all(base_url: str, gateway_url: str, pid: int, params: Params) -> dict[str, Any]:
    texts = english_paragraphs(2000)
    items = [
        {"id": f"g{i}", "text": f"{i}: {texts[i % len(texts)]}", "metadata": {"i": i}}
        for i in range(params.chunks)
    ]
    samples: list[tuple[float, float]] = []
    stop = asyncio.Event()
    local_done = [0]
    async with httpx.AsyncClient(base_url=base_url, timeout=600) as http:
        provider = {
            "kind": "openai",
            "base_url": gateway_url,
            "model": "bench-embed",
            "api_key": "sk-bench-not-a-secret",
            "dimensions": 384,
        }
        response = await http.put("/v1/tenants/gw/ai-config", json={"primary": provider})
        response.raise_for_status()
        clock = Stopwatch()
        background = [
            asyncio.create_task(_sample_rss(pid, clock, stop, samples)),
            asyncio.create_task(
                ingest_until(http, "local", "l", params.local_batch, texts, stop, local_done)
            ),
        ]
        try:
            done = await post_bodies(http, "gw", bodies(items, params.request_batch))
            seconds = clock.elapsed
        finally:
            stop.set()
            await asyncio.gather(*background)
    if done["upserted"] != params.chunks:
        raise RuntimeError(f"{done['upserted']} of {params.chunks} records upserted")
    return {
        "ingest_seconds": round(seconds, 1),
        "ingest_records_per_s": round(params.chunks / seconds, 1),
        "local_records_alongside": local_done[0],
        "rss_timeline": samples,
    }


async def _sample_rss(
    pid: int, clock: Stopwatch, stop: asyncio.Event, out: list[tuple[float, float]]
) -> None:
    while not stop.is_set():
        out.append((round(clock.elapsed, 2), round(rss_mb(pid)[0], 1)))
        await asyncio.sleep(0.25)


def _result(size: str, params: Params, starts: list[float], ingest: dict[str, Any]) -> Result:
    figures: dict[str, Any] = {
        "cold_starts_s": [round(s, 2) for s in starts],
        "worst_cold_start_s": round(max(starts), 2),
        "chunks": params.chunks,
        **ingest,
    }
    return Result(
        scenario=NAME,
        title=TITLE,
        size=size,
        figures=figures,
        targets=[
            Target("worst cold start to /readyz", figures["worst_cold_start_s"], 15, False, "s"),
            Target("peak RSS during the ingest", figures["peak_rss_mb"], 1536, False, "MiB"),
        ],
    )


def chart(result: Result, path: Path) -> None:
    f = result.figures
    timeline = f["rss_timeline"] or [(0.0, 0.0)]
    charts.timeline(
        path,
        f"RSS of `vecpipe serve` during a {f['chunks']:,}-chunk ingest "
        f"(peak {f['peak_rss_mb']:.0f} MiB)",
        [t for t, _ in timeline],
        [mb for _, mb in timeline],
        "RSS (MiB)",
        limit=("1.5 GiB", 1536),
    )
