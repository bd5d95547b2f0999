"""The embedding provider contract.

A provider belongs to one embedding space (model + dimension). It chunks text to its own
input limit (token-aware where it knows the tokenizer) and embeds chunks in batches.
`name` identifies it in logs and metrics and never contains a secret.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from vecpipe.models import EmbeddingSpace


class EmbeddingProvider(Protocol):
    name: str
    space: EmbeddingSpace

    async def chunk(self, texts: Sequence[str]) -> list[list[str]]:
        """Split each text into chunks that fit the model's input limit (with overlap)."""

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text, in order, each of `space.dimension` finite floats."""

    async def aclose(self) -> None: ...
