"""A bounded cache of chunk embeddings, keyed by embedding space and chunk text hash.

Identical chunk text in one space is embedded once, across records and tenants, and across
concurrent calls: a text another call is embedding right now is waited for, not embedded
again (two requests sharing texts used to both miss). Vectors are kept as packed float32
(1.5 KiB for 384 dimensions, against ~12 KiB as a list of Python floats); models and
gateways produce float32, so nothing is lost.
"""

from __future__ import annotations

import asyncio
import struct
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence

import numpy as np

from vecpipe.models import EmbeddingSpace
from vecpipe.text.hashing import content_hash

Embedder = Callable[[Sequence[str]], Awaitable[list[list[float]]]]
Key = tuple[str, str]  # (space key, content hash)


class EmbeddingCache:
    def __init__(self, max_items: int = 50_000) -> None:
        self.max_items = max_items
        self._items: OrderedDict[Key, bytes] = OrderedDict()
        self._pending: dict[Key, asyncio.Future[list[float] | None]] = {}
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._items)

    async def embed(
        self, space: EmbeddingSpace, texts: Sequence[str], embed: Embedder
    ) -> list[list[float]]:
        """Vectors for texts, calling `embed` once for the distinct texts not cached and not
        being embedded by another call (those are awaited)."""
        keys = [(space.key, content_hash(t)) for t in texts]
        known: dict[Key, list[float]] = {}  # taken now: an await may evict them
        mine: dict[Key, str] = {}
        theirs: dict[Key, tuple[str, asyncio.Future[list[float] | None]]] = {}
        for key, text in zip(keys, texts, strict=True):
            if key in known or key in mine or key in theirs:
                continue
            if key in self._items:
                known[key] = self._get(key)
            elif key in self._pending:
                theirs[key] = (text, self._pending[key])
            else:
                mine[key] = text
                self._pending[key] = asyncio.get_running_loop().create_future()
        self.misses += len(mine)
        self.hits += len(texts) - len(mine)
        fresh = known | await self._embed_mine(mine, embed)
        abandoned: dict[Key, str] = {}
        for key, (text, embedding) in theirs.items():
            vector = await asyncio.shield(embedding)
            if vector is None:
                abandoned[key] = text  # the other call failed: embed it here
            else:
                fresh[key] = vector
        if abandoned:
            fresh.update(zip(abandoned, await embed(list(abandoned.values())), strict=True))
        return [fresh[k] for k in keys]

    async def _embed_mine(self, mine: dict[Key, str], embed: Embedder) -> dict[Key, list[float]]:
        """Embed `mine`, cache the vectors and hand them to the calls waiting for them. On
        failure or cancellation the waiters get None and embed the texts themselves."""
        fresh: dict[Key, list[float]] = {}
        try:
            if mine:
                fresh = dict(zip(mine, await embed(list(mine.values())), strict=True))
            for key, vector in fresh.items():
                self._put(key, vector)
        finally:
            for key in mine:
                self._pending.pop(key).set_result(fresh.get(key))
        return fresh

    def _get(self, key: tuple[str, str]) -> list[float]:
        self._items.move_to_end(key)
        vector: list[float] = np.frombuffer(self._items[key], dtype=np.float32).tolist()
        return vector

    def _put(self, key: tuple[str, str], vector: list[float]) -> None:
        if self.max_items <= 0:
            return
        self._items[key] = _packed(vector)
        self._items.move_to_end(key)
        while len(self._items) > self.max_items:
            self._items.popitem(last=False)


def _packed(vector: list[float]) -> bytes:
    """float32 bytes; struct packs a list of floats in a third of numpy's time."""
    try:
        return struct.pack(f"{len(vector)}f", *vector)
    except OverflowError:  # beyond float32 (a gateway sent float64): numpy makes it inf
        return np.asarray(vector, dtype=np.float32).tobytes()
