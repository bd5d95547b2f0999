"""Fixtures that build vecpipe on a temp data dir with fast fake providers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from tests.support.fake_provider import FakeProvider
from vecpipe.api.app import create_app
from vecpipe.api.state import AppState
from vecpipe.models import EmbeddingSpace
from vecpipe.providers.base import EmbeddingProvider
from vecpipe.providers.kind import ProviderConfig
from vecpipe.providers.kinds.openai import OpenAIProviderConfig
from vecpipe.resources import Resources, open_resources
from vecpipe.settings import Settings
from vecpipe.store.edge import EdgeStore

FAKE_DIMENSION = 32


@dataclass
class FakeFactory:
    """Builds a FakeProvider per config (kind local), remembering each one it built."""

    dimension: int = FAKE_DIMENSION
    built: list[FakeProvider] = field(default_factory=list)

    async def __call__(self, config: ProviderConfig) -> EmbeddingProvider:
        assert not isinstance(config, OpenAIProviderConfig), "use the gateway fixture for openai"
        provider = FakeProvider(space=EmbeddingSpace(config.model, self.dimension))
        self.built.append(provider)
        return provider

    @property
    def texts_embedded(self) -> int:
        return sum(p.embedded_texts for p in self.built)


def edge_store(resources: Resources) -> EdgeStore:
    """The EdgeStore beneath `resources.store` (its GuardedStore), for what only Edge does."""
    store = getattr(resources.store, "inner", resources.store)
    assert isinstance(store, EdgeStore)
    return store


def lifespan_state(manager: LifespanManager) -> AppState:
    """The typed state the app's lifespan yielded: what its requests read (request.state).
    asgi-lifespan keeps that mapping to hand it to every request scope."""
    return AppState.of(manager._state)


def make_settings(data_dir: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": data_dir,
        "worker_poll_seconds": 0.02,
        "retry_base_seconds": 0.01,
        "retry_max_seconds": 0.05,
        "lease_seconds": 5.0,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "data")


@pytest.fixture
def fake_factory() -> FakeFactory:
    return FakeFactory()


@pytest.fixture
async def resources(settings: Settings, fake_factory: FakeFactory) -> AsyncIterator[Resources]:
    async with open_resources(settings, provider_factory=fake_factory) as opened:
        yield opened


@pytest.fixture
async def client(settings: Settings, fake_factory: FakeFactory) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, provider_factory=fake_factory)
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://vecpipe.test"
        ) as http,
    ):
        yield http
