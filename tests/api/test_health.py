from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from tests.support.app import FakeFactory, lifespan_state, make_settings
from vecpipe.api.app import create_app
from vecpipe.resources import Resources


async def test_health_ready_metrics(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    metrics = await client.get("/metrics")
    assert metrics.status_code == 200 and "vecpipe_" in metrics.text


@pytest.mark.parametrize(("floor_mib", "status"), [(100, 503), (50, 200), (0, 200)])
async def test_the_readiness_floor_is_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, floor_mib: int, status: int
) -> None:
    """80 MiB free: not ready under a 100 MiB floor, ready under 50 MiB or none (the floor
    was a hard-coded 64 MiB)."""
    monkeypatch.setattr("vecpipe.diskspace.free_bytes", lambda path: 80 * 1024 * 1024)
    settings = make_settings(tmp_path / "data", min_free_bytes=floor_mib * 1024 * 1024)
    app = create_app(settings, provider_factory=FakeFactory())
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            ready = await http.get("/readyz")
    assert ready.status_code == status, ready.text
    if status == 503:
        assert ready.json()["reason"].startswith("the data dir disk has 80.0 MiB free")
        assert "below the floor of 100.0 MiB (VECPIPE_MIN_FREE_BYTES)" in ready.json()["reason"]


class _Handle:
    def __init__(self) -> None:
        self.running = True

    def is_running(self) -> bool:
        return self.running


async def test_readiness_asks_the_background_work_and_the_app_keeps_no_state_of_its_own(
    tmp_path: Path,
) -> None:
    handle = _Handle()
    given: list[Resources] = []

    @asynccontextmanager
    async def background(resources: Resources) -> AsyncIterator[_Handle]:
        given.append(resources)
        yield handle

    settings = make_settings(tmp_path / "data")
    app = create_app(settings, provider_factory=FakeFactory(), background=background)
    async with LifespanManager(app) as manager:
        assert given == [lifespan_state(manager).resources]
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            assert (await http.get("/readyz")).status_code == 200
            job = {"upsert": [{"id": "1", "text": "quota buckets are made"}]}
            assert (await http.post("/v1/tenants/acme/jobs", json=job)).status_code == 202
            handle.running = False
            stopped = await http.get("/readyz")
    assert stopped.status_code == 503 and stopped.json()["reason"] == "worker stopped"
    assert vars(app.state) == {"_state": {}}  # everything lives in the lifespan's state
