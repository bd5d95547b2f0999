"""`GET .../ai-config` shows a migration's progress; `DELETE .../ai-config/migration` cancels it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx
import pytest

from tests.support.app import FakeFactory
from tests.support.fake_provider import FakeProvider
from vecpipe.models import EmbeddingSpace
from vecpipe.providers.base import EmbeddingProvider, Purpose
from vecpipe.providers.kind import ProviderConfig
from vecpipe.providers.kinds.openai import OpenAIProviderConfig

HELD = "held-model"
URL = "/v1/tenants/acme/ai-config"


class HeldProvider(FakeProvider):
    """Embeds only once `release` is set: a migration to it stays running until then."""

    def __init__(self, space: EmbeddingSpace, release: asyncio.Event) -> None:
        super().__init__(space)
        self.release = release

    async def embed(
        self, texts: Sequence[str], *, purpose: Purpose = "document"
    ) -> list[list[float]]:
        await self.release.wait()
        return await super().embed(texts, purpose=purpose)


@dataclass
class HeldFactory(FakeFactory):
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, config: ProviderConfig) -> EmbeddingProvider:
        if isinstance(config, OpenAIProviderConfig) or config.model != HELD:
            return await super().__call__(config)
        return HeldProvider(EmbeddingSpace(config.model, self.dimension), self.release)


@pytest.fixture
def fake_factory() -> FakeFactory:
    return HeldFactory()


async def test_a_migration_is_shown_and_can_be_cancelled(
    client: httpx.AsyncClient, fake_factory: HeldFactory
) -> None:
    records = [{"id": f"r{i}", "text": f"searchable text {i}"} for i in range(20)]
    posted = await client.post("/v1/tenants/acme/records", json={"upsert": records})
    assert posted.status_code == 200, posted.text
    before = (await client.get(URL)).json()["space"]

    put = await client.put(URL, json={"primary": {"kind": "local", "model": HELD}})
    assert put.status_code == 200, put.text
    assert put.json()["space"]["model"] == HELD  # the target
    assert put.json()["migration"]["state"] == "running"

    shown = (await client.get(URL)).json()
    assert shown["space"] == before  # still searched: the old space
    assert shown["config"]["primary"]["model"] == HELD
    migration = shown["migration"]
    assert (migration["state"], migration["total"], migration["done"]) == ("running", 20, 0)
    assert migration["from_space"] == before and migration["to_space"]["model"] == HELD
    assert "to_config" not in migration and "from_config" not in migration
    search = await client.post("/v1/tenants/acme/search", json={"query": "searchable text 3"})
    assert search.status_code == 200 and search.json()["results"]

    assert (await client.delete(f"{URL}/migration")).status_code == 204
    fake_factory.release.set()
    cancelled = (await client.get(URL)).json()
    assert cancelled["migration"]["state"] == "cancelled"
    assert cancelled["space"] == before and cancelled["configured"] is False
    assert (await client.delete(f"{URL}/migration")).status_code == 404


async def test_no_migration_is_shown_as_null(client: httpx.AsyncClient) -> None:
    shown = await client.get("/v1/tenants/fresh/ai-config")
    assert shown.status_code == 200 and shown.json()["migration"] is None
