"""Fallback and the circuit breaker, with fake providers."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from tests.support.fake_provider import FakeProvider
from vecpipe.errors import BadProviderResponse, ProviderError, TransientProviderError
from vecpipe.models import EmbeddingSpace
from vecpipe.providers.base import Purpose
from vecpipe.providers.chain import CircuitBreaker, ProviderChain

SPACE = EmbeddingSpace("m", 8)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def chain_of(*providers: FakeProvider, clock: Clock | None = None) -> ProviderChain:
    clock = clock or Clock()
    return ProviderChain(
        providers,
        [CircuitBreaker(failure_threshold=2, cooldown=10, clock=clock) for _ in providers],
    )


async def test_fallback_serves_when_primary_fails() -> None:
    primary = FakeProvider(SPACE, fail_times=1, name="primary")
    fallback = FakeProvider(SPACE, name="fallback")
    chain = chain_of(primary, fallback)
    vectors = await chain.embed(["hello"])
    assert len(vectors) == 1 and fallback.embedded_texts == 1
    assert chain.served_by.counts == {"fallback": 1}


async def test_breaker_stops_calling_a_failing_primary_then_probes_it() -> None:
    clock = Clock()
    primary = FakeProvider(SPACE, fail_times=2, name="primary")
    fallback = FakeProvider(SPACE, name="fallback")
    chain = chain_of(primary, fallback, clock=clock)
    for _ in range(5):
        await chain.embed(["x"])
    assert primary.calls == 2  # opened after two failures, not called while open
    assert chain.breakers[0].state == "open"
    clock.now = 11
    await chain.embed(["x"])  # half-open probe succeeds
    assert primary.calls == 3 and chain.breakers[0].state == "closed"


async def test_all_failing_transient_is_transient() -> None:
    chain = chain_of(FakeProvider(SPACE, fail_times=9), FakeProvider(SPACE, fail_times=9))
    with pytest.raises(TransientProviderError):
        await chain.embed(["x"])


async def test_permanent_failure_stays_permanent() -> None:
    primary = FakeProvider(SPACE, fail_times=1, failure=lambda: ProviderError("400"))
    with pytest.raises(ProviderError) as caught:
        await chain_of(primary).embed(["x"])
    assert not caught.value.retryable


async def test_wrong_dimension_is_an_error_never_a_vector() -> None:
    class WrongDimension(FakeProvider):
        async def embed(
            self, texts: Sequence[str], *, purpose: Purpose = "document"
        ) -> list[list[float]]:
            return [[1.0, 0.0, 0.0, 0.0] for _ in texts]  # claims 8

    with pytest.raises(BadProviderResponse):
        await chain_of(WrongDimension(SPACE)).embed(["x"])


class RecordingProvider(FakeProvider):
    """Notes the purpose of every call it gets."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.purposes: list[Purpose] = []

    async def embed(
        self, texts: Sequence[str], *, purpose: Purpose = "document"
    ) -> list[list[float]]:
        self.purposes.append(purpose)
        return await super().embed(texts, purpose=purpose)


async def test_the_purpose_reaches_the_provider_that_serves_and_the_ones_that_failed() -> None:
    primary = RecordingProvider(SPACE, fail_times=1, name="primary")
    fallback = RecordingProvider(SPACE, name="fallback")
    chain = chain_of(primary, fallback)
    await chain.embed(["a query"], purpose="query")
    await chain.embed(["a document"])
    assert primary.purposes == ["query", "document"]
    assert fallback.purposes == ["query"]
