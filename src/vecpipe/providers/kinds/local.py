"""The "local" kind: a sentence-transformers model in this process (providers/local.py)."""

from __future__ import annotations

from typing import Literal

from vecpipe.models import EmbeddingSpace
from vecpipe.providers.base import EmbeddingProvider
from vecpipe.providers.kind import ProviderConfig, ProviderContext, ProviderKind
from vecpipe.providers.local_model import DEFAULT_MODEL


class LocalProviderConfig(ProviderConfig):
    kind: Literal["local"] = "local"
    model: str = DEFAULT_MODEL


async def open_local(config: LocalProviderConfig, context: ProviderContext) -> EmbeddingProvider:
    from vecpipe.providers.local import LocalProvider

    return await LocalProvider.open(
        config.model,
        batch_size=context.batch.batch_size,
        batch_tokens=context.batch.batch_tokens,
        overlap_tokens=context.batch.overlap_tokens,
        torch_threads=context.batch.torch_threads,
    )


def declared_local_space(config: LocalProviderConfig) -> EmbeddingSpace | None:
    """The model's space from its files (no model load); None when they do not tell."""
    from vecpipe.providers.local_model import declared_space

    return declared_space(config.model)


KIND = ProviderKind(
    kind="local",
    config_model=LocalProviderConfig,
    open=open_local,
    declared_space=declared_local_space,
)
