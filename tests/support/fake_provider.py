"""A fast, deterministic EmbeddingProvider for tests.

Vectors are a hashed bag of words: each lower-cased word adds a pseudo-random vector derived
from its blake2b digest (stable across processes, unlike `hash()`), and the sum is
L2-normalized. So identical texts get identical vectors, texts sharing words are similar, and
unrelated texts are roughly orthogonal. Chunks come from a `CharChunker`.

Knobs: `fail_times` injects failures (TransientProviderError unless `failure` builds another
exception) on the first n embed calls; `delay` makes each call take that long on the loop
(an `asyncio.sleep`, never blocking); `reject_texts_containing` makes a call fail for good
(like a 400) when any input contains that marker. `calls` counts embed calls (failed ones included),
`embedded_texts` the texts of successful calls.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import re
from collections.abc import Callable, Sequence

from vecpipe.errors import ClosedError, ProviderError, TransientProviderError
from vecpipe.lifecycle import AsyncResource
from vecpipe.models import EmbeddingSpace
from vecpipe.providers.base import Purpose
from vecpipe.text.chunking import CharChunker

_WORD = re.compile(r"\w+")
DEFAULT_SPACE = EmbeddingSpace("fake-model", 8)


def fake_vector(text: str, dimension: int) -> list[float]:
    """The vector FakeProvider returns for `text` (for tests that compute expectations)."""
    words = _WORD.findall(text.lower()) or [text]
    total = [0.0] * dimension
    for word in words:
        for i, value in enumerate(_word_vector(word, dimension)):
            total[i] += value
    norm = math.sqrt(sum(v * v for v in total))
    if norm == 0.0:  # words cancelled out exactly: still a unit vector, still deterministic
        return [1.0] + [0.0] * (dimension - 1)
    return [v / norm for v in total]


def _word_vector(word: str, dimension: int) -> list[float]:
    data = b""
    counter = 0
    while len(data) < dimension:
        data += hashlib.blake2b(f"{counter}:{word}".encode(), digest_size=64).digest()
        counter += 1
    return [(byte - 127.5) / 127.5 for byte in data[:dimension]]


class FakeProvider(AsyncResource):
    def __init__(
        self,
        space: EmbeddingSpace = DEFAULT_SPACE,
        *,
        fail_times: int = 0,
        failure: Callable[[], Exception] | None = None,
        delay: float = 0.0,
        max_chars: int = 400,
        overlap_chars: int = 40,
        name: str | None = None,
    ) -> None:
        self.space = space
        self.name = name or f"fake:{space.model}"
        self.fail_times = fail_times
        self.failure = failure or (lambda: TransientProviderError(f"{self.name}: injected"))
        self.delay = delay
        self.chunker = CharChunker(max_chars, overlap_chars)
        self.reject_texts_containing: str | None = None
        self.calls = 0
        self.embedded_texts = 0
        self.chunk_calls = 0
        self.closed = False

    async def embed(
        self, texts: Sequence[str], *, purpose: Purpose = "document"
    ) -> list[list[float]]:
        self._check_open()
        self.calls += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_times > 0:
            self.fail_times -= 1
            raise self.failure()
        marker = self.reject_texts_containing
        if marker and any(marker in text for text in texts):
            raise ProviderError(f"{self.name}: rejected an input (400)")
        self.embedded_texts += len(texts)
        return [fake_vector(text, self.space.dimension) for text in texts]

    async def chunk(self, texts: Sequence[str]) -> list[list[str]]:
        self._check_open()
        self.chunk_calls += 1
        return self.chunker.split_many(texts)

    async def aclose(self) -> None:
        self.closed = True

    def _check_open(self) -> None:
        if self.closed:
            raise ClosedError(f"{self.name} provider is closed")
