"""Reindexing: moving a tenant to another embedding space without a moment of broken search.

(The HTTP routes and the CLI call it a model migration: `/ai-config/migration`, `vecpipe
tenant migrate`; in code "migration" is kept for the Alembic schema migrations of db/.)

Saving a config of another space, while the tenant has points in its current one, starts a
reindex instead of switching (see `ReindexRepo` for the states):

- reads (search, get) keep the old config: `active_config` is the loader of the provider
  manager, so the tenant's chain stays the old one until the switch;
- writes go to both spaces, the old one first (`write_configs`);
- `ReindexRunner` re-embeds every record of the tenant from the text kept on its chunk 0,
  with its stored version (so a newer write is never overwritten), then switches in one
  database update, and deletes the tenant's old points once the grace period has passed.

A delete racing the copy: the runner re-reads each page from the old space after writing it
and removes from the new space what is gone from the old one. Since writes reach the old
space before the new one, either the runner sees the delete, or the delete's write to the
new space comes after the runner's copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from vecpipe.core.ai_config import AIConfigService
from vecpipe.core.ingest import Ingestor, Op
from vecpipe.db.reindex_repo import Reindex, ReindexRepo
from vecpipe.errors import ValidationError, VecpipeError
from vecpipe.in_flight import InFlight
from vecpipe.lifecycle import AsyncResource
from vecpipe.models import EmbeddingSpace, Record, StoredRecord
from vecpipe.providers.chain import ProviderChain
from vecpipe.providers.config import AIConfig
from vecpipe.providers.manager import ProviderManager
from vecpipe.store.base import VectorStore
from vecpipe.store.writes import WriteBatch

log = logging.getLogger(__name__)

PAGE_SIZE = 128
STOP_TIMEOUT = 5.0  # seconds a closing runner waits for its page before cancelling it


class ReindexFailed(VecpipeError):
    """Some records could not be copied; the runner tries again on its next round."""

    retryable = True


def space_dict(space: EmbeddingSpace) -> dict[str, Any]:
    data: dict[str, Any] = {"model": space.model, "dimension": space.dimension}
    if space.variant:
        data["variant"] = space.variant
    return data


def space_of(data: dict[str, Any]) -> EmbeddingSpace:
    return EmbeddingSpace(str(data["model"]), int(data["dimension"]), str(data.get("variant", "")))


class Reindexes:
    """Starts and cancels reindexes; tells which config a tenant reads and writes with."""

    def __init__(self, repo: ReindexRepo, configs: AIConfigService, store: VectorStore) -> None:
        self.repo = repo
        self.configs = configs
        self.store = store
        self.started = asyncio.Event()  # set on each start: wakes the runner
        self._copying = InFlight()  # pages the runner is copying, per tenant

    def copying(self, tenant_id: str) -> contextlib.AbstractAsyncContextManager[None]:
        """Held by the runner over one page: its check that the migration still runs, and
        the writes of the page. Counted first, so that `settled` after the row is gone
        waits for a page that checked before."""
        return self._copying.hold(tenant_id)

    async def settled(self, tenant_id: str) -> None:
        """Wait for the page of the tenant's records the runner of this process is copying,
        if any. Called once the tenant's migration row is gone (offboarding), it returns when
        nothing more of the tenant will be written by a migration here: a page that checked
        before the row went lands first; every later page sees it gone."""
        await self._copying.idle(tenant_id)

    async def active_config(self, tenant_id: str) -> AIConfig:
        """The config reads use: the old one while a migration runs, else the stored one."""
        row = await self.repo.get(tenant_id)
        if row is not None and row.state == "running":
            return self.configs.unseal(row.from_config)
        return await self.configs.load(tenant_id)

    async def write_configs(self, tenant_id: str) -> list[AIConfig] | None:
        """The configs a write goes through, old space first; None: the tenant's chain."""
        row = await self.repo.get(tenant_id)
        if row is None or row.state in ("done", "cancelled"):
            return None
        if row.state == "running":
            return [self.configs.unseal(row.from_config), self.configs.unseal(row.to_config)]
        return [await self.configs.load(tenant_id)]  # switched: fresh, not a cached binding

    async def begin(
        self, tenant_id: str, config: AIConfig, target: EmbeddingSpace, current: EmbeddingSpace
    ) -> bool:
        """Start a migration when the target space differs and the tenant has points."""
        row = await self.repo.get(tenant_id)
        if row is not None and row.state == "running":
            raise ValidationError(
                f"tenant {tenant_id} is migrating to another model: wait for it to finish "
                "or cancel it (DELETE .../ai-config/migration) before changing the config"
            )
        if target == current:
            return False
        await self.store.ensure_space(current)
        points = await self.store.count(current, tenant_id)
        if points == 0:
            return False
        if row is not None and row.state == "switched":
            await drop_old_points(self.store, self.repo, row)  # before it is forgotten
        await self.repo.start(
            tenant_id,
            from_config=await self.configs.stored(tenant_id),
            to_config=self.configs.seal(config),
            from_space=space_dict(current),
            to_space=space_dict(target),
            total=points,
        )
        self.started.set()
        return True

    async def cancel(self, tenant_id: str) -> Reindex | None:
        """Back to the old config; the partial new points of the tenant are removed."""
        row = await self.repo.cancel(tenant_id)
        if row is not None:
            await remove_tenant(self.store, space_of(row.to_space), tenant_id)
        return row

    async def status(self, tenant_id: str) -> dict[str, Any] | None:
        row = await self.repo.get(tenant_id)
        return None if row is None else describe(row)


