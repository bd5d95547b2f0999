"""Model migration: a tenant moves to another embedding space while search keeps answering."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.app import FAKE_DIMENSION, FakeFactory, make_settings
from tests.support.gateway import Gateway
from tests.support.processes import wait_until_async
from vecpipe.db import open_database
from vecpipe.errors import NotFound, ValidationError
from vecpipe.models import EmbeddingSpace, Record, StoredRecord
from vecpipe.providers.base import EmbeddingProvider, Purpose
from vecpipe.providers.kind import ProviderConfig
from vecpipe.providers.kinds.openai import OpenAIProviderConfig
from vecpipe.providers.url_policy import GatewayUrlPolicy
from vecpipe.resources import Resources, default_provider_factory, open_resources
from vecpipe.settings import Settings
from vecpipe.store.query import SearchQuery

TENANT = "acme"
GATEWAY_DIMENSION = 16


@dataclass
class Gate:
    """When armed, the next embed call through a gated provider waits for `release`."""

    armed: bool = False
    waiting: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)


class GatedProvider:
    def __init__(self, inner: EmbeddingProvider, gate: Gate) -> None:
        self.inner = inner
        self.gate = gate
        self.name = inner.name
        self.space = inner.space

    async def chunk(self, texts: Sequence[str]) -> list[list[str]]:
        return await self.inner.chunk(texts)

    async def embed(
        self, texts: Sequence[str], *, purpose: Purpose = "document"
    ) -> list[list[float]]:
        if self.gate.armed:
            self.gate.armed = False
            self.gate.waiting.set()
            await self.gate.release.wait()
        return await self.inner.embed(texts, purpose=purpose)

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass
class MixedFactory:
    """Local configs get fakes (32-d), gateway configs the real client (optionally gated)."""

    settings: Settings
    gate: Gate = field(default_factory=Gate)
    fakes: FakeFactory = field(default_factory=FakeFactory)

    async def __call__(self, config: ProviderConfig) -> EmbeddingProvider:
        if not isinstance(config, OpenAIProviderConfig):
            return await self.fakes(config)
        policy = GatewayUrlPolicy(self.settings.allowlisted_gateway_hosts)
        provider = await default_provider_factory(self.settings, policy)(config)
        return GatedProvider(provider, self.gate)


def gateway_config(gateway: Gateway) -> dict[str, object]:
    primary = {
        "kind": "openai",
        "base_url": gateway.base_url,
        "model": "gw-model",
        "api_key": "sk-migration-test-key",
        "dimensions": GATEWAY_DIMENSION,
    }
    return {"primary": primary}


def records(n: int, start: int = 0) -> list[Record]:
    return [
        Record(id=f"r{i}", text=f"record {i} about subject{i} and theme{i * 7}")
        for i in range(start, start + n)
    ]


@pytest.fixture
def migration_settings(tmp_path: Path) -> Settings:
    return make_settings(
        tmp_path / "data",
        gateway_allowlist="127.0.0.1",
        secret_key="k",
        migration_grace_seconds=0,
        migration_poll_seconds=0.05,
    )


@asynccontextmanager
async def open_tenant(
    settings: Settings, factory: MixedFactory, n: int
) -> AsyncIterator[Resources]:
    async with open_resources(settings, provider_factory=factory) as resources:
        await resources.pipeline.ingest(TENANT, records(n))
        yield resources


async def wait_for_state(resources: Resources, *states: str) -> dict[str, object]:
    while True:
        status = await resources.pipeline.migration_status(TENANT)
        if status is not None and status["state"] in states:
            return status
        await asyncio.sleep(0.02)


async def assert_all_searchable(resources: Resources, ids: set[str]) -> EmbeddingSpace:
    """Each record's own text finds it (16-d test vectors collide: among the first 10)."""
    pipeline = resources.pipeline
    space = await pipeline.space_of(TENANT)
    found = {r.record_id: r for r in await stored(resources, space)}
    assert set(found) == ids
    texts = [found[i].text for i in sorted(ids)]
    vectors = await pipeline.embed(texts, TENANT)
    for record_id, vector in zip(sorted(ids), vectors, strict=True):
        hits = await resources.store.search(space, SearchQuery(TENANT, vector, limit=10))
        assert record_id in [hit.id for hit in hits]
    return space


