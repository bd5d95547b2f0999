"""Resolves each tenant's provider chain, shares provider instances, closes what it opened.

Providers are keyed by their full config (`provider_key`: secrets as keyed hashes), so
tenants naming the same gateway with the same key share one client. A provider is closed
when no chain in use needs it any more: after a tenant's config changes, once the last
in-flight call through the old chain has returned.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from vecpipe.errors import ValidationError
from vecpipe.lifecycle import AsyncResource
from vecpipe.models import EmbeddingSpace
from vecpipe.providers.base import EmbeddingProvider
from vecpipe.providers.chain import CircuitBreaker, ProviderChain, worst_breaker_states
from vecpipe.providers.config import AIConfig, provider_key
from vecpipe.providers.kind import ProviderConfig
from vecpipe.text.hashing import fingerprint

ProviderFactory = Callable[[ProviderConfig], Awaitable[EmbeddingProvider]]
SpaceDeclarer = Callable[[ProviderConfig], EmbeddingSpace | None]  # blocking; None: unknown
ConfigLoader = Callable[[str], Awaitable[AIConfig]]


@dataclass
class _Chain:
    chain: ProviderChain
    provider_keys: list[str]
    active: int = 0


@dataclass
class _TenantBinding:
    chain_key: str
    loaded_at: float


class ProviderManager(AsyncResource):
    def __init__(
        self,
        factory: ProviderFactory,
        load_config: ConfigLoader,
        *,
        config_ttl: float = 2.0,
        breaker_cooldown: float = 30.0,
        default: AIConfig | None = None,
        declare_space: SpaceDeclarer | None = None,
    ) -> None:
        self._default = default or AIConfig()
        self._declare_space = declare_space
        self._factory = factory
        self._load_config = load_config
        self._config_ttl = config_ttl
        self._breaker_cooldown = breaker_cooldown
        self._providers: dict[str, EmbeddingProvider] = {}
        self._chains: dict[str, _Chain] = {}
        self._tenants: dict[str, _TenantBinding] = {}
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"<ProviderManager of {len(self._providers)} providers, {self.resource_state}>"

    async def declared_space(self, config: AIConfig) -> EmbeddingSpace | None:
        """The space `config`'s chain would have, known without opening a provider; else None.

        (A chain has one space, its primary's: see `_check_one_space`.)
        """
        if self._declare_space is None:
            return None
        return await asyncio.to_thread(self._declare_space, config.primary)

    @asynccontextmanager
    async def lease(self, tenant_id: str | None) -> AsyncIterator[ProviderChain]:
        """The tenant's chain (the default chain for None), kept open while in use."""
        entry = await self._chain_for(tenant_id)
        entry.active += 1
        try:
            yield entry.chain
        finally:
            entry.active -= 1
            if entry.active == 0 and self.resource_state == "open":
                await self._collect()

    @asynccontextmanager
    async def lease_config(self, config: AIConfig) -> AsyncIterator[ProviderChain]:
        """The chain of an explicit config (a migration's), kept open while in use."""
        self._check_open()
        try:
            async with self._lock:
                entry = self._chains[await self._ensure_chain(config)]
                entry.active += 1
        except BaseException:
            await self._collect()
            raise
        try:
            yield entry.chain
        finally:
            entry.active -= 1
            if entry.active == 0 and self.resource_state == "open":
                await self._collect()

    async def validate(self, config: AIConfig) -> EmbeddingSpace:
        """Open the chain's providers (probing gateways) and check they share one space."""
        try:
            async with self._lock:
                key = await self._ensure_chain(config)
            return self._chains[key].chain.space
        finally:
            await self._collect()

    def forget(self, tenant_id: str) -> None:
        """Reload the tenant's config on next use (after it was changed or deleted)."""
        self._tenants.pop(tenant_id, None)

    async def _close(self) -> None:
        providers = list(self._providers.values())
        self._providers.clear()
        self._chains.clear()
        self._tenants.clear()
        for provider in providers:
            await provider.aclose()

    def breaker_states(self) -> dict[str, str]:
        """The breaker state of each provider in a chain held now (for metrics and status)."""
        return worst_breaker_states(entry.chain for entry in self._chains.values())

    def open_provider_names(self) -> list[str]:
        return sorted(p.name for p in self._providers.values())

    async def _chain_for(self, tenant_id: str | None) -> _Chain:
        self._check_open()
        binding_key = tenant_id or ""
        binding = self._tenants.get(binding_key)
        now = time.monotonic()
        if (
            binding
            and now - binding.loaded_at < self._config_ttl
            and binding.chain_key in self._chains
        ):
            return self._chains[binding.chain_key]
        config = await self._load_config(tenant_id) if tenant_id else self._default
        try:
            async with self._lock:
                key = await self._ensure_chain(config)
                self._tenants[binding_key] = _TenantBinding(key, time.monotonic())
                return self._chains[key]
        except BaseException:
            await self._collect()
            raise

    async def _ensure_chain(self, config: AIConfig) -> str:
        configs = [config.primary, *config.fallbacks]
        key = fingerprint([provider_key(c) for c in configs])
        if key in self._chains:
            return key
        provider_keys = [await self._ensure_provider(c) for c in configs]
        providers = [self._providers[k] for k in provider_keys]
        _check_one_space(providers)
        breakers = [CircuitBreaker(cooldown=self._breaker_cooldown) for _ in providers]
        self._chains[key] = _Chain(ProviderChain(providers, breakers), provider_keys)
        return key

    async def _ensure_provider(self, config: ProviderConfig) -> str:
        key = provider_key(config)
        if key not in self._providers:
            self._providers[key] = await self._factory(config)
        return key

    async def _collect(self) -> None:
        """Close chains no tenant is bound to and no call is using, then orphaned providers."""
        async with self._lock:
            bound = {b.chain_key for b in self._tenants.values()}
            for key in [k for k, c in self._chains.items() if k not in bound and c.active == 0]:
                del self._chains[key]
            needed = {k for c in self._chains.values() for k in c.provider_keys}
            orphans = [k for k in self._providers if k not in needed]
            closing = [self._providers.pop(k) for k in orphans]
        for provider in closing:
            await provider.aclose()


def _check_one_space(providers: list[EmbeddingProvider]) -> None:
    first = providers[0].space
    for provider in providers[1:]:
        if provider.space != first:
            raise ValidationError(
                f"every provider in a chain must produce one embedding space: "
                f"{providers[0].name} gives {_describe(first)}, "
                f"{provider.name} gives {_describe(provider.space)}"
            )


def _describe(space: EmbeddingSpace) -> str:
    text = f"{space.model}/{space.dimension}"
    return f"{text} (text format {space.variant})" if space.variant else text
