"""`vecpipe serve` stopping: within the grace period under load, and non-zero when the
application's shutdown fails.

Measured (2-CPU box shared with other sessions, grace 3 s, three clients posting 64 long
records each and a 1,000-record job, SIGTERM 6 s into the load): before, 9-15 s from
SIGTERM to exit, the grace spent twice (HTTP, then the worker) and 3-9 s after `Finished
server process` in the interpreter's finalization; after, 4.0-4.1 s.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.support.server import ServeProcess

pytestmark = pytest.mark.slow

GRACE_SECONDS = 2
BOUND_SECONDS = 4.0  # a loaded box: ~1 s measured on a quiet one


def _records(prefix: str, n: int) -> list[dict[str, str]]:
    filler = "lorem ipsum dolor sit amet " * 40  # ~250 tokens: the model works for its keep
    return [{"id": f"{prefix}-{i}", "text": f"record {prefix} {i} {filler}"} for i in range(n)]


async def _keep_posting(url: str, client_id: int, stop: asyncio.Event) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        for round_ in range(1_000_000):
            if stop.is_set():
                return
            body = {"upsert": _records(f"c{client_id}-{round_}", 64)}
            try:
                await client.post("/v1/tenants/acme/records", json=body)
            except httpx.HTTPError:
                return  # the server has gone: what we are waiting for


async def _sigterm_under_load(server: ServeProcess) -> float:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
        job = await client.post("/v1/tenants/acme/jobs", json={"upsert": _records("job", 1000)})
        assert job.status_code == 202, job.text
    stop = asyncio.Event()
    clients = [asyncio.create_task(_keep_posting(server.base_url, i, stop)) for i in range(3)]
    await asyncio.sleep(4)  # the worker and three requests are mid-encode
    started = time.monotonic()
    server.signal(signal.SIGTERM)
    code = await asyncio.to_thread(server.wait, 60)
    elapsed = time.monotonic() - started
    stop.set()
    await asyncio.gather(*clients)
    assert code == 0, server.log()
    return elapsed


@pytest.mark.serial  # a bound in seconds: the load must be the test's own, not other tests'
def test_sigterm_under_load_exits_within_grace_plus_a_bound(tmp_path: Path) -> None:
    env = {"VECPIPE_SHUTDOWN_GRACE_SECONDS": str(GRACE_SECONDS)}
    server = ServeProcess(tmp_path / "data", extra_env=env).start(timeout=180)
    try:
        elapsed = asyncio.run(_sigterm_under_load(server))
    finally:
        server.kill()
    assert elapsed <= GRACE_SECONDS + BOUND_SECONDS, (elapsed, server.log())
    assert "Finished server process" in server.log()


def test_a_failed_application_shutdown_exits_non_zero(tmp_path: Path) -> None:
    env = {"FAKE_SERVE_FAIL_SHUTDOWN": "1"}
    server = ServeProcess(tmp_path / "data", extra_env=env, fake_providers=True).start()
    try:
        server.signal(signal.SIGTERM)
        code = server.wait(30)
    finally:
        server.kill()
    assert "Application shutdown failed" in server.log()
    assert code == 2, server.log()
    assert "error: the application's shutdown failed" in server.log()
