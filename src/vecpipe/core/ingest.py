"""Applies upserts and deletes for records that share one provider chain (one space).

Per batch: read what is stored, skip unchanged text, update metadata-only changes without a
provider, chunk and embed the rest (one call for the batch), write, drop stale chunks, flush.
Every operation gets exactly one outcome; one bad record fails alone.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from vecpipe.core.embed_cache import EmbeddingCache
from vecpipe.core.hashing import content_hash
from vecpipe.errors import ProviderError, VecpipeError
from vecpipe.models import ChunkPoint, EmbeddingSpace, Record, StoredRecord
from vecpipe.providers.chain import ProviderChain
from vecpipe.store.base import VectorStore

log = logging.getLogger(__name__)

Status = Literal["upserted", "unchanged", "deleted", "failed"]


@dataclass
class Op:
    tenant_id: str
    record_id: str
    record: Record | None = None  # None means delete

    @property
    def key(self) -> tuple[str, str]:
        return (self.tenant_id, self.record_id)


@dataclass
class Outcome:
    status: Status
    error: str | None = None
    retryable: bool = False
    retry_after: float | None = None

    @classmethod
    def failure(cls, exc: VecpipeError) -> Outcome:
        return cls("failed", exc.message, exc.retryable, getattr(exc, "retry_after", None))


class Ingestor:
    def __init__(self, store: VectorStore, cache: EmbeddingCache | None = None) -> None:
        self.store = store
        self.cache = cache
        self.provider_texts = 0  # chunk texts sent to a provider, for tests and metrics

    async def apply(self, chain: ProviderChain, ops: Sequence[Op]) -> list[Outcome]:
        """One outcome per op, in order. Later ops on the same record supersede earlier ones."""
        last = {op.key: i for i, op in enumerate(ops)}
        effective = [op for i, op in enumerate(ops) if last[op.key] == i]
        try:
            by_key = await self._apply_effective(chain, effective)
        except VecpipeError as exc:
            log.warning("batch of %d failed: %s", len(ops), exc.message)
            return [Outcome.failure(exc) for _ in ops]
        outcomes = []
        for i, op in enumerate(ops):
            outcome = by_key[op.key]
            if last[op.key] != i and outcome.status != "failed":
                # superseded within the batch: it was applied, then overwritten
                outcome = Outcome("upserted" if op.record else "deleted")
            outcomes.append(outcome)
        return outcomes

    async def _apply_effective(
        self, chain: ProviderChain, ops: Sequence[Op]
    ) -> dict[tuple[str, str], Outcome]:
        space = chain.space
        await self.store.ensure_space(space)
        stored = await self._stored(space, ops)
        outcomes: dict[tuple[str, str], Outcome] = {}
        to_embed: list[Op] = []
        wrote = False
        for op in ops:
            old = stored.get(op.key)
            if op.record is None:
                outcomes[op.key] = Outcome("deleted" if old else "unchanged")
                continue
            if old and old.content_hash == content_hash(op.record.text):
                if old.metadata == op.record.metadata:
                    outcomes[op.key] = Outcome("unchanged")
                else:
                    await self.store.update_metadata(
                        space, op.tenant_id, op.record_id, op.record.metadata
                    )
                    outcomes[op.key] = Outcome("upserted")
                    wrote = True
                continue
            to_embed.append(op)
        wrote |= await self._delete(space, [op for op in ops if op.record is None], stored)
        if to_embed:
            outcomes.update(await self._embed_and_write(chain, to_embed, stored))
            wrote = True
        if wrote:
            await self.store.flush(space)
        return outcomes

    async def _stored(
        self, space: EmbeddingSpace, ops: Sequence[Op]
    ) -> dict[tuple[str, str], StoredRecord]:
        ids_by_tenant: dict[str, list[str]] = {}
        for op in ops:
            ids_by_tenant.setdefault(op.tenant_id, []).append(op.record_id)
        stored: dict[tuple[str, str], StoredRecord] = {}
        for tenant_id, ids in ids_by_tenant.items():
            found = await self.store.stored_records(space, tenant_id, ids)
            stored.update({(tenant_id, rid): rec for rid, rec in found.items()})
        return stored

    async def _delete(
        self,
        space: EmbeddingSpace,
        deletes: Sequence[Op],
        stored: dict[tuple[str, str], StoredRecord],
    ) -> bool:
        ids_by_tenant: dict[str, list[str]] = {}
        for op in deletes:
            if op.key in stored:
                ids_by_tenant.setdefault(op.tenant_id, []).append(op.record_id)
        for tenant_id, ids in ids_by_tenant.items():
            await self.store.delete_records(space, tenant_id, ids)
        return bool(ids_by_tenant)

    async def _embed_and_write(
        self,
        chain: ProviderChain,
        ops: Sequence[Op],
        stored: dict[tuple[str, str], StoredRecord],
    ) -> dict[tuple[str, str], Outcome]:
        chunks = await chain.chunk([op.record.text for op in ops if op.record])
        embedded = await self._embed_isolating(chain, chunks)
        outcomes: dict[tuple[str, str], Outcome] = {}
        points: list[ChunkPoint] = []
        shrunk: list[tuple[Op, int]] = []
        for op, record_chunks, result in zip(ops, chunks, embedded, strict=True):
            if isinstance(result, Outcome):
                outcomes[op.key] = result
                continue
            points.extend(_points(op, record_chunks, result))
            outcomes[op.key] = Outcome("upserted")
            old = stored.get(op.key)
            if old and old.chunk_count > len(record_chunks):
                shrunk.append((op, len(record_chunks)))
        if points:
            await self.store.upsert_chunks(chain.space, points)
        for op, keep in shrunk:
            await self.store.delete_stale_chunks(chain.space, op.tenant_id, op.record_id, keep)
        return outcomes

    async def _embed_isolating(
        self, chain: ProviderChain, chunks: list[list[str]]
    ) -> list[list[list[float]] | Outcome]:
        """Vectors per record; when the batch fails for good, retry record by record."""
        try:
            flat = await self._embed(chain, [c for record in chunks for c in record])
        except ProviderError as exc:
            if exc.retryable or len(chunks) == 1:
                return [Outcome.failure(exc) for _ in chunks]
            return [await self._embed_one(chain, record) for record in chunks]
        result: list[list[list[float]] | Outcome] = []
        start = 0
        for record in chunks:
            result.append(flat[start : start + len(record)])
            start += len(record)
        return result

    async def _embed_one(
        self, chain: ProviderChain, chunks: list[str]
    ) -> list[list[float]] | Outcome:
        try:
            return await self._embed(chain, chunks)
        except ProviderError as exc:
            return Outcome.failure(exc)

    async def _embed(self, chain: ProviderChain, texts: list[str]) -> list[list[float]]:
        async def call_provider(batch: Sequence[str]) -> list[list[float]]:
            self.provider_texts += len(batch)
            return await chain.embed(batch)

        if self.cache is None:
            return await call_provider(texts)
        return await self.cache.embed(chain.space, texts, call_provider)


def _points(op: Op, chunks: list[str], vectors: list[list[float]]) -> list[ChunkPoint]:
    assert op.record is not None
    digest = content_hash(op.record.text)
    return [
        ChunkPoint(
            tenant_id=op.tenant_id,
            record_id=op.record_id,
            chunk_index=i,
            chunk_count=len(chunks),
            chunk_text=chunk,
            record_text=op.record.text,
            content_hash=digest,
            metadata=op.record.metadata,
            vector=vector,
        )
        for i, (chunk, vector) in enumerate(zip(chunks, vectors, strict=True))
    ]
