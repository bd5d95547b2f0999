"""Provider sharing and closing across tenants and config changes."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from tests.support.app import FakeFactory
from tests.support.fake_provider import FakeProvider
from vecpipe.errors import ClosedError, ValidationError
from vecpipe.models import EmbeddingSpace
from vecpipe.providers.base import EmbeddingProvider
from vecpipe.providers.config import AIConfig
from vecpipe.providers.kind import ProviderConfig
from vecpipe.providers.kinds.local import LocalProviderConfig
from vecpipe.providers.kinds.openai import OpenAIProviderConfig
from vecpipe.providers.manager import ProviderManager


def config(model: str, *fallbacks: str) -> AIConfig:
    return AIConfig(
        primary=LocalProviderConfig(model=model),
        fallbacks=[LocalProviderConfig(model=m) for m in fallbacks],
    )


async def test_tenants_with_one_config_share_providers_and_changes_close_old_ones() -> None:
    configs = {"a": config("m1"), "b": config("m1")}
    factory = FakeFactory()

    async def load(tenant: str) -> AIConfig:
        return configs[tenant]

    async with ProviderManager(factory, load, config_ttl=0) as manager:
        async with manager.lease("a") as chain_a, manager.lease("b") as chain_b:
            assert chain_a is chain_b
        assert len(factory.built) == 1
        configs["a"] = config("m2")
        configs["b"] = config("m2")
        async with manager.lease("a") as chain:
            assert chain.space.model == "m2"
        assert not factory.built[0].closed  # tenant b still bound to m1
        async with manager.lease("b"):
            pass
        assert factory.built[0].closed
        assert manager.open_provider_names() == ["fake:m2"]
    assert all(p.closed for p in factory.built)


async def test_provider_in_use_is_not_closed_until_the_call_returns() -> None:
    configs = {"a": config("m1")}
    factory = FakeFactory()

    async def load(tenant: str) -> AIConfig:
        return configs[tenant]

    async with ProviderManager(factory, load, config_ttl=0) as manager:
        async with manager.lease("a") as old_chain:
            configs["a"] = config("m2")
            async with manager.lease("a"):
                pass
            assert not old_chain.primary.closed  # type: ignore[attr-defined]
            await old_chain.embed(["still works"])
        assert factory.built[0].closed


async def test_mixed_space_chain_is_rejected_and_leaves_nothing_open() -> None:
    factory = FakeFactory()

    async def load(tenant: str) -> AIConfig:
        return config("m1")

    async with ProviderManager(factory, load) as manager:
        with pytest.raises(ValidationError):
            await manager.validate(config("m1", "m2"))
        assert manager.open_provider_names() == []
        assert all(p.closed for p in factory.built)


async def test_closed_manager_refuses_use() -> None:
    async def load(tenant: str) -> AIConfig:
        return config("m1")

    manager = ProviderManager(FakeFactory(), load)
    await manager.aclose()
    with pytest.raises(ClosedError):
        async with manager.lease("a"):
            pass


async def test_configs_differing_only_by_their_key_get_their_own_providers() -> None:
    def gateway(key: str) -> AIConfig:
        return AIConfig(
            primary=OpenAIProviderConfig(
                base_url="https://gw.example/v1", model="m", api_key=SecretStr(key)
            )
        )

    configs = {"a": gateway("sk-a-1111"), "b": gateway("sk-b-2222"), "c": gateway("sk-a-1111")}
    built: list[str] = []

    async def factory(config: ProviderConfig) -> EmbeddingProvider:
        assert isinstance(config, OpenAIProviderConfig) and config.api_key is not None
        built.append(config.api_key.get_secret_value())
        return FakeProvider(EmbeddingSpace(config.model, 8))

    async def load(tenant: str) -> AIConfig:
        return configs[tenant]

    async with (
        ProviderManager(factory, load, config_ttl=60) as manager,
        manager.lease("a") as a,
        manager.lease("b") as b,
        manager.lease("c") as c,
    ):
        assert a is not b and a is c
    assert built == ["sk-a-1111", "sk-b-2222"]


async def test_breaker_states_are_those_of_the_chains_held_now() -> None:
    configs = {"a": config("m1"), "b": config("m2")}

    async def load(tenant: str) -> AIConfig:
        return configs[tenant]

    async with ProviderManager(FakeFactory(), load, config_ttl=0) as manager:
        assert manager.breaker_states() == {}
        async with manager.lease("a") as chain_a, manager.lease("b"):
            for _ in range(chain_a.breakers[0].failure_threshold):
                chain_a.breakers[0].record_failure("down")
        assert manager.breaker_states() == {"fake:m1": "open", "fake:m2": "closed"}
        configs["a"] = config("m2")
        async with manager.lease("a"):
            pass
        assert manager.breaker_states() == {"fake:m2": "closed"}  # m1's chain let go
