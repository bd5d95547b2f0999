"""The EdgeStore's maintenance task: optimize a space once enough of it is unindexed.

Edge never indexes by itself: new points land in plain segments searched brute force until an
optimize builds their HNSW index, and a point rewritten or deleted stays in its indexed
segment, dead, until an optimize rewrites that segment. Every `poll_seconds` the task looks
at each open space and optimizes it (online, rebuild.py: searches and writes go on)
when `after_points` points need it, and no write of it is in flight. Points that need it:
those Edge counts unindexed beyond what the last optimize left (small segments stay
unindexed by design), or, when more, those written, deleted or updated since the last
optimize, which Edge's counts do not show (space.IndexStatus). A space busy at
`max_deferrals` polls in a row is optimized anyway: an optimize slows writes down, it does
not stop them. One space at a time.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from vecpipe.models import EmbeddingSpace
from vecpipe.store.edge.optimize import OptimizeReport

log = logging.getLogger(__name__)

MAX_DEFERRALS = 3


class IndexCounts(Protocol):
    @property
    def unindexed(self) -> int: ...

    @property
    def changed_points(self) -> int: ...


class MaintainedStore(Protocol):
    def open_spaces(self) -> list[EmbeddingSpace]: ...

    def busy(self, space: EmbeddingSpace) -> bool: ...

    async def index_status(self, space: EmbeddingSpace) -> IndexCounts: ...

    async def optimize(self, space: EmbeddingSpace) -> OptimizeReport: ...


class EdgeMaintenance:
    def __init__(self, store: MaintainedStore, after_points: int, poll_seconds: float) -> None:
        self._store = store
        self._after_points = after_points
        self._poll_seconds = poll_seconds
        self._left_unindexed: dict[str, int] = {}
        self._deferrals: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def start(self) -> None:
        """Start the task on the running loop (once; not after `aclose`)."""
        if self._task is None and not self._closed:
            self._task = asyncio.create_task(self._run(), name="vecpipe-edge-maintenance")

    async def aclose(self) -> None:
        """Stop the task; an optimize in progress is abandoned (its copy discarded)."""
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])

    async def run_once(self) -> list[EmbeddingSpace]:
        """One round: optimize the spaces that are due and quiet; returns those optimized."""
        optimized = []
        for space in self._store.open_spaces():
            if await self._due(space) and self._quiet(space):
                report = await self._store.optimize(space)
                self._left_unindexed[space.key] = max(0, report.points - report.indexed_vectors)
                log.info(
                    "edge space %s optimized in %.1f s: %d points, %d indexed, %d segments",
                    space.key,
                    report.seconds,
                    report.points,
                    report.indexed_vectors,
                    report.segments,
                )
                optimized.append(space)
        return optimized

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._poll_seconds)
            try:
                await self.run_once()
            except Exception as exc:  # the next round retries; a failed optimize changed nothing
                log.warning("edge maintenance round failed: %s", exc)

    async def _due(self, space: EmbeddingSpace) -> bool:
        status = await self._store.index_status(space)
        unindexed = status.unindexed - self._left_unindexed.get(space.key, 0)
        return max(unindexed, status.changed_points) >= self._after_points

    def _quiet(self, space: EmbeddingSpace) -> bool:
        deferrals = self._deferrals.get(space.key, 0)
        if self._store.busy(space) and deferrals < MAX_DEFERRALS:
            self._deferrals[space.key] = deferrals + 1
            return False
        self._deferrals[space.key] = 0
        return True
