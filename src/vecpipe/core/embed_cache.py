"""A bounded cache of chunk embeddings, keyed by embedding space and chunk text hash.

Identical chunk text in one space is embedded once, across records and tenants. Vectors
are kept as float32 arrays (1.5 KiB for 384 dimensions, against ~12 KiB as a list of Python
floats); models and gateways produce float32, so nothing is lost.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence

import numpy as np

from vecpipe.core.hashing import content_hash
from vecpipe.models import EmbeddingSpace

Embedder = Callable[[Sequence[str]], Awaitable[list[list[float]]]]


class EmbeddingCache:
    def __init__(self, max_items: int = 50_000) -> None:
        self.max_items = max_items
        self._items: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._items)

    async def embed(
        self, space: EmbeddingSpace, texts: Sequence[str], embed: Embedder
    ) -> list[list[float]]:
        """Vectors for texts, calling `embed` once for the distinct texts not cached."""
        keys = [(space.key, content_hash(t)) for t in texts]
        missing: dict[tuple[str, str], str] = {}
        for key, text in zip(keys, texts, strict=True):
            if key not in self._items and key not in missing:
                missing[key] = text
        if missing:
            vectors = await embed(list(missing.values()))
            fresh = dict(zip(missing, vectors, strict=True))
        else:
            fresh = {}
        self.misses += len(missing)
        self.hits += len(texts) - len(missing)
        result = [fresh[k] if k in fresh else self._get(k) for k in keys]
        for key, vector in fresh.items():
            self._put(key, vector)
        return result

    def _get(self, key: tuple[str, str]) -> list[float]:
        self._items.move_to_end(key)
        vector: list[float] = self._items[key].tolist()
        return vector

    def _put(self, key: tuple[str, str], vector: list[float]) -> None:
        if self.max_items <= 0:
            return
        self._items[key] = np.asarray(vector, dtype=np.float32)
        self._items.move_to_end(key)
        while len(self._items) > self.max_items:
            self._items.popitem(last=False)
