"""Applies upserts and deletes for records that share one provider chain (one space).

Per batch: read what is stored, skip unchanged text, update metadata-only changes without a
provider, chunk and embed the rest (one call for the batch), write, drop stale chunks, flush.
Every operation gets exactly one outcome; one bad record fails alone.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import dataclasses
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from vecpipe import metrics
from vecpipe.core.embed_cache import EmbeddingCache
from vecpipe.core.write_claims import DELETED, Claim, Unconfirmed, WriteClaims
from vecpipe.errors import ProviderError, VecpipeError
from vecpipe.models import ChunkPoint, EmbeddingSpace, Record, StoredRecord
from vecpipe.providers.chain import ProviderChain, track_served
from vecpipe.store.base import VectorStore
from vecpipe.text.hashing import content_hash

log = logging.getLogger(__name__)

Status = Literal["upserted", "unchanged", "deleted", "failed"]

_deferred_flushes: contextvars.ContextVar[set[EmbeddingSpace] | None] = contextvars.ContextVar(
    "vecpipe_deferred_flushes", default=None
)


@contextlib.contextmanager
def flushes_deferred() -> Iterator[set[EmbeddingSpace]]:
    """In this context (this task), `Ingestor.apply` returns before its writes are durable:
    it adds the spaces it wrote to the set yielded, and the caller must `Ingestor.flush`
    them before it acknowledges anything (the worker, so that its next batch embeds while
    this one is flushed)."""
    spaces: set[EmbeddingSpace] = set()
    token = _deferred_flushes.set(spaces)
    try:
        yield spaces
    finally:
        _deferred_flushes.reset(token)


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


class Ingestor:
    """Writes batches of ops to the store.

    `sole_writer`: this ingestor makes every write to the store's points (true of an Edge
    store: one process opens it, and it has one ingestor). A first write of a record that no
    other batch wrote meanwhile then skips the older-version cleanup (see `_settle`).
    """

    def __init__(
        self, store: VectorStore, cache: EmbeddingCache | None = None, *, sole_writer: bool = False
    ) -> None:
        self.store = metrics.timed_store(store)  # store_seconds{op} for every call
        self.cache = cache
        self.sole_writer = sole_writer
        self.provider_texts = 0  # chunk texts sent to a provider, for tests and metrics
        self._writes = WriteClaims()
        self._unconfirmed = Unconfirmed()  # writes no flush has confirmed yet

    async def apply(self, chain: ProviderChain, ops: Sequence[Op]) -> list[Outcome]:
        """One outcome per op, in order. Later ops on the same record supersede earlier ones."""
        with track_served() as served:
            outcomes = await self._apply(chain, ops)
        provider = _provider_of(served, chain.primary.name)
        _count_outcomes(ops, outcomes, provider)
        return [dataclasses.replace(outcome, provider=provider) for outcome in outcomes]

    async def _apply(self, chain: ProviderChain, ops: Sequence[Op]) -> list[Outcome]:
        winner = _winners(ops)
        effective = [op for i, op in enumerate(ops) if winner[op.key] == i]
        try:
            by_key = await self._apply_effective(chain, effective)
        except VecpipeError as exc:
            log.warning("batch of %d failed: %s", len(ops), exc.message)
            return [Outcome.failure(exc) for _ in ops]
        outcomes = []
        for i, op in enumerate(ops):
            outcome = by_key[op.key]
            if winner[op.key] != i and outcome.status != "failed":
                # superseded within the batch: it was applied, then overwritten
                outcome = Outcome("upserted" if op.record else "deleted")
            outcomes.append(outcome)
        return outcomes

    async def flush(self, spaces: Iterable[EmbeddingSpace]) -> None:
        """Make the writes to these spaces durable (see `flushes_deferred`)."""
        for space in spaces:
            with self._unconfirmed.flushing(space):
                await self.store.flush(space)

    async def _apply_effective(
        self, chain: ProviderChain, ops: Sequence[Op]
    ) -> dict[tuple[str, str], Outcome]:
        with self._writes.claim({op.key for op in ops}) as claim:
            try:
                return await self._apply_claimed(chain, ops, claim)
            except BaseException:
                self._unconfirmed.failed(chain.space)  # it may have written part of the batch
                raise

    async def _apply_claimed(
        self, chain: ProviderChain, ops: Sequence[Op], claim: Claim
    ) -> dict[tuple[str, str], Outcome]:
        space = chain.space
        await self.store.ensure_space(space)
        stored = await self._stored(space, ops)
        outcomes: dict[tuple[str, str], Outcome] = {}
        to_embed: list[Op] = []
        wrote = False
        for op in ops:
            old = stored.get(op.key)
            unconfirmed = self._unconfirmed.version(space, op.key)
            if op.record is None:
                gone = old is not None or unconfirmed == DELETED  # deleted, or not confirmed
                outcomes[op.key] = Outcome("deleted" if gone else "unchanged")
                wrote |= old is None and gone  # flushed again
                continue
            if old and old.version > op.version:
                outcomes[op.key] = Outcome("unchanged")  # a newer version is stored already
                continue
            if old and old.content_hash == content_hash(op.record.text):
                if old.metadata == op.record.metadata:
                    outcomes[op.key] = _as_stored(op, old, unconfirmed)
                    wrote |= outcomes[op.key].status == "upserted"  # flushed again
                else:
                    self._unconfirmed.wrote(space, op.key, op.version)
                    await self.store.update_metadata(
                        space, op.tenant_id, op.record_id, op.record.metadata, op.version
                    )
                    outcomes[op.key] = Outcome("upserted")
                    wrote = True
                continue
            to_embed.append(op)
        wrote |= await self._delete(space, [op for op in ops if op.record is None], stored)
        if to_embed:
            outcomes.update(await self._embed_and_write(chain, to_embed, stored, claim))
            wrote = True
        if wrote or self._unconfirmed.in_doubt(space):
            deferred = _deferred_flushes.get()
            if deferred is None:
                await self.flush([space])
            else:
                deferred.add(space)
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
            for record_id in ids:
                self._unconfirmed.wrote(space, (tenant_id, record_id), DELETED)
            await self.store.delete_records(space, tenant_id, ids)
        return bool(ids_by_tenant)

    async def _embed_and_write(
        self,
        chain: ProviderChain,
        ops: Sequence[Op],
        stored: dict[tuple[str, str], StoredRecord],
        claim: Claim,
    ) -> dict[tuple[str, str], Outcome]:
        chunks = await chain.chunk([op.record.text for op in ops if op.record])
        embedded = await self._embed_isolating(chain, chunks)
        outcomes: dict[tuple[str, str], Outcome] = {}
        points: list[ChunkPoint] = []
        written: list[tuple[Op, int]] = []
        for op, record_chunks, result in zip(ops, chunks, embedded, strict=True):
            if isinstance(result, Outcome):
                outcomes[op.key] = result
                continue
            points.extend(_points(op, record_chunks, result))
            written.append((op, len(record_chunks)))
        if points:
            for op, _ in written:
                self._unconfirmed.wrote(chain.space, op.key, op.version)
            # Chunk 0 last: it is what reads take for the record, so a write cut short
            # between two store calls never leaves a chunk 0 whose other chunks are missing
            # (its redelivery would find the record stored and write nothing).
            points.sort(key=lambda point: point.chunk_index == 0)
            await self.store.upsert_chunks(chain.space, points)
        outcomes.update(await self._settle(chain.space, written, stored, claim))
        return outcomes

    async def _settle(
        self,
        space: EmbeddingSpace,
        written: Sequence[tuple[Op, int]],
        before: dict[tuple[str, str], StoredRecord],
        claim: Claim,
    ) -> dict[tuple[str, str], Outcome]:
        """After a conditional write: drop what lost to a newer version, then stale chunks.

        Chunk 0 is the arbiter: whoever's version it holds owns the record. A write that
        lost a race removes the points it wrote; the winner removes every point of the
        record older than its own version (chunks past its count, leftovers of a loser).

        A first write (nothing stored before it) may have to clean up too: a concurrent
        older writer that also found nothing may have written and re-read its chunk 0
        before this write replaced it; that writer believes it won and leaves its chunks
        past this write's count (tests/core/test_ingest_races.py). Only a sole writer can
        rule that out: no other batch of its own wrote the record meanwhile. Such a record
        (uncontended) needs no re-read either: nothing but this write changed it since it
        was read, and the conditional write replaced what was read.
        """
        if not written:
            return {}
        alone = {op.key for op, _ in written if self._alone(op, claim)}
        now = await self._stored(space, [op for op, _ in written if op.key not in alone])
        outcomes: dict[tuple[str, str], Outcome] = {}
        won: dict[str, dict[str, int]] = {}
        for op, chunk_count in written:
            current = now.get(op.key)
            if op.key not in alone and current is not None and current.version != op.version:
                await self.store.delete_record_version(
                    space, op.tenant_id, op.record_id, op.version
                )
                outcomes[op.key] = Outcome("unchanged")  # superseded by a newer version
                continue
            outcomes[op.key] = Outcome("upserted")
            claim.settled.add(op.key)
            old = before.get(op.key)
            if old is None and op.key in alone:
                continue  # a first write, alone: nothing older can exist
            won.setdefault(op.tenant_id, {})[op.record_id] = op.version
            if old and old.version == op.version and old.chunk_count > chunk_count:
                # same version rewritten shorter: older-version cleanup would not catch it
                await self.store.delete_stale_chunks(
                    space, op.tenant_id, op.record_id, chunk_count, op.version
                )
        for tenant_id, versions in won.items():
            await self.store.delete_older_versions(space, tenant_id, versions)
        return outcomes

    def _alone(self, op: Op, claim: Claim) -> bool:
        """Whether no other write of this record can have happened since it was read."""
        return self.sole_writer and op.key not in claim.contended

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
        )
        for i, (chunk, vector) in enumerate(zip(chunks, vectors, strict=True))
    ]
