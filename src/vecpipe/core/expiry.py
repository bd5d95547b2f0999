"""The expiry sweeper: deletes records whose `expires_at` is past, in bounded batches.

Expired records are invisible at once (store.conditions.visible); the sweeper only frees
their space. It is owned by the resource stack (resources.open_resources) and runs every
`expiry_sweep_seconds` (0: never), space by space and tenant by tenant, `batch` records
per store call, so it never holds the write thread long nor competes with ingest for it.
Expirations are counted by tenant (vecpipe_lifecycle_records{op="expired"}), never named.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from vecpipe import metrics
from vecpipe.lifecycle import AsyncResource
from vecpipe.models import EmbeddingSpace
from vecpipe.store.base import VectorStore
from vecpipe.store.conditions import And, expired, records

log = logging.getLogger(__name__)

BATCH = 500
STOP_TIMEOUT = 10.0


class ExpirySweeper(AsyncResource):
    """A task deleting expired records; `sweep()` runs one full round (tests, benches)."""

    def __init__(self, store: VectorStore, *, every_seconds: float, batch: int = BATCH) -> None:
        self.store = store
        self.every_seconds = every_seconds
        self.batch = batch
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    async def _open(self) -> None:
        if self.every_seconds > 0:
            self._task = asyncio.create_task(self._loop(), name="vecpipe-expiry")

    async def _close(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        self._stop.set()
        await asyncio.wait([task], timeout=STOP_TIMEOUT)
        if not task.done():
            task.cancel()
            await asyncio.wait([task])

    async def sweep(self) -> int:
        """Delete every record expired now; how many."""
        now = time.time()
        total = 0
        for space in await self.store.spaces():
            for tenant_id in await self.store.tenants(space):
                total += await self._sweep_tenant(space, tenant_id, now)
        return total

    async def _sweep_tenant(self, space: EmbeddingSpace, tenant_id: str, now: float) -> int:
        deleted = 0
        while not self._stop.is_set():
            page, _ = await self.store.scroll_records(
                space, tenant_id, None, self.batch, expired(now), include_expired=True
            )
            if not page:
                break
            ids = [r.record_id for r in page]
            n = await self.store.delete_records(space, tenant_id, And(records(ids), expired(now)))
            await self.store.flush(space)
            deleted += n
            if n == 0:
                break  # nothing deletable (a concurrent rewrite): the next round sees
        if deleted:
            metrics.count_lifecycle(tenant_id, "expired", deleted)
            log.info("tenant %s: %d expired records deleted in %s", tenant_id, deleted, space.key)
        return deleted

    async def _loop(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.every_seconds)
            if self._stop.is_set():
                return
            try:
                await self.sweep()
            except Exception as exc:  # the store is down: try next round
                log.warning("expiry sweep failed: %s", type(exc).__name__)
