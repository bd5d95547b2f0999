"""LocalProvider on the real all-MiniLM-L6-v2 (loaded once per process, offline)."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest

from vecpipe.errors import ClosedError, ConfigError
from vecpipe.providers.local import LocalProvider, canonical_model_name

pytestmark = pytest.mark.slow

WORDS = (  # noqa: SIM905  (a sentence reads better than a list)
    "river mountain engine protocol harvest lantern quantum violin glacier archive "
    "bicycle orchard compiler thunder meadow library satellite pepper canyon ledger"
).split()


@pytest.fixture
async def provider() -> AsyncIterator[LocalProvider]:
    async with await LocalProvider.open() as opened:
        yield opened


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def essay(words: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    sentences = []
    while words > 0:
        length = min(words, rng.randint(8, 20))
        sentences.append(" ".join(rng.choice(WORDS) for _ in range(length)).capitalize() + ".")
        words -= length
    return " ".join(sentences)


async def test_semantic_sanity(provider: LocalProvider) -> None:
    query, paraphrase, unrelated = await provider.embed(
        [
            "How do I reset my password?",
            "What are the steps to change a forgotten password?",
            "The stock market closed higher on Friday.",
        ]
    )
    assert cosine(query, paraphrase) > cosine(query, unrelated) + 0.2


async def test_identity(provider: LocalProvider) -> None:
    assert provider.name == "local:all-MiniLM-L6-v2"
    assert (provider.space.model, provider.space.dimension) == ("all-MiniLM-L6-v2", 384)
    assert provider.max_tokens == 254  # 256 minus [CLS] and [SEP]
    assert "all-MiniLM-L6-v2" in repr(provider)


async def test_long_text_is_chunked_to_the_model_limit(provider: LocalProvider) -> None:
    text = essay(2000)
    (chunks,) = await provider.chunk([text])
    assert len(chunks) >= 5
    tokenizer = provider.sentence_model.tokenizer
    position = 0
    previous_end = 0
    for index, chunk in enumerate(chunks):
        tokens = tokenizer(chunk, add_special_tokens=False)["input_ids"]
        assert len(tokens) <= provider.max_tokens
        start = text.index(chunk, position)
        if index:
            assert start < previous_end, "consecutive chunks overlap"
        position, previous_end = start + 1, start + len(chunk)
    assert previous_end == len(text), "the last chunk reaches the end of the text"
    vectors = await provider.embed(chunks)
    assert len(vectors) == len(chunks)


async def test_event_loop_keeps_ticking_during_a_large_embed(provider: LocalProvider) -> None:
    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    try:
        vectors = await provider.embed([essay(45, seed) for seed in range(192)])
    finally:
        stop.set()
        await task
    assert len(vectors) == 192
    assert ticks >= 10, f"the loop ticked only {ticks} times during the embed"


async def test_providers_share_one_model() -> None:
    async with (
        await LocalProvider.open() as first,
        await LocalProvider.open("sentence-transformers/all-MiniLM-L6-v2", batch_size=8) as second,
    ):
        assert first.sentence_model is second.sentence_model
        assert first.space == second.space
        a, b = await asyncio.gather(first.embed(["shared model"]), second.embed(["shared model"]))
        assert a[0] == pytest.approx(b[0], abs=1e-5)


async def test_close_waits_for_work_in_flight(provider: LocalProvider) -> None:
    embedding = asyncio.create_task(provider.embed([essay(40, seed) for seed in range(16)]))
    await asyncio.sleep(0)  # the embed is queued in the executor
    await provider.aclose()
    assert len(await embedding) == 16
    with pytest.raises(ClosedError):
        await provider.embed(["too late"])


async def test_a_cancelled_embed_stops_at_the_next_batch() -> None:
    """The caller gave up: the executor finishes the batch it is in, then stops."""
    started, proceed = threading.Event(), threading.Event()
    batches: list[int] = []
    async with await LocalProvider.open(batch_size=8) as provider:
        model = provider.sentence_model
        original = model.encode

        def gated_encode(texts: list[str], **kwargs: Any) -> Any:
            batches.append(len(texts))
            started.set()
            proceed.wait(timeout=60)
            return original(texts, **kwargs)

        model.encode = gated_encode
        try:
            embedding = asyncio.create_task(provider.embed([essay(20, s) for s in range(32)]))
            await asyncio.to_thread(started.wait, 60)
            embedding.cancel()
            proceed.set()
            with pytest.raises(asyncio.CancelledError):
                await embedding
            assert len(await provider.embed(["still works"])) == 1
        finally:
            del model.encode
    assert batches == [8, 1], "one batch of the cancelled embed, then the next embed"


async def test_unknown_model_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown local model 'no-such-model-anywhere'"):
        await LocalProvider.open("no-such-model-anywhere")


async def test_a_directory_that_is_not_a_model_is_a_config_error(tmp_path) -> None:
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(ConfigError, match="cannot load local model"):
        await LocalProvider.open(str(tmp_path))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"batch_size": 0}, "batch size"),
        ({"batch_tokens": 0}, "batch tokens"),
        ({"torch_threads": -1}, "torch threads"),
        ({"overlap_tokens": -1}, "overlap"),
        ({"overlap_tokens": 200}, "at most half"),
        ({"max_tokens": 0}, "max tokens"),
    ],
)
async def test_bad_options_are_config_errors(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        await LocalProvider.open(**options)


async def test_smaller_max_tokens(provider: LocalProvider) -> None:
    async with await LocalProvider.open(max_tokens=64, overlap_tokens=8) as small:
        assert small.max_tokens == 64
        (chunks,) = await small.chunk([essay(300)])
        assert len(chunks) >= 5


def test_model_aliases() -> None:
    assert canonical_model_name(" sentence-transformers/all-MiniLM-L6-v2 ") == "all-MiniLM-L6-v2"
    assert canonical_model_name("/models/e5") == "/models/e5"
