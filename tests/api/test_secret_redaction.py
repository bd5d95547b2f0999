"""A gateway key set through ai-config appears in no response, log line, metric or file."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from tests.support.app import make_settings
from tests.support.gateway import Gateway
from vecpipe.api.app import create_app

SECRET = "sk-LEAKCHECK-9f8e7d6c5b4a"


@pytest.fixture
async def gw_client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(tmp_path / "data", gateway_allowlist="127.0.0.1", secret_key="key-1")
    app = create_app(settings)
    async with (
        LifespanManager(app, startup_timeout=120) as manager,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://t") as c,
    ):
        yield c


async def test_secret_never_leaves(
    gw_client: httpx.AsyncClient,
    gateway: Gateway,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    gateway.control.api_key = SECRET
    config = {
        "primary": {
            "kind": "openai",
            "base_url": gateway.base_url,
            "model": "m",
            "api_key": SECRET,
            "dimensions": 16,
        }
    }
    responses = [await gw_client.put("/v1/tenants/t/ai-config", json=config)]
    assert responses[0].status_code == 200, responses[0].text
    responses.append(await gw_client.get("/v1/tenants/t/ai-config"))
    responses.append(
        await gw_client.post("/v1/tenants/t/records", json={"upsert": [{"id": "a", "text": "x"}]})
    )
    gateway.control.api_key = "a-different-key"  # the gateway now rejects ours: errors follow
    responses.append(await gw_client.post("/v1/tenants/t/search", json={"query": "hello"}))
    bad = dict(config, primary={**config["primary"], "api_key": SECRET + "x"})
    responses.append(await gw_client.put("/v1/tenants/t/ai-config", json=bad))
    responses.append(await gw_client.get("/metrics"))
    assert responses[1].json()["config"]["primary"]["api_key"] == "***"
    assert responses[3].status_code >= 400  # the gateway refused our key
    for response in responses:
        assert SECRET not in response.text
    assert SECRET not in caplog.text
    for path in (tmp_path / "data").rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
