"""SyncPipeline: the library API for synchronous code, on ONE background event loop.

The pattern this replaces calls `asyncio.run()` per call while an async HTTP client lives
across loops, which leaks sockets and logs "Event loop is closed". Here one loop (anyio's
blocking portal, in a daemon thread) lives as long as the SyncPipeline; every resource is
opened and closed on it. Safe to call from several threads. Close with `close()` or a
`with` block; if the caller forgets, it is closed at interpreter exit.

    with SyncPipeline() as pipeline:
        vectors = pipeline.embed(["hello"], tenant_id="acme")
"""

from __future__ import annotations

import functools
import threading
import weakref
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any

from anyio.from_thread import BlockingPortal, start_blocking_portal

from vecpipe.core.pipeline import Pipeline
from vecpipe.core.records import Page
from vecpipe.errors import ClosedError
from vecpipe.models import BatchResult, EmbeddingSpace, Record, SearchHit
from vecpipe.providers.config import AIConfig
from vecpipe.resources import open_pipeline
from vecpipe.settings import Settings


class _Loop:
    """The portal and the pipeline context, closable from a finalizer without the owner."""

    def __init__(self, settings: Settings) -> None:
        self.lock = threading.Lock()
        self.portal_cm: AbstractContextManager[BlockingPortal] = start_blocking_portal("asyncio")
        self.portal = self.portal_cm.__enter__()
        try:
            self.pipeline_cm = self.portal.wrap_async_context_manager(open_pipeline(settings))
            self.pipeline: Pipeline = self.pipeline_cm.__enter__()
        except BaseException:
            self.portal_cm.__exit__(None, None, None)
            raise
        self.closed = False

    def close(self) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
        try:
            self.pipeline_cm.__exit__(None, None, None)
        finally:
            self.portal_cm.__exit__(None, None, None)


class SyncPipeline:
    def __init__(self, settings: Settings | None = None) -> None:
        self._loop = _Loop(settings or Settings())
        self._finalizer = weakref.finalize(self, self._loop.close)

    def __enter__(self) -> SyncPipeline:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._finalizer()

    @property
    def closed(self) -> bool:
        return self._loop.closed

    def _call(self, func: Any, *args: Any) -> Any:
        if self._loop.closed:
            raise ClosedError("SyncPipeline is closed")
        return self._loop.portal.call(func, *args)

    def set_ai_config(self, tenant_id: str, config: AIConfig | Mapping[str, Any]) -> EmbeddingSpace:
        result: EmbeddingSpace = self._call(self._loop.pipeline.set_ai_config, tenant_id, config)
        return result

    def ingest(self, tenant_id: str, records: Sequence[Record | Mapping[str, Any]]) -> BatchResult:
        parsed = [r if isinstance(r, Record) else Record.model_validate(r) for r in records]
        result: BatchResult = self._call(self._loop.pipeline.ingest, tenant_id, parsed)
        return result

    def delete(self, tenant_id: str, record_ids: Sequence[str]) -> BatchResult:
        result: BatchResult = self._call(self._loop.pipeline.delete, tenant_id, record_ids)
        return result

    def search(
        self,
        tenant_id: str,
        query: str | None = None,
        limit: int = 10,
        filter: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> list[SearchHit]:
        """`Pipeline.search`: options offset, vector, like, score_threshold, mode, fusion_k,
        diversity (docs/search.md)."""
        search = functools.partial(self._loop.pipeline.search, **options)
        hits: list[SearchHit] = self._call(search, tenant_id, query, limit, filter)
        return hits

    def facets(
        self,
        tenant_id: str,
        keys: Sequence[str],
        filter: Mapping[str, Any] | None = None,
        top: int = 10,
    ) -> dict[str, list[tuple[str, int]]]:
        """Per metadata key, the tenant's records per value under `filter`, most first."""
        counts: dict[str, list[tuple[str, int]]] = self._call(
            self._loop.pipeline.facets, tenant_id, keys, filter, top
        )
        return counts

    def embed(self, texts: Sequence[str], tenant_id: str | None = None) -> list[list[float]]:
        vectors: list[list[float]] = self._call(self._loop.pipeline.embed, texts, tenant_id)
        return vectors

    def list_records(
        self,
        tenant_id: str,
        limit: int = 100,
        cursor: str | None = None,
        filter: Mapping[str, Any] | None = None,
    ) -> Page:
        """One page of the tenant's records; pass `page.next_cursor` for the next."""
        call = functools.partial(
            self._loop.pipeline.list_records, tenant_id, limit=limit, cursor=cursor, filter=filter
        )
        page: Page = self._call(call)
        return page

    def count_records(self, tenant_id: str, filter: Mapping[str, Any] | None = None) -> int:
        count: int = self._call(self._loop.pipeline.count_records, tenant_id, filter)
        return count

    def delete_records(
        self, tenant_id: str, filter: Mapping[str, Any], *, dry_run: bool = False
    ) -> int:
        call = functools.partial(
            self._loop.pipeline.delete_records, tenant_id, filter, dry_run=dry_run
        )
        deleted: int = self._call(call)
        return deleted

    def sync_records(
        self,
        tenant_id: str,
        records: Sequence[Record | Mapping[str, Any]],
        *,
        scope: Mapping[str, Any] | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Make the tenant's records (under `scope`) equal to `records` (core/full_sync.py);
        the drift report."""
        from vecpipe.core.full_sync import sync_records

        parsed = [r if isinstance(r, Record) else Record.model_validate(r) for r in records]
        call = functools.partial(
            sync_records, self._loop.pipeline, tenant_id, parsed, scope=scope, dry_run=dry_run
        )
        report: dict[str, Any] = self._call(call)
        return report
