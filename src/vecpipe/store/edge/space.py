"""An open space of the EdgeStore: its live shard, calls in flight, writes and flushes."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import qdrant_edge as qe

from vecpipe.models import EmbeddingSpace

if TYPE_CHECKING:
    from vecpipe.store.edge.rebuild import Mirror


@dataclass(frozen=True)
class IndexStatus:
    """How much of a space is HNSW-indexed; `unindexed` points are searched brute force.

    Edge's `indexed_vectors` counts the vectors of indexed segments, dead ones included: a
    point rewritten or deleted after an optimize stays counted there, and its new version
    lands unindexed while `points` does not change (measured on 0.9: rewrite 1,500 of
    2,000 indexed points and `points - indexed_vectors` stays 0). So `changed_points`, the
    points this store wrote, deleted or updated since the live shard was optimized, tells
    what Edge's counts cannot: how much an optimize would rewrite.
    """

    points: int
    indexed_vectors: int
    segments: int
    changed_points: int = 0

    @property
    def unindexed(self) -> int:
        return max(0, self.points - self.indexed_vectors)


class ShardHandle:
    """One open EdgeShard and the calls using it, so it is closed only once they are done.

    An optimize replaces a space's handle while calls on the old one may still run.
    """

    def __init__(self, shard: qe.EdgeShard) -> None:
        self.shard = shard
        self.users = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def acquire(self) -> qe.EdgeShard:
        self.users += 1
        self._idle.clear()
        return self.shard

    def release(self) -> None:
        self.users -= 1
        if self.users == 0:
            self._idle.set()

    async def wait_idle(self) -> None:
        await self._idle.wait()


@dataclass(eq=False)
class OpenSpace:
    space: EmbeddingSpace
    path: Path  # the live shard's directory (generations.py)
    handle: ShardHandle
    mirror: Mirror | None = None  # while an online optimize runs: its copy's journal
    writes: int = 0  # write calls queued so far (to the write thread, in order)
    flushed: int = 0  # write calls a finished flush (or WAL sync) covers
    full_flush_at: float = field(default_factory=time.monotonic)  # the last Edge flush
    writes_in_flight: int = 0
    # points written, deleted or updated since the live shard was optimized (edge_maintenance)
    changed_points: int = 0
    keyword: bool = False  # holds BM25 vectors (shards made before they existed do not)
    indexed: dict[str, str] = field(default_factory=dict)  # payload path: its index's kind
    flush_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    optimize_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
