"""Scenario 2b: jobs submitted over HTTP to `vecpipe serve`, against the seed's pattern.

What a user of the gateway path sees: `vecpipe serve` (a subprocess, defaults, its
in-process worker) on a fresh data dir, a gateway tenant on the loopback gateway (20 ms per
request, 384-d, in a child process), and a client that submits jobs of 1,000 records each
over HTTP (`POST /v1/tenants/gw/jobs`, all of them at once) and polls until every one has
completed. Records/s are timed from the first POST to the last `completed`; each round uses
new record ids (a first ingest, never unchanged). The server's process CPU (user + system,
every thread, from /proc) over the same window gives its CPU per record. The seed pattern is
gateway_mode's, measured in this run, on the same gateway.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from tests.support.server import ServeProcess

from bench import charts
from bench.common import Result, Target, median, quiet_environment
from bench.gateway_mode import API_KEY, DIMENSION, LATENCY, MODEL, _texts, seed_pattern
from bench.gateway_process import GatewayProcess

NAME = "gateway_serve"
TITLE = "Gateway jobs over HTTP to `vecpipe serve` against the seed's per-message pattern"
ENV = {"VECPIPE_GATEWAY_ALLOWLIST": "127.0.0.1", "VECPIPE_SECRET_KEY": "bench-secret-key"}
JOB_SIZE = 1000


@dataclass(frozen=True)
class Params:
    records: int  # in jobs of JOB_SIZE (the last one smaller)
    rounds: int
    seed_messages: int


PARAMS = {
    "tiny": Params(records=300, rounds=1, seed_messages=5),
    "small": Params(records=3000, rounds=2, seed_messages=40),
    "full": Params(records=10_000, rounds=3, seed_messages=150),
}


def run(size: str) -> Result:
    quiet_environment()
    params = PARAMS[size]
    texts = _texts(params.records)
    with GatewayProcess(LATENCY, DIMENSION) as gateway:
        seed_rate = seed_pattern(gateway.url, texts[: params.seed_messages])
        with tempfile.TemporaryDirectory(prefix="bench-gw-serve-") as tmp:
            server = ServeProcess(Path(tmp) / "data", extra_env=ENV)
            try:
                server.start(timeout=180)
                assert server.process is not None
                rounds = asyncio.run(
                    _rounds(server.base_url, server.process.pid, gateway, params, texts)
                )
            finally:
                server.__exit__(None, None, None)
    return _result(size, params, seed_rate, rounds)


async def _rounds(
    base_url: str, pid: int, gateway: GatewayProcess, params: Params, texts: list[str]
) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=base_url, timeout=600) as http:
        provider = {
            "kind": "openai",
            "base_url": gateway.url,
            "model": MODEL,
            "api_key": API_KEY,
            "dimensions": DIMENSION,
        }
        response = await http.put("/v1/tenants/gw/ai-config", json={"primary": provider})
        response.raise_for_status()
        await _jobs(http, [{"id": f"w{i}", "text": f"warm up {i}"} for i in range(256)])
        runs = []
        for round_ in range(params.rounds):
            items = [{"id": f"r{round_}-{i}", "text": t} for i, t in enumerate(texts)]
            gateway.reset()
            cpu_before, started = _process_cpu(pid), time.perf_counter()
            done = await _jobs(http, items)
            seconds, cpu = time.perf_counter() - started, _process_cpu(pid) - cpu_before
            if done != len(items):
                raise RuntimeError(f"the jobs stored {done} of {len(items)} records")
            runs.append(
                {
                    "round": round_,
                    "seconds": round(seconds, 3),
                    "records_per_s": round(len(items) / seconds, 1),
                    "server_cpu_us_per_record": round(cpu / len(items) * 1e6, 1),
                    "gateway_requests": gateway.stats()["requests"],
                }
            )
    return runs


async def _jobs(http: httpx.AsyncClient, items: list[dict[str, Any]]) -> int:
    """Submit one job per JOB_SIZE records, all at once; poll until all completed; done."""
    chunks = [items[i : i + JOB_SIZE] for i in range(0, len(items), JOB_SIZE)]

    async def submit(chunk: list[dict[str, Any]]) -> str:
        response = await http.post("/v1/tenants/gw/jobs", json={"upsert": chunk})
        response.raise_for_status()
        return str(response.json()["job_id"])

    pending = set(await asyncio.gather(*(submit(chunk) for chunk in chunks)))
    done = 0
    while pending:  # polled, as a client would
        await asyncio.sleep(0.1)
        for job_id in sorted(pending):
            answer = (await http.get(f"/v1/tenants/gw/jobs/{job_id}")).json()
            if answer["status"] == "completed":
                pending.discard(job_id)
                done += answer["done"]
    return done


def _process_cpu(pid: int) -> float:
    """User + system CPU seconds of the process, every thread (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _result(size: str, params: Params, seed: float, runs: list[dict[str, Any]]) -> Result:
    rate = median([r["records_per_s"] for r in runs])
    cpu = median([r["server_cpu_us_per_record"] for r in runs])
    figures: dict[str, Any] = {
        "records": params.records,
        "jobs": -(-params.records // JOB_SIZE),
        "rounds": params.rounds,
        "seed_messages": params.seed_messages,
        "gateway_latency_ms": LATENCY * 1000,
        "dimension": DIMENSION,
        "seed_records_per_s": round(seed, 2),
        "serve_records_per_s_median": round(rate, 1),
        "serve_cpu_us_per_record_median": round(cpu, 1),
        "serve_vs_seed": round(rate / seed, 1),
        "runs": runs,
    }
    return Result(
        scenario=NAME,
        title=TITLE,
        size=size,
        figures=figures,
        targets=[Target("jobs over HTTP to serve / seed pattern", figures["serve_vs_seed"], 200)],
    )


def chart(result: Result, path: Path) -> None:
    f = result.figures
    values = {"seed pattern": f["seed_records_per_s"]}
    for run_ in f["runs"]:
        values[f"serve\nround {run_['round'] + 1}"] = run_["records_per_s"]
    charts.bars(
        path,
        f"{TITLE}\n({f['jobs']} jobs, {f['records']} records,"
        f" gateway {f['gateway_latency_ms']:.0f} ms)",
        values,
        "records/s (log scale)",
        reference=("200 x seed", 200 * f["seed_records_per_s"]),
        log=True,
    )
