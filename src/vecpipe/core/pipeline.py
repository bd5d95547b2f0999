"""The library API: what the HTTP API, the worker, the CLI and the sync facade all call.

async with vecpipe.open_pipeline(settings) as pipeline:     # resources.open_pipeline
    await pipeline.ingest("acme", [Record(id="1", text="hello")])
    hits = await pipeline.search("acme", "greeting")
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from vecpipe.core import records as records_ops
from vecpipe.core import search as search_ops
from vecpipe.core.ai_config import AIConfigService
from vecpipe.core.ingest import Applied, Ingestor, Op, Outcome
from vecpipe.errors import (
    ContextLengthExceeded,
    LimitExceeded,
    NotFound,
    StorageFull,
    ValidationError,
)
from vecpipe.models import (
    BatchResult,
    DeleteMessage,
    EmbeddingSpace,
    Record,
    StoredRecord,
    UpsertMessage,
)
from vecpipe.providers.base import Purpose
from vecpipe.providers.chain import ProviderChain
from vecpipe.providers.config import AIConfig
from vecpipe.providers.manager import ProviderManager
from vecpipe.queue.base import MessageQueue
from vecpipe.record_checks import check_record, check_record_id, check_tenant_id
from vecpipe.settings import Limits, Settings
from vecpipe.store.base import VectorStore
from vecpipe.store.guard import check_writable

if TYPE_CHECKING:
    from vecpipe.core.reindex import Reindexes
    from vecpipe.db.jobs import JobRepo, JobStatus

OUTCOME_TO_JOB = {
    "upserted": "done",
    "deleted": "done",
    "unchanged": "unchanged",
    "not_found": "not_found",
}


class Pipeline:
    def __init__(
        self,
        *,
        settings: Settings,
        store: VectorStore,
        providers: ProviderManager,
        configs: AIConfigService,
        jobs: JobRepo,
        queue: MessageQueue,
        ingestor: Ingestor,
        reindexes: Reindexes | None = None,
    ) -> None:
        self.reindexes = reindexes
        self.settings = settings
        self.store = store
        self.providers = providers
        self.configs = configs
        self.jobs = jobs
        self.queue = queue
        self.ingestor = ingestor
        self.indexes = search_ops.IndexLearner(store)

    # ------------------------------------------------------------------ AI config

    async def set_ai_config(
        self, tenant_id: str, config: AIConfig | Mapping[str, Any]
    ) -> EmbeddingSpace:
        """Validate (opening and probing every provider of the chain), then store; when the
        space changes and the tenant has points, start a migration to it instead."""
        parsed = config if isinstance(config, AIConfig) else AIConfig.model_validate(config)
        self.configs.check(parsed)
        space = await self.providers.validate(parsed)
        if self.reindexes is not None:
            self.providers.forget(tenant_id)  # the current space, freshly loaded
            current_space = await self._current_space(tenant_id)
            if await self.reindexes.begin(tenant_id, parsed, space, current_space):
                self.providers.forget(tenant_id)  # a migration started: see core/reindex.py
                return space
        await self.configs.save(tenant_id, parsed)
        self.providers.forget(tenant_id)
        return space

    async def cancel_migration(self, tenant_id: str) -> None:
        """Stop the tenant's migration: the old config stays, the partial new space goes."""
        if self.reindexes is None or await self.reindexes.cancel(tenant_id) is None:
            raise NotFound(f"tenant {tenant_id} has no migration in progress")
        self.providers.forget(tenant_id)

    async def migration_status(self, tenant_id: str) -> dict[str, Any] | None:
        """The tenant's latest migration (state, spaces, progress), None when it had none."""
        return None if self.reindexes is None else await self.reindexes.status(tenant_id)

    async def delete_ai_config(self, tenant_id: str) -> bool:
        if self.reindexes is not None:
            await self.reindexes.cancel(tenant_id)  # else its switch would store the target
        deleted = await self.configs.delete(tenant_id)
        self.providers.forget(tenant_id)
        return deleted

    async def _current_space(self, tenant_id: str) -> EmbeddingSpace:
        """The tenant's space now; from its config's files when they tell (a tenant on the
        default local model need not load it to learn that its config changes)."""
        assert self.reindexes is not None
        config = await self.reindexes.active_config(tenant_id)
        return await self.providers.declared_space(config) or await self.space_of(tenant_id)

    async def space_of(self, tenant_id: str) -> EmbeddingSpace:
        async with self.providers.lease(tenant_id) as chain:
            return chain.space

    # ------------------------------------------------------------------ records

    async def ingest(self, tenant_id: str, records: Sequence[Record]) -> BatchResult:
        return await self.apply(tenant_id, upserts=records)

    async def delete(self, tenant_id: str, record_ids: Sequence[str]) -> BatchResult:
        return await self.apply(tenant_id, deletes=record_ids)

    async def apply(
        self,
        tenant_id: str,
        upserts: Sequence[Record] = (),
        deletes: Sequence[str] = (),
    ) -> BatchResult:
        ops = await self.with_tenant_ttl(
            tenant_id, _ops(tenant_id, upserts, deletes, self.settings.limits)
        )
        await check_writable(self.store)  # a full disk: 507 before anything is embedded
        outcomes = (await self.process(ops)).outcomes
        _raise_if_all_refused(outcomes)
        result = BatchResult()
        for op, outcome in zip(ops, outcomes, strict=True):
            if outcome.status == "failed":
                result.failed[op.record_id] = outcome.error or "failed"
            else:
                getattr(result, outcome.status).append(op.record_id)
        return result

    async def process(self, ops: Sequence[Op], *, flush: bool = True) -> Applied:
        """Outcomes for ops of any tenants; tenants sharing a chain are embedded together.

        `flush=False`: the spaces written are left to the caller to flush (`Applied.unflushed`)
        before it acknowledges anything."""
        outcomes: dict[int, Outcome] = {}
        unflushed: set[EmbeddingSpace] = set()
        async with AsyncExitStack() as stack:
            # passes[0]: each tenant's chain; passes[1]: a migrating tenant's new space
            passes: list[dict[int, tuple[Any, list[int]]]] = [{}, {}]
            chains: dict[str, list[Any]] = {}
            for index, op in enumerate(ops):
                if op.tenant_id not in chains:
                    chains[op.tenant_id] = await self._write_chains(stack, op.tenant_id)
                for depth, chain in enumerate(chains[op.tenant_id]):
                    passes[depth].setdefault(id(chain), (chain, []))[1].append(index)
            for depth, groups in enumerate(passes):  # the old space before the new one
                for chain, indexes in groups.values():
                    if depth:  # only what the old space took
                        indexes = [i for i in indexes if outcomes[i].status != "failed"]
                    if not indexes:
                        continue
                    group = [ops[i] for i in indexes]
                    applied = await self.ingestor.apply(chain, group, flush=flush)
                    unflushed |= applied.unflushed
                    for i, outcome in zip(indexes, applied.outcomes, strict=True):
                        if not depth or outcome.status == "failed":
                            outcomes[i] = outcome
        return Applied([outcomes[i] for i in range(len(ops))], unflushed)

    async def flush(self, spaces: Iterable[EmbeddingSpace]) -> None:
        """Make durable what `process` wrote to these spaces with its flush deferred."""
        await self.ingestor.flush(spaces)

    async def _write_chains(self, stack: AsyncExitStack, tenant_id: str) -> list[Any]:
        configs = await self.reindexes.write_configs(tenant_id) if self.reindexes else None
        if configs is None:
            return [await stack.enter_async_context(self.providers.lease(tenant_id))]
        return [
            await stack.enter_async_context(self.providers.lease_config(config))
            for config in configs
        ]

    async def get_record(self, tenant_id: str, record_id: str) -> StoredRecord:
        space = await self.space_of(tenant_id)
        await self.store.ensure_space(space)
        found = await self.store.stored_records(space, tenant_id, [record_id])
        stored = found.get(record_id)
        if stored is None or (stored.expires_at is not None and stored.expires_at <= time.time()):
            raise NotFound(f"record not found in tenant {tenant_id}")  # expired: gone already
        return stored

    async def list_records(
        self,
        tenant_id: str,
        *,
        limit: int = records_ops.DEFAULT_PAGE,
        cursor: str | None = None,
        filter: Any = None,
    ) -> records_ops.Page:
        """One page of the tenant's records in a stable order, and the next page's cursor."""
        check_tenant_id(tenant_id)
        return await records_ops.list_records(
            self, tenant_id, limit=limit, cursor=cursor, filter=filter
        )

    async def count_records(self, tenant_id: str, filter: Any = None) -> int:
        """Records (not chunks) the tenant has, those the filter selects if given."""
        check_tenant_id(tenant_id)
        return await records_ops.count_records(self, tenant_id, filter)

    async def delete_records(self, tenant_id: str, filter: Any, *, dry_run: bool = False) -> int:
        """Delete the records a (required) filter selects; how many (would) go."""
        check_tenant_id(tenant_id)
        return await records_ops.delete_records(self, tenant_id, filter, dry_run=dry_run)

    # ------------------------------------------------------------------ search and embed

    search = search_ops.search
    facets = search_ops.facets

    async def embed(
        self,
        texts: Sequence[str],
        tenant_id: str | None = None,
        *,
        purpose: Purpose = "document",
    ) -> list[list[float]]:
        """One vector per text, documents unless told otherwise."""
        return (await self.embed_counted(texts, tenant_id, purpose=purpose)).vectors

    async def embed_counted(
        self,
        texts: Sequence[str],
        tenant_id: str | None = None,
        *,
        purpose: Purpose = "document",
    ) -> Embedded:
        """One vector per text, with the tokens the model read (/v1/embeddings' usage).

        A text over the model's input limit is ContextLengthExceeded (its limit and count
        where the model's tokenizer is known here), never silently truncated: records are
        chunked instead, a single vector cannot be. Documents go through the embedding
        cache that ingest uses (the same text in the same space is embedded once)."""
        if tenant_id is not None:
            check_tenant_id(tenant_id)
        async with self.providers.lease(tenant_id) as chain:
            tokens = await _check_lengths(chain, list(texts))
            cache = self.ingestor.cache
            if cache is None or purpose != "document":
                vectors = await chain.embed(list(texts), purpose=purpose)
            else:
                vectors = await cache.embed(chain.space, list(texts), chain.embed)
            return Embedded(vectors, tokens, chain.space)

    # ------------------------------------------------------------------ jobs

    async def submit_job(
        self, tenant_id: str, upserts: Sequence[Record] = (), deletes: Sequence[str] = ()
    ) -> str:
        """Record the job, then publish one message per record; returns the job id."""
        ops = await self.with_tenant_ttl(
            tenant_id, _ops(tenant_id, upserts, deletes, self.settings.limits)
        )
        items = [(op.record_id, "upsert" if op.record else "delete") for op in ops]
        job_id = await self.jobs.create(tenant_id, items)
        await self.queue.publish([message_for(op, job_id) for op in ops])
        return job_id

    async def with_tenant_ttl(self, tenant_id: str, ops: list[Op]) -> list[Op]:
        """With the tenant's `ttl_seconds`, records sent without an expiry get one: the time
        they were accepted plus the TTL."""
        if not any(op.record is not None and op.record.expires_at is None for op in ops):
            return ops
        stored = await self.configs.stored(tenant_id)
        ttl = stored.get("ttl_seconds") if stored else None
        if not isinstance(ttl, int) or isinstance(ttl, bool) or ttl <= 0:
            return ops
        expires = datetime.now(UTC) + timedelta(seconds=ttl)
        return [
            Op(op.tenant_id, op.record_id, op.record.model_copy(update={"expires_at": expires}))
            if op.record is not None and op.record.expires_at is None
            else op
            for op in ops
        ]

    async def job(self, tenant_id: str, job_id: str) -> JobStatus:
        status = await self.jobs.get(tenant_id, job_id)
        if status is None:
            raise NotFound(f"job not found in tenant {tenant_id}")
        return status


