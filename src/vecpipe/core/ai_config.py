"""Tenant AI configs: validated against one embedding space, gateway keys encrypted at rest."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from vecpipe.errors import ConfigError
from vecpipe.models import AIConfig, LocalProviderConfig, OpenAIProviderConfig
from vecpipe.providers.url_policy import GatewayUrlPolicy
from vecpipe.secrets import SecretBox

REDACTED = "***"


class ConfigRepository(Protocol):
    async def get(self, tenant_id: str) -> dict[str, Any] | None: ...
    async def put(self, tenant_id: str, config: dict[str, Any]) -> None: ...
    async def delete(self, tenant_id: str) -> bool: ...
    async def list_tenants(self) -> list[str]: ...


class KeptConfigs(Protocol):
    """Configs kept outside `tenant_configs` (migration rows), gateway keys encrypted."""

    async def stored_configs(self) -> list[dict[str, Any]]: ...
    async def reseal_configs(self, reseal: Callable[[dict[str, Any]], dict[str, Any]]) -> int: ...


class AIConfigService:
    def __init__(
        self,
        repo: ConfigRepository,
        policy: GatewayUrlPolicy,
        secret_box: SecretBox | None,
        default_model: str,
    ) -> None:
        self._repo = repo
        self._policy = policy
        self._box = secret_box
        self.default = AIConfig(primary=LocalProviderConfig(model=default_model))

    async def load(self, tenant_id: str) -> AIConfig:
        """The tenant's config with secrets decrypted (for building providers only)."""
        return self.unseal(await self._repo.get(tenant_id))

    async def stored(self, tenant_id: str) -> dict[str, Any] | None:
        """The config exactly as stored (keys encrypted); None when the default applies."""
        return await self._repo.get(tenant_id)

    def unseal(self, stored: dict[str, Any] | None) -> AIConfig:
        """A stored config with its secrets decrypted; None is the default config."""
        if stored is None:
            return self.default
        config = AIConfig.model_validate(stored)
        for provider in _gateways(config):
            if provider.api_key:
                provider.api_key = self._require_box().decrypt(provider.api_key)
        return config

    def seal(self, config: AIConfig) -> dict[str, Any]:
        """The config as it is stored: gateway keys encrypted."""
        sealed = config.model_copy(deep=True)
        for provider in _gateways(sealed):
            if provider.api_key:
                provider.api_key = self._require_box().encrypt(provider.api_key)
        return sealed.model_dump(mode="json")

    async def show(self, tenant_id: str) -> tuple[dict[str, Any], bool]:
        """The config as callers may see it (secrets redacted), and whether it was set."""
        stored = await self._repo.get(tenant_id)
        config = AIConfig.model_validate(stored) if stored else self.default
        return redact(config), stored is not None

    def check(self, config: AIConfig) -> None:
        """What can be checked without calling a provider: URLs and where keys would go."""
        for provider in _gateways(config):
            self._policy.check_url(provider.base_url)
            if provider.api_key and self._box is None:
                raise ConfigError("VECPIPE_SECRET_KEY must be set to store gateway API keys")

    async def save(self, tenant_id: str, config: AIConfig) -> None:
        await self._repo.put(tenant_id, self.seal(config))

    async def delete(self, tenant_id: str) -> bool:
        return await self._repo.delete(tenant_id)

    async def check_startup(self, migrations: KeptConfigs | None = None) -> None:
        """Fail at startup, clearly, when stored keys cannot be decrypted."""
        stored = [await self._repo.get(t) for t in await self._repo.list_tenants()]
        kept = await migrations.stored_configs() if migrations is not None else []
        for config in [AIConfig.model_validate(c or {}) for c in [*stored, *kept]]:
            for provider in _gateways(config):
                if provider.api_key:
                    self._require_box().decrypt(provider.api_key)

    async def rotate_secrets(self, migrations: KeptConfigs | None = None) -> int:
        """Re-encrypt every stored gateway key under the current VECPIPE_SECRET_KEY.

        The box must also hold the old keys (VECPIPE_SECRET_KEY_OLD) that values were
        encrypted with. Migration rows keep configs too (to resume or cancel back to): they
        are rewritten as well, so no ciphertext under the old key is left behind. Returns how
        many tenant-config keys were re-encrypted; plaintexts never change.
        """
        rotated = 0
        for tenant_id in await self._repo.list_tenants():
            stored = await self._repo.get(tenant_id)
            if stored is None:
                continue
            resealed, keys = self._rotated(stored)
            if keys:
                await self._repo.put(tenant_id, resealed)
                rotated += keys
        if migrations is not None:
            await migrations.reseal_configs(lambda stored: self._rotated(stored)[0])
        return rotated

    def _rotated(self, stored: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """`stored` with its keys re-encrypted under the new key, and how many there were."""
        config = AIConfig.model_validate(stored)
        keyed = [p for p in _gateways(config) if p.api_key]
        if not keyed:
            return stored, 0
        for provider in keyed:
            provider.api_key = self._require_box().rotate(provider.api_key or "")
        return config.model_dump(mode="json"), len(keyed)

    def _require_box(self) -> SecretBox:
        if self._box is None:
            raise ConfigError(
                "stored AI configs hold gateway API keys but VECPIPE_SECRET_KEY is not set"
            )
        return self._box


def _gateways(config: AIConfig) -> list[OpenAIProviderConfig]:
    return [p for p in [config.primary, *config.fallbacks] if isinstance(p, OpenAIProviderConfig)]


def redact(config: AIConfig) -> dict[str, Any]:
    data = config.model_dump(mode="json")
    for provider in [data["primary"], *data["fallbacks"]]:
        if provider.get("kind") == "openai":
            provider["api_key"] = REDACTED if provider.get("api_key") else None
    return data
