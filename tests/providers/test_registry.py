"""The provider registry: a kind registered only here goes through ai-config like a built-in.

The end-to-end test runs the real app over HTTP with the test-only "keyed-fake" kind
(tests/support/keyed_kind.py): PUT stores its two secrets encrypted (read from the database
row itself), GET shows them as "***", the provider is opened through the registry with
them in clear, and the OpenAPI schema lists the kind. No code in src/ names it.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
from asgi_lifespan import LifespanManager
from pydantic import SecretStr

from tests.support import keyed_kind as keyed
from tests.support.app import FakeFactory, make_settings
from tests.support.keyed_kind import KEYED_KIND
from vecpipe import datadir
from vecpipe.api.app import create_app
from vecpipe.errors import ConfigError
from vecpipe.models import EmbeddingSpace
from vecpipe.providers.base import EmbeddingProvider
from vecpipe.providers.kind import ProviderConfig, ProviderContext, ProviderKind
from vecpipe.providers.kinds.local import LocalProviderConfig
from vecpipe.providers.registry import REGISTRY, ProviderRegistry, UnknownKind
from vecpipe.providers.url_policy import GatewayUrlPolicy
from vecpipe.resources import default_provider_factory
from vecpipe.secrets import KEY_FILE_NAME
from vecpipe.settings import Settings

API_KEY = "kf-APIKEY-5d1e77b09a"
SIGNING = "kf-SIGNING-83c2aa41f0"


def registry_factory(settings: Settings, fake: FakeFactory) -> Any:
    """The registry opens every kind but the default local one (a fake: no model load)."""
    policy = GatewayUrlPolicy(settings.allowlisted_gateway_hosts)
    through_registry = default_provider_factory(settings, policy)

    async def build(config: ProviderConfig) -> EmbeddingProvider:
        if isinstance(config, LocalProviderConfig):
            return await fake(config)
        return await through_registry(config)

    return build


@pytest.fixture
def keyed_kind() -> Iterator[ProviderKind[Any]]:
    """The test-only kind, registered for one test."""
    keyed.opened_with.clear()
    with REGISTRY.registered(KEYED_KIND) as kind:
        yield kind


@pytest.fixture
def app_settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "data", secret_key="operator-key-1")


@pytest.fixture
async def http(
    app_settings: Settings, keyed_kind: ProviderKind[Any]
) -> AsyncIterator[httpx.AsyncClient]:
    # the kind is registered (fixture) before the app is created
    app = create_app(app_settings, provider_factory=registry_factory(app_settings, FakeFactory()))
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://t") as c,
    ):
        yield c


def stored_row(settings: Settings, tenant_id: str) -> str:
    """The tenant's config exactly as the database row holds it."""
    path = datadir.sqlite_file(settings.resolved_database_url)
    assert path is not None
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        (row,) = db.execute(
            "SELECT config FROM tenant_configs WHERE tenant_id = ?", (tenant_id,)
        ).fetchall()
    return str(row[0])


async def test_a_test_only_kind_with_keys_is_stored_encrypted_and_shown_redacted(
    http: httpx.AsyncClient, app_settings: Settings
) -> None:
    body = {
        "primary": {
            "kind": "keyed-fake",
            "model": "km",
            "api_key": API_KEY,
            "signing_secret": SIGNING,
        }
    }
    put = await http.put("/v1/tenants/acme/ai-config", json=body)
    assert put.status_code == 200, put.text
    assert put.json()["space"] == {"model": "km", "dimension": keyed.DIMENSION}
    row = stored_row(app_settings, "acme")
    assert API_KEY not in row and SIGNING not in row
    primary = json.loads(row)["primary"]
    assert primary["kind"] == "keyed-fake" and primary["region"] == "eu"
    assert primary["api_key"].startswith("enc:v1:")
    assert primary["signing_secret"].startswith("enc:v1:")
    assert primary["api_key"] != primary["signing_secret"]

    shown = await http.get("/v1/tenants/acme/ai-config")
    assert shown.status_code == 200, shown.text
    config = shown.json()["config"]["primary"]
    assert config["api_key"] == "***" and config["signing_secret"] == "***"
    assert config["model"] == "km" and config["region"] == "eu"
    assert API_KEY not in shown.text and SIGNING not in shown.text and "enc:v1:" not in shown.text
    # the provider itself got the secrets in clear, decrypted from the row
    assert keyed.opened_with and set(keyed.opened_with) == {(API_KEY, SIGNING)}

    searched = await http.post("/v1/tenants/acme/search", json={"query": "hello"})
    assert searched.status_code == 200, searched.text


async def test_the_kind_s_own_check_runs_when_a_config_is_saved(http: httpx.AsyncClient) -> None:
    body = {"primary": {"kind": "keyed-fake", "api_key": API_KEY, "region": "mars"}}
    response = await http.put("/v1/tenants/acme/ai-config", json=body)
    assert response.status_code == 422
    assert "unknown region 'mars'" in response.json()["error"]["message"]
    assert keyed.opened_with == []  # refused before anything was opened


async def _put_keyed(settings: Settings) -> httpx.Response:
    app = create_app(settings, provider_factory=registry_factory(settings, FakeFactory()))
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://t") as c,
    ):
        body = {"primary": {"kind": "keyed-fake", "api_key": API_KEY}}
        response = await c.put("/v1/tenants/acme/ai-config", json=body)
        await c.post("/v1/tenants/acme/search", json={"query": "opens the provider"})
        return response


