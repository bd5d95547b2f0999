"""Tenant AI configs: checked before they are saved, their secrets encrypted at rest.

Every kind's secrets (its config's SecretStr fields) are handled alike, through the provider
registry (providers/config.py): nothing here knows which kind has a key, or a URL.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from vecpipe.errors import ConfigError
from vecpipe.providers import config as provider_config
from vecpipe.providers.config import AIConfig, default_config, secret_values
from vecpipe.providers.kind import ProviderContext
from vecpipe.providers.registry import REGISTRY
from vecpipe.secrets import SecretBox


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
        context: ProviderContext,
        secret_box: SecretBox | None,
        default_model: str,
    ) -> None:
        self._repo = repo
        self._context = context
        self._box = secret_box
        self.default = default_config(default_model)

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
        return provider_config.unseal(stored, lambda value: self._require_box().decrypt(value))

    def seal(self, config: AIConfig) -> dict[str, Any]:
        """The config as it is stored: every secret encrypted."""
        return provider_config.seal(config, lambda value: self._require_box().encrypt(value))

    async def show(self, tenant_id: str) -> tuple[dict[str, Any], bool]:
        """The config as callers may see it (secrets redacted), and whether it was set."""
        stored = await self._repo.get(tenant_id)
        config = AIConfig.model_validate(stored) if stored else self.default
        return provider_config.redact(config), stored is not None

    def check(self, config: AIConfig) -> None:
        """What can be checked without calling a provider: each kind's own check (a
        gateway's URL policy), and that secrets can be encrypted."""
        for provider in config.providers():
            REGISTRY.check(provider, self._context)
        if secret_values(config) and self._box is None:
            raise ConfigError(
                "VECPIPE_SECRET_KEY must be set to store gateway API keys where the database "
                "is shared (VECPIPE_DATABASE_URL outside the data dir, e.g. PostgreSQL)"
            )

    async def save(self, tenant_id: str, config: AIConfig) -> None:
        await self._repo.put(tenant_id, self.seal(config))

    async def delete(self, tenant_id: str) -> bool:
        return await self._repo.delete(tenant_id)

    async def check_startup(self, reindexes: KeptConfigs | None = None) -> None:
        """Fail at startup, clearly, when stored keys cannot be decrypted."""
        stored = [await self._repo.get(t) for t in await self._repo.list_tenants()]
        kept = await reindexes.stored_configs() if reindexes is not None else []
        for config in [AIConfig.model_validate(c or {}) for c in [*stored, *kept]]:
            for value in secret_values(config):
                self._require_box().decrypt(value)

    async def rotate_secrets(self, reindexes: KeptConfigs | None = None) -> int:
        """Re-encrypt every stored gateway key under the current VECPIPE_SECRET_KEY.

        The box must also hold the old keys (VECPIPE_SECRET_KEY_OLD) that values were
        encrypted with. Reindex rows keep configs too (to resume or cancel back to): they
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
        if reindexes is not None:
            await reindexes.reseal_configs(lambda stored: self._rotated(stored)[0])
        return rotated

    def _rotated(self, stored: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """`stored` with its keys re-encrypted under the new key, and how many there were."""
        config = AIConfig.model_validate(stored)  # secrets as stored: ciphertexts
        keys = len(secret_values(config))
        if not keys:
            return stored, 0
        return provider_config.seal(config, lambda value: self._require_box().rotate(value)), keys

    def _require_box(self) -> SecretBox:
        if self._box is None:
            raise ConfigError(
                "stored AI configs hold gateway API keys but VECPIPE_SECRET_KEY is not set"
            )
        return self._box