@dataclass(frozen=True)
class Embedded:
    vectors: list[list[float]]
    tokens: int  # what the model read, special tokens included (estimated for a gateway)
    space: EmbeddingSpace


async def _check_lengths(chain: ProviderChain, texts: list[str]) -> int:
    """The tokens of `texts`; ContextLengthExceeded for the first one over the limit."""
    counter = chain.token_counter
    if counter is not None:
        counts = await counter.count_tokens(texts)
        for index, count in enumerate(counts):
            if count > counter.input_limit:
                raise ContextLengthExceeded(counter.input_limit, count, index)
        return sum(counts)
    for index, pieces in enumerate(await chain.chunk(texts)):
        if len(pieces) > 1:  # the gateway's tokenizer is unknown: its limit, estimated
            raise LimitExceeded(f"input {index} is longer than {chain.primary.name}'s input limit")
    return sum(len(text) // 4 + 1 for text in texts)


def _raise_if_all_refused(outcomes: Sequence[Outcome]) -> None:
    """A disk that filled up during the call refused every write: the caller gets StorageFull
    (507, retry it all later), not a 200 listing each record as failed."""
    if outcomes and all(o.code == StorageFull.code for o in outcomes):
        raise StorageFull(outcomes[0].error or "the disk is full", outcomes[0].retry_after or 30.0)


def message_for(op: Op, job_id: str | None = None) -> bytes:
    message: UpsertMessage | DeleteMessage
    if op.record is not None:
        message = UpsertMessage(tenant_id=op.tenant_id, record=op.record, job_id=job_id)
    else:
        message = DeleteMessage(tenant_id=op.tenant_id, record_id=op.record_id, job_id=job_id)
    return message.model_dump_json().encode()  # compact, UTF-8: pydantic-core's serializer


def new_version() -> int:
    """The version vecpipe gives a record sent without one: when it was accepted, in us."""
    return time.time_ns() // 1000


def with_version(record: Record, version: int) -> Record:
    return record if record.version is not None else record.model_copy(update={"version": version})


def _ops(
    tenant_id: str, upserts: Sequence[Record], deletes: Sequence[str], limits: Limits
) -> list[Op]:
    """The ops of one request, every record checked (record_checks.py: as the HTTP routes
    and the worker check theirs), all of them versioned with the time it was accepted."""
    check_tenant_id(tenant_id)
    for record in upserts:
        check_record(record, limits)
    for record_id in deletes:
        check_record_id(record_id, limits)
    version = new_version()
    ops = [Op(tenant_id, r.id, with_version(r, version)) for r in upserts]
    ops += [Op(tenant_id, rid) for rid in deletes]
    seen: set[str] = set()
    for op in ops:
        if op.record_id in seen:
            raise ValidationError(f"record id appears twice in one request: {op.record_id!r}")
        seen.add(op.record_id)
    if not ops:
        raise ValidationError("nothing to do: give records to upsert or ids to delete")
    return ops
