from __future__ import annotations

from collections.abc import Sequence

from vecpipe.core.embed_cache import EmbeddingCache
from vecpipe.models import EmbeddingSpace

SPACE = EmbeddingSpace("m", 2)


class Counter:
    def __init__(self) -> None:
        self.texts: list[str] = []

    async def __call__(self, texts: Sequence[str]) -> list[list[float]]:
        self.texts.extend(texts)
        return [[float(len(t)), 1.0] for t in texts]


async def test_identical_text_is_embedded_once() -> None:
    cache, embed = EmbeddingCache(10), Counter()
    first = await cache.embed(SPACE, ["a", "bb", "a"], embed)
    second = await cache.embed(SPACE, ["bb", "ccc"], embed)
    assert embed.texts == ["a", "bb", "ccc"]
    assert first == [[1.0, 1.0], [2.0, 1.0], [1.0, 1.0]]
    assert second == [[2.0, 1.0], [3.0, 1.0]]


async def test_spaces_do_not_share_entries_and_size_is_bounded() -> None:
    cache, embed = EmbeddingCache(2), Counter()
    await cache.embed(SPACE, ["a"], embed)
    await cache.embed(EmbeddingSpace("other", 2), ["a"], embed)
    await cache.embed(SPACE, ["b", "c"], embed)
    assert embed.texts == ["a", "a", "b", "c"]
    assert len(cache) == 2
