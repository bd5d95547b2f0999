"""The API serving 200 gateway-backed requests, then shutting down, leaves nothing behind."""

from __future__ import annotations

import gc
from pathlib import Path

import httpx
from asgi_lifespan import LifespanManager

from tests.conftest import asyncio_error_messages
from tests.support.app import FakeFactory, make_settings
from tests.support.gateway import Gateway
from tests.support.sockets import open_sockets, wait_for_sockets_at_most
from vecpipe.api.app import create_app
from vecpipe.providers.base import EmbeddingProvider
from vecpipe.providers.kind import ProviderConfig
from vecpipe.providers.manager import ProviderFactory


async def test_200_requests_then_shutdown_close_every_client(
    tmp_path: Path, gateway: Gateway
) -> None:
    baseline = open_sockets()
    settings = make_settings(tmp_path / "data", gateway_allowlist="127.0.0.1", secret_key="k")
    app = create_app(settings, provider_factory=_gateway_or_fake())
    config = {
        "primary": {
            "kind": "openai",
            "base_url": gateway.base_url,
            "model": "gw",
            "dimensions": 16,
            "api_key": "sk-lifecycle-key",
        }
    }
    async with (
        LifespanManager(app, startup_timeout=60) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://t"
        ) as http,
    ):
        assert (await http.put("/v1/tenants/gw/ai-config", json=config)).status_code == 200
        for i in range(200):
            response = await http.post(
                "/v1/embeddings",
                json={"input": [f"request {i}"], "model": "gw"},
                headers={"X-Vecpipe-Tenant": "gw"},
            )
            assert response.status_code == 200, response.text
    gc.collect()
    assert asyncio_error_messages() == []
    assert wait_for_sockets_at_most(baseline) <= baseline
    assert gateway.control.requests >= 200


def _gateway_or_fake() -> ProviderFactory:
    """Gateway configs get the real OpenAI-compatible provider; the local default a fake."""
    from vecpipe.providers.kinds.openai import OpenAIProviderConfig
    from vecpipe.providers.url_policy import GatewayUrlPolicy
    from vecpipe.resources import default_provider_factory
    from vecpipe.settings import Settings

    fake = FakeFactory()
    real = default_provider_factory(Settings(), GatewayUrlPolicy(frozenset({"127.0.0.1"})))

    async def build(config: ProviderConfig) -> EmbeddingProvider:
        return await (real(config) if isinstance(config, OpenAIProviderConfig) else fake(config))

    return build
