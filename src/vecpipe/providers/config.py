"""A tenant's AI config, `{"primary": PROVIDER, "fallbacks": [PROVIDER, ...]}`, and its secrets.

Each PROVIDER is validated by the config model of its "kind" (a missing kind is "local"),
looked up in the registry when it is validated: a kind registered later (a test's) counts,
and the JSON schema, made when it is asked for (OpenAPI), lists every registered kind.

Secrets are the `SecretStr` fields of each kind's model (providers/kind.py). The functions
below handle them for every kind alike: `seal` (the stored form: each secret encrypted),
`unseal` (back, decrypted), `redact` (what callers see: "***"), `provider_key` (a key for a
provider instance: two configs differing only by a secret get two providers, and the
secret is only ever in it as a keyed hash).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Mapping
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    SecretStr,
)
from pydantic import ValidationError as PydanticValidationError
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

from vecpipe.providers.kind import ProviderConfig
from vecpipe.providers.registry import DEFAULT_KIND, REGISTRY, UnknownKind
from vecpipe.text.hashing import fingerprint

__all__ = [
    "REDACTED",
    "AIConfig",
    "AnyProviderConfig",
    "default_config",
    "provider_key",
    "redact",
    "seal",
    "secret_values",
    "unseal",
]

REDACTED = "***"
MAX_FALLBACKS = 4


class _ByKind:
    """`Annotated` marker: a provider config of any registered kind, chosen by "kind"."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(_validate_provider)

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        choices: dict[str, core_schema.CoreSchema] = {
            kind.kind: kind.config_model.__pydantic_core_schema__ for kind in REGISTRY.kinds()
        }
        return handler(core_schema.tagged_union_schema(choices, discriminator="kind"))


AnyProviderConfig = Annotated[ProviderConfig, _ByKind()]


def _validate_provider(value: Any) -> ProviderConfig:
    if isinstance(value, ProviderConfig):
        entry = REGISTRY.get(value.kind)
        if isinstance(value, entry.config_model):
            return value
        value = value.model_dump()
    if not isinstance(value, Mapping):
        raise PydanticCustomError("provider_config_type", "a provider config is a JSON object")
    kind = value.get("kind", DEFAULT_KIND)
    try:
        entry = REGISTRY.get(kind)
    except UnknownKind as exc:
        error = PydanticCustomError("provider_kind", "{message}", {"message": str(exc)})
        raise PydanticValidationError.from_exception_data(
            "ProviderConfig", [{"type": error, "loc": ("kind",), "input": kind}]
        ) from None
    config: ProviderConfig = entry.config_model.model_validate(value)
    return config


def _default_provider() -> ProviderConfig:
    return _validate_provider({"kind": DEFAULT_KIND})


class AIConfig(BaseModel):
    """A tenant's provider chain: a primary and ordered fallbacks in one embedding space."""

    model_config = ConfigDict(extra="forbid")

    primary: AnyProviderConfig = Field(default_factory=_default_provider)
    fallbacks: list[AnyProviderConfig] = Field(default_factory=list, max_length=MAX_FALLBACKS)
    # records sent without `expires_at` expire this long after they are accepted (issue 15)
    ttl_seconds: Annotated[int, Field(ge=1, le=10 * 365 * 86400)] | None = None

    def providers(self) -> list[ProviderConfig]:
        return [self.primary, *self.fallbacks]


def default_config(model: str) -> AIConfig:
    """The config of a tenant that has none: the default kind with the operator's model."""
    return AIConfig.model_validate({"primary": {"kind": DEFAULT_KIND, "model": model}})


# ---------------------------------------------------------------------------- secrets

Transform = Callable[[str], str]


def secret_values(config: AIConfig) -> list[str]:
    """Every secret set in `config`, in clear (to check they can be stored, or decrypted)."""
    values = [_clear(getattr(p, name)) for p in config.providers() for name in _secrets(p)]
    return [value for value in values if value]


def seal(config: AIConfig, encrypt: Transform) -> dict[str, Any]:
    """`config` as JSON, each secret that is set replaced by `encrypt(secret)`."""
    dumped = config.model_dump(mode="json")
    for provider, data in zip(config.providers(), _provider_dicts(dumped), strict=True):
        data.update(_transformed(provider, encrypt))
    return dumped


def unseal(stored: Mapping[str, Any], decrypt: Transform) -> AIConfig:
    """A sealed config back, each secret that is set replaced by `decrypt(secret)`."""
    config = AIConfig.model_validate(stored)
    for provider in config.providers():
        for name, value in _transformed(provider, decrypt).items():
            setattr(provider, name, None if value is None else SecretStr(value))
    return config


def redact(config: AIConfig) -> dict[str, Any]:
    """`config` as JSON for callers: each secret "***" when set, else null."""
    return seal(config, lambda _secret: REDACTED)


_PROCESS_KEY = secrets.token_bytes(32)  # provider keys live in this process only


def provider_key(config: ProviderConfig) -> str:
    """A key naming one provider instance: equal for equal configs, secrets included, and
    holding each secret only as an HMAC under a key of this process."""
    data = config.model_dump(mode="json")
    data.update(_transformed(config, _keyed_hash))
    return fingerprint(data)


def _keyed_hash(secret: str) -> str:
    return hmac.new(_PROCESS_KEY, secret.encode("utf-8"), hashlib.sha256).hexdigest()


def _transformed(provider: ProviderConfig, transform: Transform) -> dict[str, Any]:
    """Each secret field of `provider`: `transform(value)` when set, None when not."""
    out: dict[str, Any] = {}
    for name in _secrets(provider):
        value = _clear(getattr(provider, name))
        out[name] = transform(value) if value else None
    return out


def _secrets(provider: ProviderConfig) -> tuple[str, ...]:
    return REGISTRY.secret_fields(provider)


def _clear(value: SecretStr | None) -> str:
    """A secret field's value in clear, "" when it is not set."""
    return "" if value is None else value.get_secret_value()


def _provider_dicts(dumped: dict[str, Any]) -> list[dict[str, Any]]:
    return [dumped["primary"], *dumped["fallbacks"]]