async def stored(resources: Resources, space: EmbeddingSpace) -> list[StoredRecord]:
    out: list[StoredRecord] = []
    cursor: str | None = None
    while True:
        page, cursor = await resources.store.scroll_records(space, TENANT, cursor, 500)
        out += page
        if cursor is None:
            return out


async def test_migrating_1000_records_to_a_gateway_model_while_searching(
    migration_settings: Settings, gateway: Gateway
) -> None:
    factory = MixedFactory(migration_settings)
    async with open_tenant(migration_settings, factory, 1000) as resources:
        pipeline = resources.pipeline
        old_space = await pipeline.space_of(TENANT)
        assert old_space.dimension == FAKE_DIMENSION
        searches: list[int] = []
        stop = asyncio.Event()

        async def search_loop() -> None:
            while not stop.is_set():
                hits = await pipeline.search(TENANT, f"record {len(searches)} subject", limit=5)
                searches.append(len(hits))
                await asyncio.sleep(0)

        loop = asyncio.create_task(search_loop())
        target = await pipeline.set_ai_config(TENANT, gateway_config(gateway))
        assert target == EmbeddingSpace("gw-model", GATEWAY_DIMENSION)
        running = await pipeline.migration_status(TENANT)
        assert running is not None and running["total"] == 1000
        done = await wait_for_state(resources, "done")
        stop.set()
        await loop  # re-raises any search error

        assert searches and all(n == 5 for n in searches)
        assert (done["done"], done["progress"], done["error"]) == (1000, 1.0, None)
        assert await assert_all_searchable(resources, {f"r{i}" for i in range(1000)}) == target
        assert await resources.store.count(old_space, TENANT) == 0


async def test_a_write_and_a_delete_mid_migration_survive_the_switch(
    migration_settings: Settings, gateway: Gateway
) -> None:
    factory = MixedFactory(migration_settings)
    async with open_tenant(migration_settings, factory, 300) as resources:
        pipeline = resources.pipeline
        old_space = await pipeline.space_of(TENANT)
        factory.gate.armed = True  # holds the runner's first page until released
        await pipeline.set_ai_config(TENANT, gateway_config(gateway))
        await factory.gate.waiting.wait()
        status = await pipeline.migration_status(TENANT)
        assert status is not None and status["state"] == "running"

        edited = Record(id="r5", text="an edited record about zebras")
        added = Record(id="new", text="a record added mid migration about giraffes")
        result = await pipeline.apply(TENANT, upserts=[edited, added], deletes=["r7"])
        assert sorted(result.upserted) == ["new", "r5"] and result.deleted == ["r7"]
        assert (await pipeline.search(TENANT, "zebras", limit=1))[0].id == "r5"  # old space
        assert (await pipeline.space_of(TENANT)) == old_space

        factory.gate.release.set()
        await wait_for_state(resources, "done")
        ids = {f"r{i}" for i in range(300)} - {"r7"} | {"new"}
        await assert_all_searchable(resources, ids)
        assert (await pipeline.get_record(TENANT, "r5")).text == edited.text
        with pytest.raises(NotFound):
            await pipeline.get_record(TENANT, "r7")
        assert await resources.store.count(old_space, TENANT) == 0


def local(model: str) -> dict[str, object]:
    return {"primary": {"kind": "local", "model": model}}


