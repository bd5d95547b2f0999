"""A tenant's provider chain: a primary and ordered fallbacks in one embedding space.

Each provider sits behind a circuit breaker: after `failure_threshold` consecutive failures
the chain stops calling it for `cooldown` seconds, then lets one call through as a probe.

Metrics: every successful call is timed by provider, a call served by a fallback counts as
one, and each breaker's state is a gauge (`ProviderManager.breaker_states()` reads the chains
it holds, through `worst_breaker_states`).
`track_served()` tells a caller which providers embedded its texts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from vecpipe import metrics
from vecpipe.errors import BadProviderResponse, ProviderError, TransientProviderError
from vecpipe.models import EmbeddingSpace
from vecpipe.providers.base import CountsTokens, EmbeddingProvider, Purpose
from vecpipe.text.formatting import DEFAULT_FORMAT, TextFormat

log = logging.getLogger(__name__)

_served: ContextVar[list[str] | None] = ContextVar("vecpipe_served", default=None)


@contextmanager
def track_served() -> Iterator[list[str]]:
    """Collects the name of the provider serving each chain call made in this task."""
    names: list[str] = []
    token = _served.set(names)
    try:
        yield names
    finally:
        _served.reset(token)


def worst_breaker_states(chains: Iterable[ProviderChain]) -> dict[str, str]:
    """Each provider's breaker state; the worst one when chains share a provider."""
    worst: dict[str, str] = {}
    rank = metrics.BREAKER_VALUES
    for chain in chains:
        for name, state in chain.breaker_states().items():
            if rank[state] >= rank.get(worst.get(name, "closed"), 0):
                worst[name] = state
    return worst


@dataclass
class CircuitBreaker:
    failure_threshold: int = 3
    cooldown: float = 30.0
    clock: Callable[[], float] = time.monotonic
    failures: int = 0
    opened_at: float | None = None
    last_error: str | None = None

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half_open" if self.clock() - self.opened_at >= self.cooldown else "open"

    def seconds_until_probe(self) -> float:
        if self.opened_at is None:
            return 0.0
        return max(0.0, self.cooldown - (self.clock() - self.opened_at))

    def allows_call(self) -> bool:
        return self.state != "open"

    def record_success(self) -> None:
        self.failures = 0
        self.opened_at = None

    def record_failure(self, reason: str | None = None) -> None:
        self.failures += 1
        self.last_error = reason or self.last_error
        if self.failures >= self.failure_threshold or self.opened_at is not None:
            self.opened_at = self.clock()


@dataclass
class ServedBy:
    """Which provider served a call; counted for logs and metrics."""

    counts: dict[str, int] = field(default_factory=dict)

    def add(self, name: str, n: int) -> None:
        self.counts[name] = self.counts.get(name, 0) + n


class ProviderChain:
    def __init__(
        self,
        providers: Sequence[EmbeddingProvider],
        breakers: Sequence[CircuitBreaker],
    ) -> None:
        if not providers:
            raise ValueError("a chain needs at least one provider")
        self.providers = list(providers)
        self.breakers = list(breakers)
        self.served_by = ServedBy()

    def breaker_states(self) -> dict[str, str]:
        """The state of each provider's breaker (closed | half_open | open), by name."""
        return {
            provider.name: breaker.state
            for provider, breaker in zip(self.providers, self.breakers, strict=True)
        }

    @property
    def primary(self) -> EmbeddingProvider:
        return self.providers[0]

    @property
    def space(self) -> EmbeddingSpace:
        return self.primary.space

    @property
    def text_format(self) -> TextFormat:
        """How chunks and queries become model inputs: the primary's (fallbacks share its
        space, and the space names the format)."""
        fmt = getattr(self.primary, "text_format", DEFAULT_FORMAT)
        return fmt if isinstance(fmt, TextFormat) else DEFAULT_FORMAT

    @property
    def token_counter(self) -> CountsTokens | None:
        """The primary, when it knows its model's tokenizer; fallbacks share its model."""
        return self.primary if isinstance(self.primary, CountsTokens) else None

    async def chunk(self, texts: Sequence[str]) -> list[list[str]]:
        # Chunking follows the primary's limit; fallbacks share its model, so its limit too.
        return await self.primary.chunk(texts)

    async def embed(
        self, texts: Sequence[str], *, purpose: Purpose = "document"
    ) -> list[list[float]]:
        """The first provider able to embed `texts` does, for `purpose` (passed on)."""
        if not texts:
            return []
        errors: list[ProviderError] = []
        for provider, breaker in zip(self.providers, self.breakers, strict=True):
            if not breaker.allows_call():
                continue
            started = time.perf_counter()
            try:
                vectors = await provider.embed(texts, purpose=purpose)
                _check_space(provider, vectors, self.space)
            except ProviderError as exc:
                breaker.record_failure(exc.message)
                _observe_failure(provider.name, breaker)
                log.warning("provider %s failed: %s", provider.name, exc.message)
                errors.append(exc)
                continue
            breaker.record_success()
            self.served_by.add(provider.name, len(texts))
            _observe_success(provider.name, len(texts), time.perf_counter() - started)
            if provider is not self.primary:
                metrics.FALLBACKS.labels(metrics.provider_label(provider.name)).inc()
            if (served := _served.get()) is not None:
                served.append(provider.name)
            return vectors
        if not errors:
            raise TransientProviderError(
                "every provider in the chain is paused after failures: "
                + "; ".join(
                    f"{p.name}: {b.last_error or 'failing'}"
                    for p, b in zip(self.providers, self.breakers, strict=True)
                ),
                retry_after=min(b.seconds_until_probe() for b in self.breakers),
            )
        transient = [e for e in errors if e.retryable]
        if transient:
            raise TransientProviderError(
                "no provider could embed: " + "; ".join(e.message for e in errors),
                retry_after=max((getattr(e, "retry_after", None) or 0.0) for e in transient)
                or None,
            )
        raise errors[-1]


def _observe_success(name: str, texts: int, seconds: float) -> None:
    label = metrics.provider_label(name)
    metrics.EMBED_SECONDS.labels(label).observe(seconds)
    metrics.EMBED_BATCH.labels(label).observe(texts)
    metrics.PROVIDER_TEXTS.labels(label).inc(texts)
    metrics.BREAKER_STATE.labels(label).set(0)


def _observe_failure(name: str, breaker: CircuitBreaker) -> None:
    label = metrics.provider_label(name)
    metrics.PROVIDER_FAILURES.labels(label).inc()
    metrics.BREAKER_STATE.labels(label).set(metrics.BREAKER_VALUES[breaker.state])


def _check_space(
    provider: EmbeddingProvider, vectors: list[list[float]], space: EmbeddingSpace
) -> None:
    for vector in vectors:
        if len(vector) != space.dimension:
            raise BadProviderResponse(
                f"{provider.name} returned dimension {len(vector)}, expected {space.dimension}"
            )
