"""Writes no flush has confirmed yet: what a retry or a redelivery of them counts.

A write whose flush failed is in the store but was never confirmed to anyone; the caller
was told the records failed. See `Unconfirmed`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from vecpipe.models import EmbeddingSpace

Key = tuple[str, str]  # (tenant_id, record_id)
DELETED = -1
"""The version `Unconfirmed` remembers for a record an unconfirmed write deleted."""

UNCONFIRMED_LIMIT = 100_000
"""Records remembered per space while writes go unconfirmed (a long store outage)."""


class Unconfirmed:
    """Writes no good flush has covered yet, per space, and the spaces in doubt.

    A record stored by an unconfirmed write, met again by an op with the same text and
    metadata (a retry, a redelivery), was never confirmed to anyone: that op counts it
    upserted, not unchanged. A space is in doubt once a write or a flush of it failed, until
    a flush succeeds: what it holds may not be durable, so every batch that touches it
    flushes, even one that writes nothing. Kept in memory: after a restart a redelivered
    job message is recognised by its version instead (`ingest._as_stored`).
    """

    def __init__(self, limit: int = UNCONFIRMED_LIMIT) -> None:
        self._limit = limit
        self._versions: dict[EmbeddingSpace, dict[Key, int]] = {}  # space -> record -> version
        self._in_doubt: set[EmbeddingSpace] = set()

    def wrote(self, space: EmbeddingSpace, key: Key, version: int) -> None:
        """Before a write is made: it may land even if the call fails."""
        written = self._versions.setdefault(space, {})
        written.pop(key, None)  # newest last: the oldest go first past the limit
        written[key] = version
        if len(written) > self._limit:
            del written[next(iter(written))]

    def version(self, space: EmbeddingSpace, key: Key) -> int | None:
        """The version an unconfirmed write of the record stored, if any."""
        return self._versions.get(space, {}).get(key)

    def in_doubt(self, space: EmbeddingSpace) -> bool:
        return space in self._in_doubt

    def failed(self, space: EmbeddingSpace) -> None:
        self._in_doubt.add(space)

    @contextlib.contextmanager
    def flushing(self, space: EmbeddingSpace) -> Iterator[None]:
        """Around a flush: what was written before it is confirmed if it succeeds."""
        covered = self._versions.pop(space, {})
        try:
            yield
        except BaseException:
            self._in_doubt.add(space)
            for key, version in covered.items():
                if self.version(space, key) is None:  # a write made meanwhile is newer
                    self.wrote(space, key, version)
            raise
        self._in_doubt.discard(space)
