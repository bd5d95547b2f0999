"""Applies upserts and deletes for records that share one provider chain (one space).

Per batch: read what is stored, skip unchanged text, update metadata-only changes without a
provider, chunk and embed the rest (one call for the batch), then one `store.write` (the
store settles races between writers of a record: store/versioned.py), and flush unless the
caller flushes later (`flush=False`: the worker, so that its next batch embeds while this
one is flushed). Every operation gets exactly one outcome; one bad record fails alone.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from vecpipe import metrics
from vecpipe.core.embed_cache import EmbeddingCache
from vecpipe.core.unconfirmed import DELETED, Unconfirmed
from vecpipe.errors import ProviderError, VecpipeError
from vecpipe.models import ChunkPoint, EmbeddingSpace, Record, StoredRecord
from vecpipe.providers.chain import ProviderChain, track_served
from vecpipe.store.base import VectorStore
from vecpipe.store.writes import (
    DeleteRecord,
    RecordKey,
    RecordWrite,
    UpdateMetadata,
    UpsertRecord,
    WriteBatch,
    WriteResult,
)
from vecpipe.text.hashing import content_hash

log = logging.getLogger(__name__)

Status = Literal["upserted", "unchanged", "deleted", "not_found", "failed"]


@dataclass
class Op:
    tenant_id: str
    record_id: str
    record: Record | None = None  # None means delete

    @property
    def key(self) -> tuple[str, str]:
        return (self.tenant_id, self.record_id)

    @property
    def version(self) -> int:
        return (self.record.version or 0) if self.record else 0


@dataclass
class Outcome:
    status: Status
    error: str | None = None
    retryable: bool = False
    retry_after: float | None = None
    # who embedded the batch, else the chain's primary: a label for metrics and logs
    provider: str | None = dataclasses.field(default=None, compare=False)
    # the error's code (errors.py), e.g. StorageFull's: the worker gives such work back
    code: str | None = dataclasses.field(default=None, compare=False)

    @classmethod
    def failure(cls, exc: VecpipeError) -> Outcome:
        retry_after = getattr(exc, "retry_after", None)
        return cls("failed", exc.message, exc.retryable, retry_after, code=exc.code)


@dataclass
class Applied:
    """What `Ingestor.apply` did: one outcome per op, and the spaces it wrote that are not
    durable yet (empty unless `flush=False`): flush them before acknowledging anything."""

    outcomes: list[Outcome]
    unflushed: set[EmbeddingSpace] = dataclasses.field(default_factory=set)


class Ingestor:
    """Writes batches of ops to the store."""

    def __init__(self, store: VectorStore, cache: EmbeddingCache | None = None) -> None:
        self.store = metrics.timed_store(store)  # store_seconds{op} for every call
        self.cache = cache
        self.provider_texts = 0  # chunk texts sent to a provider, for tests and metrics
        self._unconfirmed = Unconfirmed()  # writes no flush has confirmed yet

    async def apply(
        self, chain: ProviderChain, ops: Sequence[Op], *, flush: bool = True
    ) -> Applied:
        """One outcome per op, in order. Later ops on the same record supersede earlier ones.

        `flush=False`: return before the writes are durable, naming the space in `unflushed`;
        the caller must `flush` it before it acknowledges anything."""
        with track_served() as served:
            outcomes, unflushed = await self._apply(chain, ops, flush)
        provider = _provider_of(served, chain.primary.name)
        _count_outcomes(ops, outcomes, provider)
        outcomes = [dataclasses.replace(outcome, provider=provider) for outcome in outcomes]
        return Applied(outcomes, unflushed)

    async def flush(self, spaces: Iterable[EmbeddingSpace]) -> None:
        """Make the writes to these spaces durable (see `apply`)."""
        for space in spaces:
            with self._unconfirmed.flushing(space):
                await self.store.flush(space)

    async def _apply(
        self, chain: ProviderChain, ops: Sequence[Op], flush: bool
    ) -> tuple[list[Outcome], set[EmbeddingSpace]]:
        winner = _winners(ops)
        effective = [op for i, op in enumerate(ops) if winner[op.key] == i]
        try:
            by_key, needs_flush = await self._apply_effective(chain, effective)
            if needs_flush and flush:
                await self.flush([chain.space])
        except VecpipeError as exc:
            log.warning("batch of %d failed: %s", len(ops), exc.message)
            return [Outcome.failure(exc) for _ in ops], set()
        outcomes = []
        for i, op in enumerate(ops):
            outcome = by_key[op.key]
            if winner[op.key] != i and outcome.status != "failed":
                # superseded within the batch: it was applied, then overwritten
                outcome = Outcome("upserted" if op.record else "deleted")
            outcomes.append(outcome)
        return outcomes, {chain.space} if needs_flush and not flush else set()

    async def _apply_effective(
        self, chain: ProviderChain, ops: Sequence[Op]
    ) -> tuple[dict[RecordKey, Outcome], bool]:
        """Outcomes by record, and whether the space needs a flush."""
        try:
            return await self._write(chain, ops)
        except BaseException:
            self._unconfirmed.failed(chain.space)  # it may have written part of the batch
            raise

    async def _write(
        self, chain: ProviderChain, ops: Sequence[Op]
    ) -> tuple[dict[RecordKey, Outcome], bool]:
        space = chain.space
        await self.store.ensure_space(space)
        stored = await self._stored(space, ops)
        outcomes: dict[RecordKey, Outcome] = {}
        writes: list[RecordWrite] = []
        to_embed: list[Op] = []
        confirm = False  # an unconfirmed write met again: flushed again, though nothing is new
        for op in ops:
            old = stored.get(op.key)
            unconfirmed = self._unconfirmed.version(space, op.key)
            if op.record is None:
                gone = old is not None or unconfirmed == DELETED  # deleted, or not confirmed
                outcomes[op.key] = Outcome("deleted" if gone else "not_found")
                if old is not None:
                    writes.append(DeleteRecord(op.tenant_id, op.record_id))
                confirm |= old is None and gone
            elif old and old.version > op.version:
                outcomes[op.key] = Outcome("unchanged")  # a newer version is stored already
            elif (
                old
                and old.content_hash == content_hash(op.record.text)
                and old.expires_at == op.record.expiry()  # a new expiry rewrites the points
            ):
                if old.metadata == op.record.metadata:
                    outcomes[op.key] = _as_stored(op, old, unconfirmed)
                    confirm |= outcomes[op.key].status == "upserted"
                else:
                    meta = op.record.metadata
                    writes.append(UpdateMetadata(op.tenant_id, op.record_id, meta, op.version))
            else:
                to_embed.append(op)
        if to_embed:
            upserts, failures = await self._embed_records(chain, to_embed)
            outcomes.update(failures)
            writes += upserts
        if writes:
            outcomes.update(await self._store_writes(space, writes))
        return outcomes, bool(writes) or confirm or self._unconfirmed.in_doubt(space)

    async def _store_writes(
        self, space: EmbeddingSpace, writes: Sequence[RecordWrite]
    ) -> dict[RecordKey, Outcome]:
        """One store write; outcomes of its upserts and updates (deletes have theirs)."""
        for write in writes:  # before the write is made: it may land even if the call fails
            version = DELETED if isinstance(write, DeleteRecord) else write.version
            self._unconfirmed.wrote(space, write.key, version)
        result: WriteResult = await self.store.write(space, WriteBatch(writes))
        return {
            write.key: Outcome("unchanged" if result[write.key] == "stale" else "upserted")
            for write in writes
            if not isinstance(write, DeleteRecord)
        }

    async def _stored(
        self, space: EmbeddingSpace, ops: Sequence[Op]
    ) -> dict[RecordKey, StoredRecord]:
        ids_by_tenant: dict[str, list[str]] = {}
        for op in ops:
            ids_by_tenant.setdefault(op.tenant_id, []).append(op.record_id)
        stored: dict[RecordKey, StoredRecord] = {}
        for tenant_id, ids in ids_by_tenant.items():
            found = await self.store.stored_records(space, tenant_id, ids)
            stored.update({(tenant_id, rid): rec for rid, rec in found.items()})
        return stored

    async def _embed_records(
        self, chain: ProviderChain, ops: Sequence[Op]
    ) -> tuple[list[UpsertRecord], dict[RecordKey, Outcome]]:
        """An upsert per record embedded; an outcome per record that failed."""
        records = [op.record for op in ops if op.record]
        chunks = await chain.chunk([record.text for record in records])
        fmt = chain.text_format  # a title and a prefix are embedded, never stored
        inputs = [
            [fmt.document(chunk, record.metadata) for chunk in record_chunks]
            for record, record_chunks in zip(records, chunks, strict=True)
        ]
        embedded = await self._embed_isolating(chain, inputs)
        failures: dict[RecordKey, Outcome] = {}
        upserts: list[UpsertRecord] = []
        for op, record_chunks, result in zip(ops, chunks, embedded, strict=True):
            if isinstance(result, Outcome):
                failures[op.key] = result
            else:
                upserts.append(UpsertRecord(_points(op, record_chunks, result)))
        return upserts, failures

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


def _as_stored(op: Op, stored: StoredRecord, unconfirmed: int | None) -> Outcome:
    """The outcome of an upsert that finds its text and metadata stored already: unchanged,
    unless no one was ever told that what is stored was written.

    - Stored by a write no flush has confirmed (`unconfirmed` is the version it stored: its
      flush failed, and this op is the retry or the redelivery): upserted.
    - Stored under this op's own version: this very write, which an earlier delivery made
      and never settled (the worker died before its job was counted; in memory nothing of
      it is left): upserted. A version tells writes apart: a job's is given when the job
      is submitted, a request's when it is accepted. A message published without one gets
      a new one on each delivery: after a restart, its redelivery counts unchanged.

    A job counts each record once, however many deliveries report it.
    """
    own_version = op.record.version if op.record is not None else None
    if stored.version in (unconfirmed, own_version):
        return Outcome("upserted")
    return Outcome("unchanged")


def _provider_of(served: Sequence[str], primary: str) -> str:
    """The provider that embedded most of a batch (after any fallback), else the primary."""
    return collections.Counter(served).most_common(1)[0][0] if served else primary


def _count_outcomes(ops: Sequence[Op], outcomes: Sequence[Outcome], provider: str) -> None:
    pairs = zip(ops, outcomes, strict=True)
    tally = collections.Counter((op.tenant_id, outcome.status) for op, outcome in pairs)
    for (tenant_id, status), n in tally.items():
        metrics.count_records(tenant_id, provider, status, n)


def _winners(ops: Sequence[Op]) -> dict[tuple[str, str], int]:
    """Per record, the index of the op that decides its state in a batch: the last one if
    it is a delete, else the highest-version upsert since the last delete."""
    winner: dict[tuple[str, str], int] = {}
    for i, op in enumerate(ops):
        current = winner.get(op.key)
        if current is None or op.record is None or ops[current].record is None:
            winner[op.key] = i  # first sight, a delete, or an upsert after a delete
        elif op.version >= ops[current].version:
            winner[op.key] = i
    return winner


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
            version=op.version,
            expires_at=op.record.expiry(),
        )
        for i, (chunk, vector) in enumerate(zip(chunks, vectors, strict=True))
    ]
