"""HTTP search against a `vecpipe serve` subprocess: idle and with ingest traffic alongside."""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from tests.support.corpus import english_paragraphs
from tests.support.server import ServeProcess

from bench.common import Stopwatch
from bench.gateway_process import GatewayProcess
from bench.search_setup import TENANT

GATEWAY_MODEL = "bench-embed"
PHASES = ("idle", "local_ingest", "gateway_ingest")


@dataclass(frozen=True)
class Traffic:
    queries: int  # sequential searches per phase, at most
    seconds: float  # per phase, at most: whichever limit comes first ends the phase
    local_batch: int  # records per request of the local-model ingest
    gateway_batch: int  # records per request of the gateway ingest


def http_phases(data_dir: Path, traffic: Traffic) -> dict[str, dict[str, Any]]:
    """Per phase: search and /healthz latencies (s) and records ingested alongside."""
    env = {"VECPIPE_GATEWAY_ALLOWLIST": "127.0.0.1", "VECPIPE_SECRET_KEY": "bench-secret-key"}
    with GatewayProcess(0.02, 384) as gateway, ServeProcess(data_dir, extra_env=env) as server:
        try:
            return asyncio.run(_phases(server.base_url, gateway.url, traffic))
        except Exception:
            print(f"--- the server's log, last lines:\n{server.log()}", file=sys.stderr)
            raise


async def _phases(base_url: str, gateway_url: str, traffic: Traffic) -> dict[str, dict[str, Any]]:
    queries = traffic.queries
    paragraphs = english_paragraphs(3 * queries + 20)
    questions = [" ".join(p.split()[:8]) for p in paragraphs]
    batches = {"local_ingest": traffic.local_batch, "gateway_ingest": traffic.gateway_batch}
    async with httpx.AsyncClient(base_url=base_url, timeout=120) as http:
        await _configure_gateway_tenant(http, gateway_url)
        await _searches(http, questions[: min(10, queries)], traffic.seconds)  # warm up
        results = {}
        for index, phase in enumerate(PHASES):
            own = questions[10 + index * queries : 10 + (index + 1) * queries]
            results[phase] = await _phase(
                http, phase, own, paragraphs, batches.get(phase, 0), traffic.seconds
            )
    return results


async def _configure_gateway_tenant(http: httpx.AsyncClient, gateway_url: str) -> None:
    provider = {
        "kind": "openai",
        "base_url": gateway_url,
        "model": GATEWAY_MODEL,
        "api_key": "sk-bench-not-a-secret",
        "dimensions": 384,
    }
    response = await http.put("/v1/tenants/ingest-gw/ai-config", json={"primary": provider})
    response.raise_for_status()


async def _phase(
    http: httpx.AsyncClient,
    phase: str,
    questions: list[str],
    texts: list[str],
    batch: int,
    seconds: float,
) -> dict[str, Any]:
    stop = asyncio.Event()
    healthz: list[float] = []
    ingested = [0]
    background = [asyncio.create_task(_probe_health(http, stop, healthz))]
    if phase != "idle":
        tenant = "ingest-gw" if phase == "gateway_ingest" else "ingest-local"
        background += [
            asyncio.create_task(ingest_until(http, tenant, f"c{n}", batch, texts, stop, ingested))
            for n in range(2)
        ]
        await asyncio.sleep(0.5)  # let the ingest get going
    try:
        search = await _searches(http, questions, seconds)
    finally:
        stop.set()
        await asyncio.gather(*background)
    return {"search": search, "healthz": healthz, "ingested": ingested[0]}


async def _searches(http: httpx.AsyncClient, questions: list[str], seconds: float) -> list[float]:
    latencies: list[float] = []
    phase = Stopwatch()
    for question in questions:
        if phase.elapsed > seconds:
            break
        clock = Stopwatch()
        response = await http.post(
            f"/v1/tenants/{TENANT}/search", json={"query": question, "limit": 10}
        )
        latencies.append(clock.elapsed)
        response.raise_for_status()
    return latencies


async def _probe_health(http: httpx.AsyncClient, stop: asyncio.Event, out: list[float]) -> None:
    while not stop.is_set():
        clock = Stopwatch()
        (await http.get("/healthz")).raise_for_status()
        out.append(clock.elapsed)
        await asyncio.sleep(0.05)


async def ingest_until(
    http: httpx.AsyncClient,
    tenant: str,
    client_id: str,
    batch: int,
    texts: list[str],
    stop: asyncio.Event,
    ingested: list[int],
) -> None:
    """Bulk upserts of new text until told to stop (the request in flight finishes)."""
    request_no = 0
    while not stop.is_set():
        base = request_no * batch
        upsert = [
            {
                "id": f"{client_id}-{base + i}",
                "text": f"{client_id} {base + i}: {texts[(base + i) % len(texts)]}",
                "metadata": {"client": client_id},
            }
            for i in range(batch)
        ]
        response = await http.post(f"/v1/tenants/{tenant}/records", json={"upsert": upsert})
        response.raise_for_status()
        ingested[0] += response.json()["upserted"]
        request_no += 1
