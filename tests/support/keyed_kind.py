"""A provider kind that only tests know: "keyed-fake", with two secrets of its own.

It shows that a kind registered from outside vecpipe gets everything a built-in one does
(validation by kind, the OpenAPI schema, sealing, redaction, opening through the registry)
without vecpipe's code naming it. Its providers are FakeProviders; `opened_with` records the
secrets each open received, in clear, so a test can tell they were decrypted for it.

Register it for a test with `REGISTRY.registered(KEYED_KIND)`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import SecretStr

from tests.support.fake_provider import FakeProvider
from vecpipe.errors import ValidationError
from vecpipe.models import EmbeddingSpace
from vecpipe.providers.base import EmbeddingProvider
from vecpipe.providers.kind import ProviderConfig, ProviderContext, ProviderKind

KIND_NAME = "keyed-fake"
DIMENSION = 24

opened_with: list[tuple[str, str | None]] = []


class KeyedFakeConfig(ProviderConfig):
    kind: Literal["keyed-fake"] = "keyed-fake"
    model: str = "keyed-model"
    api_key: SecretStr
    signing_secret: SecretStr | None = None
    region: str = "eu"


async def open_keyed(config: KeyedFakeConfig, context: ProviderContext) -> EmbeddingProvider:
    signing = config.signing_secret.get_secret_value() if config.signing_secret else None
    opened_with.append((config.api_key.get_secret_value(), signing))
    return FakeProvider(EmbeddingSpace(config.model, DIMENSION), name=f"keyed:{config.model}")


def check_keyed(config: KeyedFakeConfig, context: ProviderContext) -> None:
    if config.region not in ("eu", "us"):
        raise ValidationError(f"unknown region {config.region!r}")


KEYED_KIND = ProviderKind(
    kind=KIND_NAME, config_model=KeyedFakeConfig, open=open_keyed, check=check_keyed
)
