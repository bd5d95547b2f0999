"""The EmbeddingProvider contract, run against the fake and the real local provider alike.

Whatever a test elsewhere learns from FakeProvider must hold for the real thing: these tests
are the proof. Then a few tests of the fake's own knobs.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator

import pytest

from tests.support.fake_provider import FakeProvider, fake_vector
from vecpipe.errors import BadProviderResponse, ClosedError, TransientProviderError
from vecpipe.models import EmbeddingSpace
from vecpipe.providers.base import EmbeddingProvider
from vecpipe.providers.local import LocalProvider

CAT = "The cat sat quietly on the warm kitchen mat."
CAT_AGAIN = "The cat sat quietly on the warm mat in the kitchen."
REVENUE = "Quarterly revenue grew nine percent on strong cloud sales."


@pytest.fixture(params=["fake", pytest.param("local", marks=pytest.mark.slow)])
async def provider(request: pytest.FixtureRequest) -> AsyncIterator[EmbeddingProvider]:
    opened: EmbeddingProvider
    if request.param == "fake":
        opened = FakeProvider()
    else:
        opened = await LocalProvider.open()  # the model itself is loaded once per process
    try:
        yield opened
    finally:
        await opened.aclose()


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def assert_close(a: list[float], b: list[float]) -> None:
    assert a == pytest.approx(b, abs=1e-5)


async def test_one_vector_per_text_in_order(provider: EmbeddingProvider) -> None:
    texts = [CAT, REVENUE, "a third, different text", CAT]
    vectors = await provider.embed(texts)
    assert len(vectors) == len(texts)
    for text, vector in zip(texts, vectors, strict=True):
        (alone,) = await provider.embed([text])
        assert_close(vector, alone)


async def test_vectors_are_finite_unit_vectors_of_the_space_dimension(
    provider: EmbeddingProvider,
) -> None:
    vectors = await provider.embed([CAT, REVENUE, "x", " "])
    for vector in vectors:
        assert len(vector) == provider.space.dimension
        assert all(isinstance(v, float) and math.isfinite(v) for v in vector)
        assert math.sqrt(sum(v * v for v in vector)) == pytest.approx(1.0, abs=1e-4)


async def test_identical_text_identical_vector(provider: EmbeddingProvider) -> None:
    first = await provider.embed([CAT, CAT])
    again = await provider.embed([CAT])
    assert_close(first[0], first[1])
    assert_close(first[0], again[0])


async def test_similar_text_is_closer_than_unrelated_text(provider: EmbeddingProvider) -> None:
    cat, cat_again, revenue = await provider.embed([CAT, CAT_AGAIN, REVENUE])
    assert cosine(cat, cat) > cosine(cat, revenue)
    assert cosine(cat, cat_again) > cosine(cat, revenue)


async def test_empty_batches(provider: EmbeddingProvider) -> None:
    assert await provider.embed([]) == []
    assert await provider.chunk([]) == []


async def test_short_text_is_one_chunk_equal_to_the_text(provider: EmbeddingProvider) -> None:
    texts = [CAT, "  spaced  ", "x"]
    assert await provider.chunk(texts) == [[text] for text in texts]


async def test_long_text_chunks_are_substrings_that_embed(provider: EmbeddingProvider) -> None:
    text = " ".join(f"{CAT} {REVENUE}" for _ in range(60))
    (chunks,) = await provider.chunk([text])
    assert len(chunks) > 1
    assert all(chunk and chunk in text for chunk in chunks)
    vectors = await provider.embed(chunks)
    assert len(vectors) == len(chunks)


async def test_identity_and_space(provider: EmbeddingProvider) -> None:
    assert provider.name and provider.space.dimension > 0
    assert provider.space.model in provider.name


async def test_close_is_idempotent_and_refuses_use_after(provider: EmbeddingProvider) -> None:
    await provider.aclose()
    await provider.aclose()
    with pytest.raises(ClosedError):
        await provider.embed([CAT])
    with pytest.raises(ClosedError):
        await provider.chunk([CAT])


# ---------------------------------------------------------------------------- the fake's knobs


async def test_fake_counts_calls_and_texts() -> None:
    async with FakeProvider() as fake:
        await fake.embed([CAT, REVENUE])
        await fake.embed([CAT])
        await fake.chunk([CAT])
        assert (fake.calls, fake.embedded_texts, fake.chunk_calls) == (2, 3, 1)
    assert fake.closed


async def test_fake_injects_transient_failures_then_recovers() -> None:
    fake = FakeProvider(fail_times=2)
    for _ in range(2):
        with pytest.raises(TransientProviderError):
            await fake.embed([CAT])
    assert await fake.embed([CAT]) == [fake_vector(CAT, 8)]
    assert (fake.calls, fake.embedded_texts) == (3, 1)


async def test_fake_injects_a_chosen_failure() -> None:
    fake = FakeProvider(fail_times=1, failure=lambda: BadProviderResponse("wrong dimension"))
    with pytest.raises(BadProviderResponse):
        await fake.embed([CAT])


async def test_fake_vectors_are_stable_and_sized_by_the_space() -> None:
    fake = FakeProvider(EmbeddingSpace("other-model", 32))
    (vector,) = await fake.embed([CAT])
    assert len(vector) == 32
    assert vector == fake_vector(CAT, 32)  # no per-process salt: the same in every run
    assert fake.name == "fake:other-model"


async def test_fake_chunks_by_characters() -> None:
    fake = FakeProvider(max_chars=50, overlap_chars=10)
    (chunks,) = await fake.chunk([CAT * 10])
    assert len(chunks) > 1 and all(len(chunk) <= 50 for chunk in chunks)
