"""AIConfig validated through the registry, and every kind's secrets sealed, redacted, keyed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr
from pydantic import ValidationError as PydanticValidationError

from tests.support.keyed_kind import KEYED_KIND
from vecpipe.providers.config import (
    AIConfig,
    default_config,
    provider_key,
    redact,
    seal,
    secret_values,
    unseal,
)
from vecpipe.providers.kind import ProviderConfig, secret_fields
from vecpipe.providers.kinds.local import LocalProviderConfig
from vecpipe.providers.kinds.openai import OpenAIProviderConfig
from vecpipe.providers.registry import REGISTRY
from vecpipe.secrets import SecretBox
from vecpipe.text.formatting import LATER_CHUNK_PENALTY

BOX = SecretBox("operator-key")

# One valid config per kind, secrets left out: a kind added to the registry without a
# sample here fails `test_every_registered_kind_has_a_sample`, so none escapes the tests
# below.
SAMPLES: dict[str, dict[str, Any]] = {
    "local": {"kind": "local", "model": "m"},
    "openai": {"kind": "openai", "base_url": "https://gw.example/v1", "model": "m"},
    "keyed-fake": {"kind": "keyed-fake", "api_key": "placeholder"},
}


@pytest.fixture(autouse=True)
def with_keyed_kind() -> Iterator[None]:
    with REGISTRY.registered(KEYED_KIND):
        yield


def with_every_secret(kind: str, tag: str) -> tuple[dict[str, Any], list[str]]:
    """The kind's sample with each of its secret fields set to a distinct marker."""
    fields = secret_fields(REGISTRY.get(kind).config_model)
    markers = [f"SECRET-{tag}-{kind}-{name}-7c1f" for name in fields]
    return {**SAMPLES[kind], **dict(zip(fields, markers, strict=True))}, markers


def test_every_registered_kind_has_a_sample() -> None:
    assert set(REGISTRY.names()) == set(SAMPLES)


@pytest.mark.parametrize("kind", list(SAMPLES))
def test_every_secret_field_of_every_kind_is_sealed_unsealed_and_redacted(kind: str) -> None:
    primary, markers = with_every_secret(kind, "p")
    fallback, fallback_markers = with_every_secret(kind, "f")
    config = AIConfig.model_validate({"primary": primary, "fallbacks": [fallback]})
    fields = secret_fields(type(config.primary))
    assert sorted(secret_values(config)) == sorted(markers + fallback_markers)

    sealed = seal(config, BOX.encrypt)
    text = json.dumps(sealed)
    for marker in markers + fallback_markers:
        assert marker not in text
    for stored, clear in [(sealed["primary"], markers), (sealed["fallbacks"][0], fallback_markers)]:
        assert [BOX.decrypt(stored[name]) for name in fields] == clear

    back = unseal(json.loads(text), BOX.decrypt)  # through JSON, as the database keeps it
    assert secret_values(back) == secret_values(config)
    assert back.model_dump() == config.model_dump()

    shown = redact(back)
    for marker in markers + fallback_markers:
        assert marker not in json.dumps(shown)
    for provider in (shown["primary"], shown["fallbacks"][0]):
        assert all(provider[name] == "***" for name in fields)


def test_an_unset_secret_stays_null() -> None:
    config = AIConfig.model_validate({"primary": SAMPLES["openai"]})
    assert secret_values(config) == []
    assert seal(config, BOX.encrypt)["primary"]["api_key"] is None
    assert redact(config)["primary"]["api_key"] is None


def test_configs_stored_before_secrets_were_secretstr_load_unchanged() -> None:
    """The exact JSON the previous release stored (key first, ciphertext as a string)."""
    stored = {
        "primary": {
            "kind": "openai",
            "base_url": "https://gw.example/v1",
            "model": "m",
            "api_key": BOX.encrypt("sk-OLD-ROW-1"),
            "dimensions": None,
            "timeout_seconds": 30.0,
            "max_batch_size": 256,
            "max_concurrency": 4,
            "max_input_tokens": 8191,
        },
        "fallbacks": [{"kind": "local", "model": "all-MiniLM-L6-v2"}],
    }
    config = unseal(stored, BOX.decrypt)
    assert isinstance(config.primary, OpenAIProviderConfig)
    assert config.primary.api_key == SecretStr("sk-OLD-ROW-1")
    assert config.fallbacks == [LocalProviderConfig()]


def test_provider_keys_tell_secrets_apart_without_holding_them() -> None:
    def gateway(key: str | None) -> ProviderConfig:
        return AIConfig.model_validate({"primary": {**SAMPLES["openai"], "api_key": key}}).primary

    one, other = gateway("sk-one-123456"), gateway("sk-two-654321")
    assert provider_key(one) != provider_key(other)
    assert provider_key(one) == provider_key(gateway("sk-one-123456"))
    assert provider_key(gateway(None)) not in (provider_key(one), provider_key(other))
    assert "sk-one" not in provider_key(one)


def test_an_empty_body_and_a_bare_local_kind_are_the_default_local_model() -> None:
    assert AIConfig.model_validate({}).primary == LocalProviderConfig()
    assert AIConfig.model_validate({"primary": {"kind": "local"}}).primary == LocalProviderConfig()
    assert AIConfig.model_validate({"primary": {"model": "x"}}).primary == LocalProviderConfig(
        model="x"
    )
    assert default_config("other").model_dump(mode="json") == {
        "primary": {
            "kind": "local",
            "model": "other",
            "backend": "torch",
            "chunk_tokens": None,
            "chunk_overlap": None,
            "title_field": None,
            "query_prefix": "",
            "document_prefix": "",
            "later_chunk_penalty": LATER_CHUNK_PENALTY,
        },
        "fallbacks": [],
        "ttl_seconds": None,
    }


def test_errors_point_into_the_kind_s_own_fields() -> None:
    with pytest.raises(PydanticValidationError) as caught:
        AIConfig.model_validate(
            {"primary": {"kind": "openai", "model": "m"}, "fallbacks": [{"kind": "x"}, "no"]}
        )
    errors = {tuple(e["loc"]): e["msg"] for e in caught.value.errors()}
    assert errors[("primary", "base_url")] == "Field required"
    assert errors[("fallbacks", 0, "kind")].startswith("unknown provider kind 'x'")
    assert errors[("fallbacks", 1)] == "a provider config is a JSON object"


def test_an_extra_field_is_refused_as_before() -> None:
    with pytest.raises(PydanticValidationError, match="Extra inputs"):
        AIConfig.model_validate({"primary": {"kind": "local", "api_key": "sk-x"}})
    with pytest.raises(PydanticValidationError, match="Extra inputs"):
        AIConfig.model_validate({"primary": {"kind": "local"}, "tertiary": {}})


def test_a_config_object_of_a_registered_kind_is_taken_as_it_is() -> None:
    primary = OpenAIProviderConfig(base_url="https://gw.example/v1", model="m")
    assert AIConfig(primary=primary).primary is primary
