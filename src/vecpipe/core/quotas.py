"""Per-tenant quotas: records stored, and an ingest rate (a token bucket per tenant).

Both are checked when a request is admitted (the synchronous records route and job
submission), never by the worker: a message an application publishes to the queue itself
is not metered. The buckets live in the process, so with N API processes a tenant gets up
to N times the rate. The record count is read from the store at admission; requests of one
tenant admitted concurrently may together overshoot it by what they carry (at most the
ingest burst when a rate is set).

Exceeding either raises QuotaExceeded (HTTP 429) with `retry_after` seconds: for the rate,
when the bucket will hold enough; for stored records, STORAGE_RETRY_AFTER, since only a
delete or a raised quota frees room.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from vecpipe.errors import LimitExceeded, QuotaExceeded
from vecpipe.models import EmbeddingSpace, Record
from vecpipe.settings import Quotas, TenantQuota
from vecpipe.store.base import VectorStore

if TYPE_CHECKING:
    from vecpipe.core.pipeline import Pipeline

STORAGE_RETRY_AFTER = 60


@dataclass(frozen=True)
class TenantLimits:
    """The quotas that apply to one tenant; 0 turns a quota off."""

    max_records: int
    ingest_rate: float
    ingest_burst: int

    @classmethod
    def of(cls, quotas: Quotas, tenant_id: str) -> TenantLimits:
        own = quotas.tenants.get(tenant_id) or TenantQuota()
        return cls(
            max_records=quotas.max_records if own.max_records is None else own.max_records,
            ingest_rate=quotas.ingest_rate if own.ingest_rate is None else own.ingest_rate,
            ingest_burst=quotas.ingest_burst if own.ingest_burst is None else own.ingest_burst,
        )


@dataclass
class TokenBucket:
    """`rate` tokens a second up to `capacity`; starts full."""

    rate: float
    capacity: float
    clock: Callable[[], float] = time.monotonic
    tokens: float = field(init=False)
    stamp: float = field(init=False)

    def __post_init__(self) -> None:
        self.tokens = self.capacity
        self.stamp = self.clock()

    def take(self, n: int) -> float:
        """Take n tokens and return 0, or take none and return the seconds until n are there."""
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= n:
            self.tokens -= n
            return 0.0
        return (n - self.tokens) / self.rate

    def give_back(self, n: int) -> None:
        self.tokens = min(self.capacity, self.tokens + n)


class QuotaService:
    """Admits or refuses a tenant's writes; one per API process."""

    def __init__(self, quotas: Quotas, clock: Callable[[], float] = time.monotonic) -> None:
        self._quotas = quotas
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}

    def limits(self, tenant_id: str) -> TenantLimits:
        return TenantLimits.of(self._quotas, tenant_id)

    async def admit(
        self,
        pipeline: Pipeline,
        tenant_id: str,
        upserts: Sequence[Record],
        deletes: Sequence[str],
    ) -> None:
        """Raise QuotaExceeded unless this batch fits both quotas; then it is counted."""
        limits = self.limits(tenant_id)
        ops = len(upserts) + len(deletes)
        taken = self.take_rate(tenant_id, limits, ops)
        try:
            if limits.max_records and upserts:
                space = await pipeline.space_of(tenant_id)
                await self._check_records(
                    pipeline.store, space, tenant_id, limits, upserts, deletes
                )
        except QuotaExceeded:
            if taken:
                self._buckets[tenant_id].give_back(ops)
            raise

    async def admit_sync(
        self, pipeline: Pipeline, tenant_id: str, new: int, upserts: int, deletes: int
    ) -> None:
        """A full sync's writes (core/full_sync.py): `upserts` (of which `new` records are
        not stored yet) and `deletes`; unchanged records of the set cost nothing."""
        limits = self.limits(tenant_id)
        ops = upserts + deletes
        taken = self.take_rate(tenant_id, limits, ops)
        try:
            if limits.max_records and new:
                space = await pipeline.space_of(tenant_id)
                await pipeline.store.ensure_space(space)
                current = await pipeline.store.count_records(space, tenant_id)
                if current + new - deletes > limits.max_records:
                    raise QuotaExceeded(
                        f"record quota of {limits.max_records} exceeded: {current} stored, "
                        f"{new} new and {deletes} to delete in this sync",
                        retry_after=STORAGE_RETRY_AFTER,
                    )
        except QuotaExceeded:
            if taken:
                self._buckets[tenant_id].give_back(ops)
            raise

    def take_rate(self, tenant_id: str, limits: TenantLimits, ops: int) -> bool:
        """Take `ops` tokens from the tenant's bucket; False when no rate is set."""
        if not limits.ingest_rate:
            return False
        if ops > limits.ingest_burst:
            raise LimitExceeded(
                f"{ops} records in one request; this tenant's ingest burst is "
                f"{limits.ingest_burst}: send smaller batches"
            )
        bucket = self._bucket(tenant_id, limits)
        wait = bucket.take(ops)
        if wait:
            raise QuotaExceeded(
                f"ingest rate quota of {limits.ingest_rate:g} records/s exceeded",
                retry_after=max(1, math.ceil(wait)),
            )
        return True

    def _bucket(self, tenant_id: str, limits: TenantLimits) -> TokenBucket:
        bucket = self._buckets.get(tenant_id)
        if bucket is None or (bucket.rate, bucket.capacity) != (
            limits.ingest_rate,
            limits.ingest_burst,
        ):
            bucket = TokenBucket(limits.ingest_rate, limits.ingest_burst, self._clock)
            self._buckets[tenant_id] = bucket
        return bucket

    async def _check_records(
        self,
        store: VectorStore,
        space: EmbeddingSpace,
        tenant_id: str,
        limits: TenantLimits,
        upserts: Sequence[Record],
        deletes: Sequence[str],
    ) -> None:
        await store.ensure_space(space)
        ids = [r.id for r in upserts] + list(deletes)
        stored = await store.stored_records(space, tenant_id, ids)
        new = sum(1 for r in upserts if r.id not in stored)
        freed = sum(1 for record_id in deletes if record_id in stored)
        current = await store.count_records(space, tenant_id)
        if new and current + new - freed > limits.max_records:
            raise QuotaExceeded(
                f"record quota of {limits.max_records} exceeded: {current} stored, "
                f"{new} new in this request",
                retry_after=STORAGE_RETRY_AFTER,
            )
