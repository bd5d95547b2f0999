"""Rotating VECPIPE_SECRET_KEY: the documented procedure, step by step.

1. Set VECPIPE_SECRET_KEY=<new> and VECPIPE_SECRET_KEY_OLD=<old> everywhere; restart.
   Stored keys encrypted under either key decrypt.
2. `vecpipe tenant rotate-secrets`: every stored key is re-encrypted under the new key.
3. Drop VECPIPE_SECRET_KEY_OLD; restart. Only the new key is needed.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.security.conftest import data_bytes
from tests.support.app import FakeFactory, make_settings
from vecpipe.cli import app as cli
from vecpipe.core.ai_config import AIConfigService
from vecpipe.db.engine import open_database
from vecpipe.errors import ConfigError
from vecpipe.providers.config import AIConfig
from vecpipe.providers.kind import ProviderConfig, ProviderContext
from vecpipe.providers.kinds.openai import OpenAIProviderConfig
from vecpipe.resources import open_resources, secret_box
from vecpipe.settings import Settings

OLD, NEW = "old-operator-key-4c1d", "new-operator-key-9e7a"
KEYS = {"acme": "sk-ACME-3f9a17", "beta": "sk-BETA-b20c55"}


def _config(api_key: str) -> AIConfig:
    gateway = {"kind": "openai", "base_url": "https://gw.example/v1", "model": "m"}
    return AIConfig.model_validate(
        {"primary": {**gateway, "api_key": api_key}, "fallbacks": [{**gateway, "api_key": None}]}
    )


def _service(db_configs: object, settings: Settings) -> AIConfigService:
    context = ProviderContext.from_settings(settings)
    return AIConfigService(db_configs, context, secret_box(settings), settings.default_model)  # type: ignore[arg-type]


def _settings(data_dir: Path, key: str, old: str | None = None) -> Settings:
    return make_settings(data_dir, secret_key=key, secret_key_old=old)


async def _stored_under(settings: Settings) -> None:
    for tenant_id, api_key in KEYS.items():
        async with open_database(settings.resolved_database_url) as db:
            await _service(db.configs, settings).save(tenant_id, _config(api_key))


async def _loaded(settings: Settings) -> dict[str, str | None]:
    async with open_database(settings.resolved_database_url) as db:
        service = _service(db.configs, settings)
        return {t: _key_of((await service.load(t)).primary) for t in KEYS}


def _key_of(provider: ProviderConfig) -> str | None:
    """The gateway's API key in clear (a SecretStr in the config)."""
    assert isinstance(provider, OpenAIProviderConfig)
    return None if provider.api_key is None else provider.api_key.get_secret_value()


async def test_rotation_moves_every_stored_key_to_the_new_secret(tmp_path: Path) -> None:
    data = tmp_path / "data"
    await _stored_under(_settings(data, OLD))
    with pytest.raises(ConfigError, match="VECPIPE_SECRET_KEY"):
        await _loaded(_settings(data, NEW))  # the new key alone cannot read them yet
    both = _settings(data, NEW, old=f"unrelated-key, {OLD}")
    assert await _loaded(both) == KEYS  # step 1: either key reads
    async with open_database(both.resolved_database_url) as db:
        assert await _service(db.configs, both).rotate_secrets() == 2  # step 2
    assert await _loaded(_settings(data, NEW)) == KEYS  # step 3: the new key alone
    with pytest.raises(ConfigError):
        await _loaded(_settings(data, OLD))  # and the old one no longer
    stored = b"".join(data_bytes(p) for p in data.rglob("*") if p.is_file())
    assert b"enc:v1:" in stored and not any(k.encode() in stored for k in KEYS.values())


async def test_startup_refuses_keys_it_cannot_decrypt_until_the_old_key_is_given(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    await _stored_under(_settings(data, OLD))
    with pytest.raises(ConfigError, match="cannot decrypt"):
        async with open_resources(_settings(data, NEW), provider_factory=FakeFactory()):
            pass
    async with open_resources(_settings(data, NEW, old=OLD), provider_factory=FakeFactory()):
        pass


async def test_the_cli_rotates_secrets(tmp_path: Path) -> None:
    data = tmp_path / "data"
    await _stored_under(_settings(data, OLD))
    env = {
        "VECPIPE_DATA_DIR": str(data),
        "VECPIPE_SECRET_KEY": NEW,
        "VECPIPE_SECRET_KEY_OLD": OLD,
        "VECPIPE_LOG_LEVEL": "WARNING",
    }
    result = await asyncio.to_thread(CliRunner().invoke, cli, ["tenant", "rotate-secrets"], env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"rotated": 2}
    assert OLD not in result.output and NEW not in result.output
    assert await _loaded(_settings(data, NEW)) == KEYS
    no_key = {k: v for k, v in env.items() if k != "VECPIPE_SECRET_KEY"}
    result = await asyncio.to_thread(
        CliRunner().invoke, cli, ["tenant", "rotate-secrets"], env=no_key
    )
    assert result.exit_code == 2


async def test_rotation_reaches_the_configs_a_migration_keeps(tmp_path: Path) -> None:
    data = tmp_path / "data"
    old = _settings(data, OLD)
    space = {"model": "m", "dimension": 16}
    async with open_database(old.resolved_database_url) as db:
        service = _service(db.configs, old)
        before, target = service.seal(_config(KEYS["acme"])), service.seal(_config("sk-NEXT-77"))
        await db.reindexes.start(
            "acme", from_config=before, to_config=target, from_space=space, to_space=space, total=1
        )
    both = _settings(data, NEW, old=OLD)
    async with open_database(both.resolved_database_url) as db:
        assert await _service(db.configs, both).rotate_secrets(db.reindexes) == 1
    new = _settings(data, NEW)
    async with open_database(new.resolved_database_url) as db:
        service = _service(db.configs, new)
        await service.check_startup(db.reindexes)  # the new key alone reads every copy
        kept = [service.unseal(c).primary for c in await db.reindexes.stored_configs()]
        assert [_key_of(p) for p in kept] == [KEYS["acme"], "sk-NEXT-77"]
        cancelled = await db.reindexes.cancel("acme")  # back to the rotated previous config
        assert cancelled is not None
        assert _key_of((await service.load("acme")).primary) == KEYS["acme"]
    async with open_database(old.resolved_database_url) as db:
        with pytest.raises(ConfigError):
            await _service(db.configs, old).check_startup(db.reindexes)
