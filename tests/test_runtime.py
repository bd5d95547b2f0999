"""`vecpipe serve` as a real process: the real model, Qdrant Edge, the SQLite queue."""

from __future__ import annotations

import asyncio
import random
import signal
import socket
import time
from pathlib import Path

import httpx
import pytest

from tests.support.corpus import english_paragraphs
from tests.support.processes import wait_until_async
from tests.support.server import ServeProcess
from vecpipe.runtime import bind_listeners

pytestmark = pytest.mark.slow


def _post_records(client: httpx.Client, texts: list[str], prefix: str) -> None:
    for start in range(0, len(texts), 250):
        upserts = [
            {"id": f"{prefix}{i}", "text": t, "metadata": {"n": i}}
            for i, t in enumerate(texts[start : start + 250], start)
        ]
        response = client.post("/v1/tenants/docs/records", json={"upsert": upserts}, timeout=120)
        assert response.status_code == 200, response.text
        assert not response.json()["failed"]


def _top_id(client: httpx.Client, query: str) -> str:
    response = client.post("/v1/tenants/docs/search", json={"query": query, "limit": 3})
    assert response.status_code == 200, response.text
    return str(response.json()["results"][0]["id"])


def test_serve_ingest_search_sigterm_restart(tmp_path: Path) -> None:
    texts = english_paragraphs(1000)
    sample = random.Random(7).sample(range(len(texts)), 50)
    data_dir = tmp_path / "data"
    server = ServeProcess(data_dir).start()
    try:
        with httpx.Client(base_url=server.base_url, timeout=60) as client:
            _post_records(client, texts, "doc")
            assert all(_top_id(client, texts[i]) == f"doc{i}" for i in sample)
            again = client.post(
                "/v1/tenants/docs/records",
                json={
                    "upsert": [
                        {"id": f"doc{i}", "text": texts[i], "metadata": {"n": i}}
                        for i in range(100)
                    ]
                },
            )
            assert again.json()["unchanged"] == 100
        started = time.monotonic()
        server.signal(signal.SIGTERM)
        assert server.wait(timeout=10) == 0
        assert time.monotonic() - started < 10
    finally:
        server.kill()
    assert "Traceback" not in server.log(), server.log()
    with ServeProcess(data_dir) as restarted, httpx.Client(base_url=restarted.base_url) as client:
        assert all(_top_id(client, texts[i]) == f"doc{i}" for i in sample[:10])


def _job_status(client: httpx.Client, job_id: str) -> dict[str, object]:
    response = client.get(f"/v1/tenants/docs/jobs/{job_id}")
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def test_queue_job_survives_sigkill(tmp_path: Path) -> None:
    texts = english_paragraphs(500)
    data_dir = tmp_path / "data"
    short_leases = {"VECPIPE_LEASE_SECONDS": "15"}  # a killed worker's leases come back soon
    server = ServeProcess(data_dir, extra_env=short_leases).start()
    try:
        with httpx.Client(base_url=server.base_url, timeout=60) as client:
            body = {"upsert": [{"id": f"q{i}", "text": t} for i, t in enumerate(texts)]}
            job_id = client.post("/v1/tenants/docs/jobs", json=body).json()["job_id"]
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                if int(str(_job_status(client, job_id)["done"])) >= 50:
                    break
                time.sleep(0.05)
        server.kill()  # SIGKILL mid-job
    finally:
        server.kill()
    restarted = ServeProcess(data_dir, extra_env=short_leases)
    with restarted, httpx.Client(base_url=restarted.base_url) as client:
        deadline = time.monotonic() + 180
        status = _job_status(client, job_id)
        while status["status"] != "completed" and time.monotonic() < deadline:
            time.sleep(0.2)
            status = _job_status(client, job_id)
        assert status["status"] == "completed", status
        assert status["total"] == 500
        assert (status["done"], status["unchanged"], status["failed"]) == (500, 0, 0) or (
            int(str(status["done"])) + int(str(status["unchanged"])) == 500
            and status["failed"] == 0
        )
        for i in range(500):
            got = client.get(f"/v1/tenants/docs/records/q{i}")
            assert got.status_code == 200 and got.json()["text"] == texts[i]


async def test_served_connections_send_without_waiting_for_acks() -> None:
    """asyncio sets TCP_NODELAY only on connections of proto-IPPROTO_TCP listeners (a bare
    socket.socket() has proto 0, and its responses then wait ~40 ms for delayed ACKs)."""
    [listener] = bind_listeners("127.0.0.1", 0)
    nodelay: list[int] = []

    async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        nodelay.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(accepted, sock=listener)
    async with server:
        _, writer = await asyncio.open_connection(*listener.getsockname()[:2])
        await wait_until_async(lambda: nodelay, 5, "the connection accepted")
        writer.close()
        await writer.wait_closed()
    assert nodelay == [1]
