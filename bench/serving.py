"""Serving the app in-process on the bench's one loop, and driving it over real HTTP."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from vecpipe.resources import Resources
from vecpipe.settings import Settings

RecordDict = dict[str, Any]


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    """uvicorn on 127.0.0.1:<ephemeral> as a task of the running loop; yields the base URL."""
    # proto IPPROTO_TCP, as `vecpipe serve`'s listeners have (runtime.bind_listeners): asyncio
    # sets TCP_NODELAY only on such sockets' connections. With socket.socket()'s proto 0 every
    # response waited for the client's delayed ACK: /healthz took 45 ms in process, 1.5 ms so.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, log_config=None, log_level="warning", access_log=False, lifespan="on"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="bench-uvicorn")
    try:
        while not server.started:
            if task.done():
                await task
                raise RuntimeError("the server did not start")
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


@asynccontextmanager
async def served_app(
    settings: Settings, *, run_worker: bool = False
) -> AsyncIterator[tuple[Resources, httpx.AsyncClient]]:
    """The app on a loopback port as `vecpipe serve` runs it (its resources opened and
    warmed up first; with run_worker, the worker in process), its resources, and a client."""
    from vecpipe.api.app import create_app
    from vecpipe.resources import open_resources, warm_up
    from vecpipe.worker.background import in_process_worker

    async with open_resources(settings) as resources:
        await warm_up(resources)
        background = in_process_worker if run_worker else None
        app = create_app(settings, resources=resources, background=background)
        async with serving(app) as url, client(url) as http:
            yield resources, http


def client(base_url: str, timeout: float = 600.0) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=base_url, timeout=timeout)


def records(texts: Sequence[str], prefix: str = "r") -> list[RecordDict]:
    return [
        {"id": f"{prefix}{i}", "text": text, "metadata": {"n": i % 10}}
        for i, text in enumerate(texts)
    ]


def bodies(items: Sequence[RecordDict], batch: int) -> list[bytes]:
    """Pre-encoded request bodies, so the client spends no time on JSON while timing."""
    return [
        json.dumps({"upsert": list(items[i : i + batch])}).encode()
        for i in range(0, len(items), batch)
    ]


async def post_bodies(
    http: httpx.AsyncClient, tenant: str, payloads: Sequence[bytes], concurrency: int = 2
) -> dict[str, int]:
    """POST each body to the tenant's bulk API, `concurrency` in flight; summed counts."""
    return await post_many(http, [(tenant, body) for body in payloads], concurrency)


async def post_many(
    http: httpx.AsyncClient, requests: Sequence[tuple[str, bytes]], concurrency: int = 2
) -> dict[str, int]:
    """POST (tenant, body) pairs to the bulk API in order, `concurrency` in flight."""
    totals = {"upserted": 0, "unchanged": 0, "deleted": 0, "failed": 0}
    pending = list(reversed(requests))

    async def one_client() -> None:
        while pending:
            tenant, body = pending.pop()
            response = await http.post(
                f"/v1/tenants/{tenant}/records",
                content=body,
                headers={"content-type": "application/json"},
            )
            response.raise_for_status()
            answer = response.json()
            for key in ("upserted", "unchanged", "deleted"):
                totals[key] += answer[key]
            totals["failed"] += len(answer["failed"])

    await asyncio.gather(*(one_client() for _ in range(max(1, concurrency))))
    return totals


async def run_job(
    http: httpx.AsyncClient, tenant: str, items: Sequence[RecordDict], poll: float = 0.05
) -> dict[str, Any]:
    """Submit one job per 1000 records, then poll until every job has completed."""
    job_ids = []
    for start in range(0, len(items), 1000):
        body = {"upsert": list(items[start : start + 1000])}
        response = await http.post(f"/v1/tenants/{tenant}/jobs", json=body)
        response.raise_for_status()
        job_ids.append(response.json()["job_id"])
    statuses: dict[str, dict[str, Any]] = {}
    while len(statuses) < len(job_ids):
        await asyncio.sleep(poll)
        for job_id in job_ids:
            if job_id in statuses:
                continue
            answer = (await http.get(f"/v1/tenants/{tenant}/jobs/{job_id}")).json()
            if answer["status"] == "completed":
                statuses[job_id] = answer
    return {key: sum(s[key] for s in statuses.values()) for key in ("done", "unchanged", "failed")}


async def timed(coro: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    value = await coro
    return time.perf_counter() - started, value
