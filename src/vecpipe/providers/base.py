"""The embedding provider contract.

A provider belongs to one embedding space (model + dimension). It chunks text to its own
input limit (token-aware where it knows the tokenizer) and embeds chunks in batches.
`name` identifies it in logs and metrics and never contains a secret.

Every embed says what its texts are for (`Purpose`): "document" for what is stored and
searched over, "query" for a search's text. A provider uses it where it matters to it: the
local model serves queries ahead of queued ingest batches, a gateway may pass it on to a
model that embeds queries and documents differently. Vectors of both purposes share one space.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol, runtime_checkable

from vecpipe.models import EmbeddingSpace

Purpose = Literal["document", "query"]


class EmbeddingProvider(Protocol):
    name: str
    space: EmbeddingSpace

    async def chunk(self, texts: Sequence[str]) -> list[list[str]]:
        """Split each text into chunks that fit the model's input limit (with overlap)."""

    async def embed(
        self, texts: Sequence[str], *, purpose: Purpose = "document"
    ) -> list[list[float]]:
        """One vector per text, in order, each of `space.dimension` finite floats."""

    async def aclose(self) -> None: ...


@runtime_checkable
class CountsTokens(Protocol):
    """A provider that knows its model's tokenizer (the local model does; a gateway's is
    unknown here): /v1/embeddings names the limit and the count when an input is too long."""

    @property
    def input_limit(self) -> int:
        """Tokens per input the model reads, special tokens included (256 for MiniLM)."""

    async def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Each text's tokens, special tokens included, not truncated."""