def describe(row: Reindex) -> dict[str, Any]:
    """What callers see of a migration: no configs (they may hold encrypted keys)."""

    def when(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "state": row.state,
        "from_space": row.from_space,
        "to_space": row.to_space,
        "total": row.total,
        "done": min(row.done, row.total),
        "progress": round(min(row.done, row.total) / row.total, 4) if row.total else 1.0,
        "error": row.error,
        "started_at": when(row.started_at),
        "finished_at": when(row.finished_at),
        "delete_old_after": when(row.delete_old_after),
    }


async def remove_tenant(store: VectorStore, space: EmbeddingSpace, tenant_id: str) -> None:
    await store.ensure_space(space)
    await store.delete_tenant(space, tenant_id)
    await store.flush(space)


async def drop_old_points(store: VectorStore, repo: ReindexRepo, row: Reindex) -> None:
    await remove_tenant(store, space_of(row.from_space), row.tenant_id)
    await repo.finish(row.tenant_id)


class ReindexRunner(AsyncResource):
    """An owned task that carries running reindexes through and cleans up after them.

    Runs while it is open (`async with`: lifecycle.AsyncResource).

    Resumable: its state is the database row; a restarted copy starts the tenant's pages
    over, and records already copied are skipped (same text, same point ids).
    """

    def __init__(
        self,
        reindexes: Reindexes,
        providers: ProviderManager,
        ingestor: Ingestor,
        *,
        grace_seconds: float,
        poll_seconds: float = 5.0,
        page_size: int = PAGE_SIZE,
    ) -> None:
        self.reindexes = reindexes
        self.providers = providers
        self.ingestor = ingestor
        self.grace = timedelta(seconds=grace_seconds)
        self.poll_seconds = poll_seconds
        self.page_size = page_size
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    async def _open(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="vecpipe-migrations")

    async def _close(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True  # stop between pages: a copy resumes after a restart
        self.reindexes.started.set()
        await asyncio.wait([task], timeout=STOP_TIMEOUT)
        if not task.done():
            task.cancel()
            await asyncio.wait([task])

    async def run_once(self) -> None:
        """One round: every running migration to its switch, every due cleanup."""
        repo = self.reindexes.repo
        for row in await repo.in_states("running", "switched"):
            try:
                if row.state == "running":
                    await self.migrate(row)
                elif row.delete_old_after is None or row.delete_old_after <= datetime.now(UTC):
                    await drop_old_points(self.reindexes.store, repo, row)
            except VecpipeError as exc:
                log.warning("migration of tenant %s: %s", row.tenant_id, exc.message)
                await repo.progress(row.tenant_id, row.done, exc.message[:500])

    async def migrate(self, row: Reindex) -> None:
        config = self.reindexes.configs.unseal(row.to_config)
        repo = self.reindexes.repo
        async with self.providers.lease_config(config) as chain:
            if await self._copy(row, chain) and await repo.switch(row.tenant_id, self.grace):
                self.providers.forget(row.tenant_id)
                log.info("tenant %s switched to %s", row.tenant_id, chain.space.key)
                return
        now = await repo.get(row.tenant_id)
        if now is not None and now.state == "cancelled" and now.started_at == row.started_at:
            # a page copied while the cancel ran may have landed after its cleanup
            await remove_tenant(self.reindexes.store, space_of(row.to_space), row.tenant_id)

    async def _copy(self, row: Reindex, chain: ProviderChain) -> bool:
        """Copy every page; False when the migration was cancelled or replaced meanwhile."""
        store, repo = self.reindexes.store, self.reindexes.repo
        old = space_of(row.from_space)
        await store.ensure_space(old)
        cursor: str | None = None
        done = 0
        while True:
            async with self.reindexes.copying(row.tenant_id):  # offboarding waits for it
                if self._stopping or not await self._still_running(row):
                    return False
                page, cursor = await store.scroll_records(
                    old, row.tenant_id, cursor, self.page_size
                )
                await self._copy_page(row.tenant_id, chain, old, page)
            done += sum(record.chunk_count for record in page)
            await repo.progress(row.tenant_id, done)
            if cursor is None:
                return await self._still_running(row)

    async def _copy_page(
        self,
        tenant_id: str,
        chain: ProviderChain,
        old: EmbeddingSpace,
        page: Sequence[StoredRecord],
    ) -> None:
        if not page:
            return
        ops = [Op(tenant_id, r.record_id, _record(r)) for r in page]
        outcomes = (await self.ingestor.apply(chain, ops)).outcomes
        failed = [o.error for o in outcomes if o.status == "failed"]
        if failed:
            raise ReindexFailed(f"{len(failed)} records not copied: {failed[0]}")
        ids = [r.record_id for r in page]
        still = await self.reindexes.store.stored_records(old, tenant_id, ids)
        gone = [record_id for record_id in ids if record_id not in still]
        if gone:  # deleted while being copied
            await self.reindexes.store.write(chain.space, WriteBatch.deletes(tenant_id, gone))
            await self.reindexes.store.flush(chain.space)

    async def _still_running(self, row: Reindex) -> bool:
        now = await self.reindexes.repo.get(row.tenant_id)
        return now is not None and now.state == "running" and now.started_at == row.started_at

    async def _loop(self) -> None:
        started = self.reindexes.started
        while not self._stopping:
            try:
                await self.run_once()
            except Exception as exc:  # the database or store is down: try next round
                log.warning("migration round failed: %s", type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(started.wait(), self.poll_seconds)
            started.clear()


def _record(stored: StoredRecord) -> Record:
    expires_at = (
        None if stored.expires_at is None else datetime.fromtimestamp(stored.expires_at, UTC)
    )
    return Record(
        id=stored.record_id,
        text=stored.text,
        metadata=stored.metadata,
        version=stored.version,
        expires_at=expires_at,
    )
