"""The "openai" kind: any OpenAI-compatible `/embeddings` gateway (providers/openai_compat.py).

Its `base_url` is a tenant-supplied URL, so saving a config checks it against the gateway
URL policy (and opening the provider checks the addresses it resolves to).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from vecpipe.models import EmbeddingSpace
from vecpipe.providers.base import EmbeddingProvider, Purpose
from vecpipe.providers.kind import ProviderConfig, ProviderContext, ProviderKind

URL_SYNTAX = r"^https?://[^\s/?#@:]+(:[0-9]{1,5})?(/\S*)?$"


class OpenAIProviderConfig(ProviderConfig):
    kind: Literal["openai"] = "openai"
    # the syntax the URL policy takes (providers/url_policy.py); it also refuses private
    # and loopback hosts that VECPIPE_GATEWAY_ALLOWLIST does not name
    base_url: str = Field(json_schema_extra={"pattern": URL_SYNTAX})
    model: str = Field(min_length=1)
    api_key: SecretStr | None = None
    dimensions: int | None = Field(default=None, ge=1, le=65536)
    timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    max_batch_size: int = Field(default=256, ge=1, le=4096)
    max_concurrency: int = Field(default=4, ge=1, le=64)
    max_input_tokens: int = Field(default=8191, ge=16)
    # For models that embed queries and documents differently, the value of the request's
    # `input_type` field for each purpose, e.g. {"query": "query", "document": "passage"}
    # (NVIDIA NIM). A purpose left out, or no mapping (the default), sends no such field.
    input_type: dict[Purpose, str] | None = None


async def open_gateway(config: OpenAIProviderConfig, context: ProviderContext) -> EmbeddingProvider:
    from vecpipe.providers.openai_compat import OpenAICompatibleProvider

    return await OpenAICompatibleProvider.open(config, policy=context.url_policy)


def declared_gateway_space(config: OpenAIProviderConfig) -> EmbeddingSpace | None:
    """Model and dimensions when the config names the dimensions; else only a probe tells."""
    if config.dimensions is None:
        return None
    return EmbeddingSpace(config.model, config.dimensions)


def check_gateway(config: OpenAIProviderConfig, context: ProviderContext) -> None:
    context.url_policy.check_url(config.base_url)


KIND = ProviderKind(
    kind="openai",
    config_model=OpenAIProviderConfig,
    open=open_gateway,
    declared_space=declared_gateway_space,
    check=check_gateway,
)
