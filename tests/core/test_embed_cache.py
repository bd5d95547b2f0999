from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence

import numpy as np
import pytest

from vecpipe.core.embed_cache import EmbeddingCache
from vecpipe.errors import TransientProviderError
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


class Gated(Counter):
    """Embeds only once `release` is set, so calls overlap."""

    def __init__(self, fail: bool = False) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.fail = fail

    async def __call__(self, texts: Sequence[str]) -> list[list[float]]:
        await self.release.wait()
        if self.fail:
            raise TransientProviderError("gateway down")
        return await super().__call__(texts)


async def test_concurrent_calls_embed_a_shared_text_once() -> None:
    cache, first_embed, second_embed = EmbeddingCache(10), Gated(), Counter()
    first = asyncio.create_task(cache.embed(SPACE, ["shared", "a"], first_embed))
    await asyncio.sleep(0)  # the first call now embeds "shared"
    second = asyncio.create_task(cache.embed(SPACE, ["b", "shared"], second_embed))
    await asyncio.sleep(0)
    assert second_embed.texts == ["b"]  # "shared" is awaited, not embedded again
    first_embed.release.set()
    assert await first == [[6.0, 1.0], [1.0, 1.0]]
    assert await second == [[1.0, 1.0], [6.0, 1.0]]
    assert first_embed.texts == ["shared", "a"]


async def test_a_failed_or_cancelled_call_leaves_its_texts_to_the_waiters() -> None:
    cache, failing, fallback = EmbeddingCache(10), Gated(fail=True), Counter()
    first = asyncio.create_task(cache.embed(SPACE, ["shared"], failing))
    await asyncio.sleep(0)
    second = asyncio.create_task(cache.embed(SPACE, ["shared"], fallback))
    await asyncio.sleep(0)
    failing.release.set()
    with pytest.raises(TransientProviderError):
        await first
    assert await second == [[6.0, 1.0]]  # embedded by the waiter itself
    assert fallback.texts == ["shared"]

    stuck, rescue = Gated(), Counter()
    third = asyncio.create_task(cache.embed(SPACE, ["other"], stuck))
    await asyncio.sleep(0)
    fourth = asyncio.create_task(cache.embed(SPACE, ["other"], rescue))
    await asyncio.sleep(0)
    third.cancel()
    assert await fourth == [[5.0, 1.0]]
    assert rescue.texts == ["other"]
    assert third.cancelled()


async def test_a_hit_returns_the_float32_of_what_was_embedded() -> None:
    async def embed(texts: Sequence[str]) -> list[list[float]]:
        return [[0.1, -2.5] for _ in texts]  # 0.1 is not a float32

    cache = EmbeddingCache(10)
    assert await cache.embed(SPACE, ["a"], embed) == [[0.1, -2.5]]  # a miss: as embedded
    assert await cache.embed(SPACE, ["a"], embed) == [[float(np.float32(0.1)), -2.5]]


async def test_a_value_beyond_float32_is_cached_as_infinite() -> None:
    async def embed(texts: Sequence[str]) -> list[list[float]]:
        return [[1e300, 1.0] for _ in texts]

    cache = EmbeddingCache(10)
    await cache.embed(SPACE, ["a"], embed)
    assert await cache.embed(SPACE, ["a"], embed) == [[math.inf, 1.0]]
