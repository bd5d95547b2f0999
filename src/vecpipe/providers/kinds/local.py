"""The "local" kind: a sentence-transformers model in this process (providers/local.py)."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Literal, Self

from pydantic import BeforeValidator, Field, model_validator

from vecpipe.models import JSON_INTEGER, EmbeddingSpace
from vecpipe.providers.base import EmbeddingProvider
from vecpipe.providers.kind import ProviderConfig, ProviderContext, ProviderKind
from vecpipe.providers.local_backend import (
    DEFAULT_BACKEND,
    Backend,
    backend_options,
    default_batch_tokens,
)
from vecpipe.providers.local_model import DEFAULT_MODEL
from vecpipe.text.formatting import LATER_CHUNK_PENALTY, TextFormat

PREFIX = Annotated[str, Field(max_length=64)]


def _json_number(value: object) -> object:
    """A JSON number: never `true` or `"0.2"`, which lax validation would read as one."""
    if isinstance(value, bool | str | bytes):
        raise ValueError("must be a JSON number, not a boolean or a string")
    return value


class LocalProviderConfig(ProviderConfig):
    """The model, and how texts become its inputs (text/formatting.py; bench/README.md §7
    and docs/search-quality.md measure each option)."""

    kind: Literal["local"] = "local"
    model: str = DEFAULT_MODEL
    backend: Backend = Field(
        default=DEFAULT_BACKEND,
        description=(
            "how the model runs: torch (the default, the reference vectors), onnx (ONNX "
            "Runtime fp32: the same space, faster) or onnx-int8 (quantized: fastest, its "
            "own space, a little less accurate)"
        ),
    )
    chunk_tokens: Annotated[int, Field(ge=16, le=8192), JSON_INTEGER] | None = Field(
        default=None, description="tokens per chunk; null: the model's limit"
    )
    chunk_overlap: Annotated[int, Field(ge=0, le=4096), JSON_INTEGER] | None = Field(
        default=None, description="tokens shared by consecutive chunks; null: the server's"
    )
    title_field: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="a metadata field whose value is put before each chunk when it is embedded",
    )
    query_prefix: PREFIX = ""
    document_prefix: PREFIX = ""
    later_chunk_penalty: Annotated[float, Field(ge=0.0, le=2.0), BeforeValidator(_json_number)] = (
        Field(
            default=LATER_CHUNK_PENALTY,
            description="subtracted from the score of a record's chunks after its first",
        )
    )

    @model_validator(mode="after")
    def _overlap_fits(self) -> Self:
        tokens, overlap = self.chunk_tokens, self.chunk_overlap
        if tokens is not None and overlap is not None and 2 * overlap > tokens:
            raise ValueError("chunk_overlap must be at most half of chunk_tokens")
        return self

    def text_format(self) -> TextFormat:
        return TextFormat(
            chunk_tokens=self.chunk_tokens,
            chunk_overlap=self.chunk_overlap,
            title_field=self.title_field,
            query_prefix=self.query_prefix,
            document_prefix=self.document_prefix,
            later_chunk_penalty=self.later_chunk_penalty,
        )


async def open_local(config: LocalProviderConfig, context: ProviderContext) -> EmbeddingProvider:
    from vecpipe.providers.local import LocalProvider

    text_format = config.text_format()
    overlap = config.chunk_overlap
    if overlap is None:  # the server's setting, within what the chunk size allows
        overlap = context.batch.overlap_tokens
        if config.chunk_tokens is not None:
            overlap = min(overlap, config.chunk_tokens // 2)
    return await LocalProvider.open(
        config.model,
        batch_size=context.batch.batch_size,
        batch_tokens=context.batch.batch_tokens or default_batch_tokens(config.backend),
        overlap_tokens=overlap,
        max_tokens=config.chunk_tokens,
        torch_threads=context.batch.torch_threads,
        text_format=text_format,
        backend=config.backend,
        models_dir=context.models_dir,
    )


def declared_local_space(config: LocalProviderConfig) -> EmbeddingSpace | None:
    """The model's space from its files (no model load); None when they do not tell."""
    from vecpipe.providers.local_model import declared_space

    space = declared_space(config.model)
    variant = config.text_format().space_variant(backend_options(config.backend))
    return space if space is None else dataclasses.replace(space, variant=variant)


KIND = ProviderKind(
    kind="local",
    config_model=LocalProviderConfig,
    open=open_local,
    declared_space=declared_local_space,
)