async def test_no_migration_without_records_or_without_a_new_space(
    migration_settings: Settings,
) -> None:
    factory = MixedFactory(migration_settings)
    async with open_resources(migration_settings, provider_factory=factory) as resources:
        pipeline = resources.pipeline
        await pipeline.set_ai_config(TENANT, local("empty-tenant-model"))  # nothing stored
        assert await pipeline.migration_status(TENANT) is None
        assert (await pipeline.space_of(TENANT)).model == "empty-tenant-model"
        await pipeline.ingest(TENANT, records(3))
        same_space = local("empty-tenant-model") | {"fallbacks": [local("x")["primary"]]}
        with pytest.raises(ValidationError):  # a chain of two spaces is refused as before
            await pipeline.set_ai_config(TENANT, same_space)
        await pipeline.set_ai_config(TENANT, local("empty-tenant-model"))
        assert await pipeline.migration_status(TENANT) is None


async def test_cancel_keeps_the_old_space_and_removes_the_new_points(
    migration_settings: Settings, gateway: Gateway
) -> None:
    factory = MixedFactory(migration_settings)
    async with open_tenant(migration_settings, factory, 300) as resources:
        pipeline = resources.pipeline
        await pipeline.set_ai_config(TENANT, local("old-model"))
        await wait_for_state(resources, "done")
        old_space = await pipeline.space_of(TENANT)
        factory.gate.armed = True
        target = await pipeline.set_ai_config(TENANT, gateway_config(gateway))
        await factory.gate.waiting.wait()
        with pytest.raises(ValidationError, match="migrating"):
            await pipeline.set_ai_config(TENANT, local("third-model"))
        await pipeline.apply(TENANT, upserts=[Record(id="mid", text="written mid way")])
        assert await resources.store.count(target, TENANT) > 0  # the dual write

        await pipeline.cancel_migration(TENANT)
        assert await resources.store.count(target, TENANT) == 0
        factory.gate.release.set()  # the held page lands after the cancel: removed too

        async def new_space_emptied() -> bool:
            return factory.gate.release.is_set() and not await runner_busy(resources, target)

        await wait_until_async(new_space_emptied, 20, "the runner to drop its late page")
        status = await pipeline.migration_status(TENANT)
        assert status is not None and status["state"] == "cancelled"
        assert await pipeline.space_of(TENANT) == old_space
        assert (await pipeline.configs.show(TENANT))[0]["primary"]["model"] == "old-model"
        assert await resources.store.count(target, TENANT) == 0
        assert await resources.store.count(old_space, TENANT) == 301
        assert (await pipeline.search(TENANT, "written mid way", limit=1))[0].id == "mid"
        with pytest.raises(NotFound):
            await pipeline.cancel_migration(TENANT)


async def runner_busy(resources: Resources, target: EmbeddingSpace) -> bool:
    """Whether the runner still holds the target's chain, or has yet to drop its points."""
    names = resources.providers.open_provider_names()
    if any(name.startswith("openai:") for name in names):
        return True
    return await resources.store.count(target, TENANT) > 0


async def test_a_restarted_runner_resumes_the_migration(
    migration_settings: Settings, gateway: Gateway
) -> None:
    factory = MixedFactory(migration_settings)
    async with open_tenant(migration_settings, factory, 300) as resources:
        old_space = await resources.pipeline.space_of(TENANT)
        factory.gate.armed = True
        await resources.pipeline.set_ai_config(TENANT, gateway_config(gateway))
        await factory.gate.waiting.wait()
        factory.gate.release.set()  # the runner is stopping before it reads the next page
    async with open_database(migration_settings.resolved_database_url) as db:
        row = await db.reindexes.get(TENANT)
        assert row is not None and row.state == "running" and 0 < row.done < 300
    async with open_resources(migration_settings, provider_factory=factory) as resources:
        status = await wait_for_state(resources, "done")
        assert status["done"] == 300
        await assert_all_searchable(resources, {f"r{i}" for i in range(300)})
        assert await resources.store.count(old_space, TENANT) == 0
