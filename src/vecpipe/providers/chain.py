"""A tenant's provider chain: a primary and ordered fallbacks in one embedding space.

Each provider sits behind a circuit breaker: after `failure_threshold` consecutive failures
the chain stops calling it for `cooldown` seconds, then lets one call through as a probe.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from vecpipe.errors import BadProviderResponse, ProviderError, TransientProviderError
from vecpipe.models import EmbeddingSpace
from vecpipe.providers.base import EmbeddingProvider

log = logging.getLogger(__name__)


@dataclass
class CircuitBreaker:
    failure_threshold: int = 3
    cooldown: float = 30.0
    clock: Callable[[], float] = time.monotonic
    failures: int = 0
    opened_at: float | None = None

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half_open" if self.clock() - self.opened_at >= self.cooldown else "open"

    def allows_call(self) -> bool:
        return self.state != "open"

    def record_success(self) -> None:
        self.failures = 0
        self.opened_at = None

    def record_failure(self) -> None:
        self.failures += 1
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

    @property
    def primary(self) -> EmbeddingProvider:
        return self.providers[0]

    @property
    def space(self) -> EmbeddingSpace:
        return self.primary.space

    async def chunk(self, texts: Sequence[str]) -> list[list[str]]:
        # Chunking follows the primary's limit; fallbacks share its model, so its limit too.
        return await self.primary.chunk(texts)

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        errors: list[ProviderError] = []
        for provider, breaker in zip(self.providers, self.breakers, strict=True):
            if not breaker.allows_call():
                continue
            try:
                vectors = await provider.embed(texts)
                _check_space(provider, vectors, self.space)
            except ProviderError as exc:
                breaker.record_failure()
                log.warning("provider %s failed: %s", provider.name, exc.message)
                errors.append(exc)
                continue
            breaker.record_success()
            self.served_by.add(provider.name, len(texts))
            return vectors
        if not errors:
            raise TransientProviderError("every provider in the chain is paused after failures")
        transient = [e for e in errors if e.retryable]
        if transient:
            raise TransientProviderError(
                "no provider could embed: " + "; ".join(e.message for e in errors),
                retry_after=max((getattr(e, "retry_after", None) or 0.0) for e in transient)
                or None,
            )
        raise errors[-1]


def _check_space(
    provider: EmbeddingProvider, vectors: list[list[float]], space: EmbeddingSpace
) -> None:
    for vector in vectors:
        if len(vector) != space.dimension:
            raise BadProviderResponse(
                f"{provider.name} returned dimension {len(vector)}, expected {space.dimension}"
            )