async def test_a_shared_database_needs_the_operator_key(
    tmp_path: Path, keyed_kind: ProviderKind[Any]
) -> None:
    shared = f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}"  # as PostgreSQL: outside the dir
    response = await _put_keyed(make_settings(tmp_path / "data", database_url=shared))
    assert response.status_code == 422
    assert "VECPIPE_SECRET_KEY must be set" in response.json()["error"]["message"]
    assert not (tmp_path / "data" / KEY_FILE_NAME).exists()


async def test_the_embedded_default_generates_a_key_file_on_first_need(
    tmp_path: Path, keyed_kind: ProviderKind[Any], caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(tmp_path / "data")  # no VECPIPE_SECRET_KEY, SQLite in the dir
    key_file = tmp_path / "data" / KEY_FILE_NAME
    caplog.set_level(logging.INFO)
    assert (await _put_keyed(settings)).status_code == 200
    assert key_file.stat().st_mode & 0o777 == 0o600
    key = key_file.read_text().strip()
    assert len(key) >= 40
    assert f"generated a key for stored gateway API keys in {key_file}" in caplog.text
    assert key not in caplog.text and API_KEY not in stored_row(settings, "acme")
    assert "enc:v1:" in stored_row(settings, "acme")
    keyed.opened_with.clear()
    caplog.clear()
    assert (await _put_keyed(settings)).status_code == 200  # a restart: the same key, read
    assert key_file.read_text().strip() == key and "generated" not in caplog.text
    assert set(keyed.opened_with) == {(API_KEY, None)}


async def test_without_its_key_file_a_stored_key_refuses_to_start(
    tmp_path: Path, keyed_kind: ProviderKind[Any]
) -> None:
    settings = make_settings(tmp_path / "data")
    assert (await _put_keyed(settings)).status_code == 200
    (tmp_path / "data" / KEY_FILE_NAME).unlink()
    with pytest.raises(ConfigError, match=r"secret\.key \(the key generated .*\) is missing"):
        await _put_keyed(settings)


async def test_openapi_lists_every_kind_registered_before_the_app(
    http: httpx.AsyncClient,
) -> None:
    schema = (await http.get("/openapi.json")).json()
    primary = schema["components"]["schemas"]["AIConfig"]["properties"]["primary"]
    mapping = primary["discriminator"]["mapping"]
    assert set(mapping) == {"local", "openai", "keyed-fake"}
    keyed_schema = schema["components"]["schemas"]["KeyedFakeConfig"]
    assert keyed_schema["properties"]["api_key"]["writeOnly"] is True
    assert "api_key" in keyed_schema["required"]


async def test_an_unknown_kind_is_a_clear_422(http: httpx.AsyncClient) -> None:
    body = {"primary": {"kind": "local"}, "fallbacks": [{"kind": "cohere", "model": "m"}]}
    response = await http.put("/v1/tenants/acme/ai-config", json=body)
    assert response.status_code == 422
    message = response.json()["error"]["message"]
    assert message.startswith("fallbacks.0.kind: unknown provider kind 'cohere'")
    assert "'keyed-fake'" in message and "'local'" in message and "'openai'" in message


# ---------------------------------------------------------------------------- the registry


class OtherConfig(ProviderConfig):
    kind: Literal["other"] = "other"


async def _never(config: ProviderConfig, context: ProviderContext) -> EmbeddingProvider:
    raise AssertionError("not opened in these tests")


def test_a_kind_is_registered_once_and_its_model_must_name_it() -> None:
    registry = ProviderRegistry([ProviderKind("other", OtherConfig, _never)])
    with pytest.raises(ValueError, match="already registered"):
        registry.register(ProviderKind("other", OtherConfig, _never))
    with pytest.raises(ValueError, match="must declare kind"):
        registry.register(ProviderKind("another", OtherConfig, _never))
    assert registry.names() == ["other"]
    with pytest.raises(UnknownKind, match="unknown provider kind 'nope'"):
        registry.get("nope")


def test_a_secret_out_of_reach_is_refused_at_registration() -> None:
    class Headers(ProviderConfig):
        kind: Literal["headers"] = "headers"
        headers: dict[str, SecretStr] = {}

    with pytest.raises(TypeError, match="top-level SecretStr"):
        ProviderRegistry().register(ProviderKind("headers", Headers, _never))


def test_registered_is_undone_after_the_block() -> None:
    with REGISTRY.registered(KEYED_KIND):
        assert "keyed-fake" in REGISTRY.names()
    assert "keyed-fake" not in REGISTRY.names()


def test_the_default_registry_holds_the_built_in_kinds() -> None:
    assert set(REGISTRY.names()) >= {"local", "openai"}
    assert REGISTRY.secret_fields(
        REGISTRY.get("openai").config_model(base_url="https://gw.example/v1", model="m")
    ) == ("api_key",)


def test_a_config_of_another_model_is_not_taken_for_its_kind() -> None:
    class Impostor(ProviderConfig):
        kind: Literal["openai"] = "openai"

    with pytest.raises(TypeError, match=r"is not a config of kind .openai."):
        REGISTRY.of(Impostor(model="m"))


def test_declared_spaces_come_from_the_kind() -> None:
    openai_model = REGISTRY.get("openai").config_model
    sized = openai_model(base_url="https://gw.example/v1", model="m", dimensions=64)
    assert REGISTRY.declared_space(sized) == EmbeddingSpace("m", 64)
    unsized = openai_model(base_url="https://gw.example/v1", model="m")
    assert REGISTRY.declared_space(unsized) is None  # only a probe tells
    local = LocalProviderConfig()
    assert REGISTRY.declared_space(local) == EmbeddingSpace("all-MiniLM-L6-v2", 384)
