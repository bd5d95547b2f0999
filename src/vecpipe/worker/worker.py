"""The VectorizationWorker: receive a micro-batch, embed and write it, account, then ack.

Acknowledgement comes only after the store write is durable (the worker flushes what a
batch wrote when it settles the batch) and the job outcome is recorded. Failures are
retried with backoff, then dead-lettered with the reason. `stop()` stops taking work; a
batch in flight finishes or is released.

Each consumer loop overlaps three batches: the next one is received while the current one
is processed (embedded and written), and the previous one is settled (flush, job outcomes,
acks, retries, dead letters) meanwhile; the loop waits for that before it settles another.
A stop lets the current batch finish and settle and gives the one received ahead back; a
cancellation gives back all three. The leases of all three are renewed while the worker
holds them (leases.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from vecpipe import metrics
from vecpipe.core.ingest import Outcome
from vecpipe.core.pipeline import OUTCOME_TO_JOB
from vecpipe.errors import StorageFull
from vecpipe.models import EmbeddingSpace
from vecpipe.queue.backoff import backoff_delay
from vecpipe.queue.base import Delivery, MessageQueue
from vecpipe.settings import Settings
from vecpipe.worker.leases import LeaseKeeper
from vecpipe.worker.messages import ParsedMessage, PoisonMessage, parse_message
from vecpipe.worker.pieces import BatchProcessor, JobOutcomes, ReadinessCheck, TenantGate

log = logging.getLogger(__name__)

STORE_PROBE_MAX_SECONDS = 5.0  # while the store is down, it is probed at most this far apart


@dataclass
class WorkerStats:
    batches: int = 0
    processed: int = 0
    retried: int = 0
    dead_lettered: int = 0
    outcomes: dict[str, int] = field(default_factory=lambda: defaultdict(int))


@dataclass
class _Plan:
    deliveries: Sequence[Delivery] = ()
    flush: set[EmbeddingSpace] = field(default_factory=set)  # written, not yet durable
    acks: list[Delivery] = field(default_factory=list)
    retries: list[tuple[Delivery, float, str]] = field(default_factory=list)
    dead: list[tuple[Delivery, str]] = field(default_factory=list)
    # refused by a full disk: given back without spending an attempt
    releases: list[Delivery] = field(default_factory=list)
    # (tenant, job) -> record id -> outcome; the tenant guards against a message naming
    # another tenant's job
    jobs: dict[tuple[str, str], dict[str, tuple[str, str | None]]] = field(
        default_factory=lambda: defaultdict(dict)
    )
    # for the batch's log line and metrics: outcomes, and tenant/provider per message
    outcomes: Counter[str] = field(default_factory=Counter)
    tenants: Counter[str] = field(default_factory=Counter)
    providers: Counter[str] = field(default_factory=Counter)
    retried_tenants: list[str] = field(default_factory=list)
    dead_labels: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class _LoopBatches:
    """One consumer loop's batches besides the one it processes."""

    ahead: asyncio.Task[list[Delivery]] | None = None  # being received
    settling: list[asyncio.Task[None]] = field(default_factory=list)


class VectorizationWorker:
    """Consumes `queue`; `batches` embeds and writes, `jobs` counts, `store` says when to
    take work again after a store failure (worker/background.py wires them from Resources)."""

    def __init__(
        self,
        queue: MessageQueue,
        settings: Settings,
        *,
        batches: BatchProcessor,
        jobs: JobOutcomes,
        store: ReadinessCheck,
        tenants: TenantGate | None = None,
    ) -> None:
        self.queue = queue
        self.settings = settings
        self._batches = batches
        self._jobs = jobs
        self._store = store
        self._tenants = tenants
        self.stats = WorkerStats()
        self._stopping = asyncio.Event()
        self._check_store = False  # a batch was retried: is the store down?
        self.leases = LeaseKeeper(queue, settings.lease_seconds)

    def request_stop(self) -> None:
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def run(self) -> None:
        """Consume until stop is requested; cancelling releases what is in flight."""
        loops = [self._consume() for _ in range(max(1, self.settings.worker_concurrency))]
        async with self.leases.renewing():  # left after every loop has given its batches back
            await asyncio.gather(*loops)

    async def run_until_idle(self) -> None:
        """Process until the queue has nothing ready (tests, `--once`)."""
        async with self.leases.renewing():
            while deliveries := await self.queue.receive(self.settings.worker_batch_size, 0.05):
                await self.handle(deliveries)

    async def _consume(self) -> None:
        failures = 0
        pending = _LoopBatches()
        try:
            while not self._stopping.is_set():
                try:
                    await self._step(pending)
                    failures = 0
                except Exception as exc:  # the queue or the database failed: back off, go on
                    failures += 1
                    await self._back_off(failures, exc)
        except asyncio.CancelledError:
            for task in pending.settling:
                if not task.cancelling():  # the one awaited is cancelled already: once only,
                    task.cancel()  # or a second cancel would cut short its giving back
            raise
        finally:
            if pending.ahead is not None:
                await self._give_back(pending.ahead)
            for task in pending.settling:
                await _finished(task)

    async def _step(self, pending: _LoopBatches) -> None:
        """Take a batch (received ahead, or now), process it, and start settling it."""
        if self._check_store and pending.ahead is not None:
            held, pending.ahead = pending.ahead, None
            await self._give_back(held)  # no leases held through a store outage
        await self._wait_for_store()
        ahead, pending.ahead = pending.ahead, None
        deliveries = await (ahead or self._receive())
        plan = None
        if await self._take(deliveries):
            pending.ahead = asyncio.create_task(self._receive())
            plan = await self._processed(deliveries)
            pending.settling.append(self._start_settling(plan))
        # one batch may settle while the next is taken; none while idle
        await _settled(pending.settling, keep=1 if plan is not None else 0)

    async def _back_off(self, failures: int, exc: Exception) -> None:
        delay = backoff_delay(failures, self.settings.worker_poll_seconds, STORE_PROBE_MAX_SECONDS)
        log.warning("worker loop failed (%s: %s), again in %.1fs", type(exc).__name__, exc, delay)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), delay)

    async def _receive(self) -> list[Delivery]:
        deliveries = await self.queue.receive(
            self.settings.worker_batch_size, self.settings.worker_poll_seconds
        )
        self.leases.hold(deliveries)
        return deliveries

    async def _release(self, deliveries: Sequence[Delivery]) -> None:
        self.leases.drop(deliveries)
        await self.queue.release(deliveries)

    async def _take(self, deliveries: list[Delivery]) -> bool:
        """Whether to process what was received; else it is given back (stop, or the store)."""
        if not deliveries:
            return False
        if self._stopping.is_set() or self._check_store:  # check first (the store, or stop)
            await self._release(deliveries)
            return False
        return True

    async def _processed(self, deliveries: list[Delivery]) -> _Plan:
        """The batch processed (written durably); on cancellation it is given back."""
        metrics.IN_FLIGHT.inc(len(deliveries))
        try:
            return await self._process(deliveries)
        except BaseException:
            metrics.IN_FLIGHT.dec(len(deliveries))
            with contextlib.suppress(Exception):
                await self._release(deliveries)
            raise

    async def _give_back(self, batch: asyncio.Task[list[Delivery]]) -> None:
        """A batch received ahead and not processed: cancel its receive, release its leases."""
        batch.cancel()  # a cancelled receive gives back what it leased
        await asyncio.wait([batch])
        if not batch.cancelled() and batch.exception() is None and batch.result():
            with contextlib.suppress(Exception):
                await self._release(batch.result())

    def _start_settling(self, plan: _Plan) -> asyncio.Task[None]:
        return asyncio.create_task(self._settle_batch(plan), name="vecpipe-worker-settle")

    async def _settle_batch(self, plan: _Plan) -> None:
        try:
            await self._execute(plan)
        except BaseException:  # cancelled, or settling failed: give the batch back
            with contextlib.suppress(Exception):
                await self._release(plan.deliveries)
            raise
        finally:
            self.leases.drop(plan.deliveries)
            metrics.IN_FLIGHT.dec(len(plan.deliveries))
        self._log_batch(len(plan.deliveries), plan)

    async def _wait_for_store(self) -> None:
        """After a retried batch (or one a full disk refused), take no work until the store
        reports ready (for a full disk: free space above the floor again).

        A store outage is no message's fault: retrying messages through it would spend their
        attempts and dead-letter the whole backlog of an outage longer than a few retries.
        """
        delay = self.settings.worker_poll_seconds
        while self._check_store and not self._stopping.is_set():
            try:
                await self._store.check_ready()
            except Exception as exc:
                if delay == self.settings.worker_poll_seconds:
                    log.warning("store not ready, taking no work until it is: %s", exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
                delay = min(delay * 2, STORE_PROBE_MAX_SECONDS)
            else:
                if delay != self.settings.worker_poll_seconds:
                    log.info("store ready again, taking work")
                self._check_store = False

    async def handle(self, deliveries: Sequence[Delivery]) -> None:
        """Process and settle one batch (no pipelining: tests, `--once`)."""
        metrics.IN_FLIGHT.inc(len(deliveries))
        self.leases.hold(deliveries)
        try:
            plan = await self._process(deliveries)
        except BaseException:
            self.leases.drop(deliveries)
            metrics.IN_FLIGHT.dec(len(deliveries))
            raise
        await self._settle_batch(plan)

    async def _process(self, deliveries: Sequence[Delivery]) -> _Plan:
        """Embed and write the batch; what to do with each delivery once it is durable."""
        plan = _Plan(deliveries)
        parsed: list[tuple[Delivery, ParsedMessage]] = []
        for delivery in deliveries:
            try:
                parsed.append((delivery, parse_message(delivery.body, self.settings.limits)))
            except PoisonMessage as exc:
                plan.dead.append((delivery, exc.reason))
                plan.dead_labels.append((metrics.UNKNOWN_TENANT, metrics.NO_PROVIDER))
        parsed = await self._admitted(plan, parsed)
        if parsed:
            try:
                applied = await self._batches.process([p.op for _, p in parsed], flush=False)
                plan.flush = applied.unflushed  # flushed when settled, before acks
                outcomes = applied.outcomes
            except Exception as exc:  # a bug or an unexpected failure: retry, never lose
                log.exception("batch failed unexpectedly")
                outcomes = [Outcome("failed", f"internal error: {type(exc).__name__}", True)]
                outcomes *= len(parsed)
            for (delivery, message), outcome in zip(parsed, outcomes, strict=True):
                self._plan(plan, delivery, message, outcome)
        # before the next batch is taken: a retried or refused batch means the store may be down
        self._check_store = self._check_store or bool(plan.retries or plan.releases)
        return plan

    async def _admitted(
        self, plan: _Plan, parsed: list[tuple[Delivery, ParsedMessage]]
    ) -> list[tuple[Delivery, ParsedMessage]]:
        """The messages that may run: those of an offboarded tenant's deleted jobs (queued
        before it was deleted) are acked unprocessed and counted, never re-create data."""
        if self._tenants is None or not parsed:
            return parsed
        try:
            admitted = await self._tenants.admit([(m.op.tenant_id, m.job_id) for _, m in parsed])
        except Exception:  # the database is down: give the batch back, unprocessed
            log.warning("cannot check tenant tombstones; batch given back", exc_info=True)
            plan.releases.extend(delivery for delivery, _ in parsed)
            self._check_store = True
            return []
        dropped = Counter[str]()
        kept = []
        for item, ok in zip(parsed, admitted, strict=True):
            if ok:
                kept.append(item)
            else:
                plan.acks.append(item[0])
                dropped[item[1].op.tenant_id] += 1
        for tenant_id, n in dropped.items():
            await self._tenants.count_dropped(tenant_id, n)
            metrics.count_lifecycle(tenant_id, "dropped_after_offboarding", n)
            log.info("dropped %d message(s) of offboarded tenant %s", n, tenant_id)
        return kept

    def _plan(
        self, plan: _Plan, delivery: Delivery, message: ParsedMessage, outcome: Outcome
    ) -> None:
        self.stats.outcomes[outcome.status] += 1
        tenant_id = message.op.tenant_id
        plan.outcomes[outcome.status] += 1
        plan.tenants[tenant_id] += 1
        plan.providers[outcome.provider or metrics.NO_PROVIDER] += 1
        job_outcome: tuple[str, str | None] | None = None
        if outcome.status != "failed":
            plan.acks.append(delivery)
            job_outcome = (OUTCOME_TO_JOB[outcome.status], None)
        elif outcome.code == StorageFull.code:
            # a full disk is no message's fault: give it back as it was, and wait (see
            # _wait_for_store) until the store reports space again
            plan.releases.append(delivery)
        elif outcome.retryable and delivery.attempts < self.settings.max_attempts:
            delay = backoff_delay(
                delivery.attempts,
                self.settings.retry_base_seconds,
                self.settings.retry_max_seconds,
                outcome.retry_after,
            )
            plan.retries.append((delivery, delay, outcome.error or "failed"))
            plan.retried_tenants.append(tenant_id)
        else:
            reason = outcome.error or "failed"
            plan.dead.append((delivery, reason))
            plan.dead_labels.append((tenant_id, outcome.provider or metrics.NO_PROVIDER))
            job_outcome = ("failed", reason)
        if message.job_id and job_outcome:
            plan.jobs[(message.op.tenant_id, message.job_id)][message.op.record_id] = job_outcome

    async def _execute(self, plan: _Plan) -> None:
        try:
            await self._batches.flush(plan.flush)  # durable before anything is counted
        except Exception:
            self._check_store = True  # the batch is given back; no work until the store is ready
            raise
        for (tenant_id, job_id), outcomes in plan.jobs.items():
            await self._jobs.record_outcomes(job_id, outcomes, tenant_id=tenant_id)
        # the leases have most of a period left: renewing them while they are settled would
        # only report the settled ones as lost
        self.leases.drop(plan.deliveries)
        if plan.acks:
            await self.queue.ack(plan.acks)
        for delivery, delay, reason in plan.retries:
            await self.queue.retry(delivery, delay, reason)
        for delivery, reason in plan.dead:
            await self.queue.dead_letter(delivery, reason)
        if plan.releases:
            await self.queue.release(plan.releases)

    def _log_batch(self, size: int, plan: _Plan) -> None:
        self.stats.batches += 1
        self.stats.processed += len(plan.acks)
        self.stats.retried += len(plan.retries)
        self.stats.dead_lettered += len(plan.dead)
        _count(plan)
        log.info(
            "batch",
            extra={
                "messages": size,
                "acked": len(plan.acks),
                "retried": len(plan.retries),
                "dead_lettered": len(plan.dead),
                "released": len(plan.releases),
                **{status: plan.outcomes[status] for status in sorted(plan.outcomes)},
                "tenants": _joined(plan.tenants),
                "jobs": ",".join(sorted({job for _, job in plan.jobs})) or None,
                "providers": _joined(plan.providers),
            },
        )


async def _settled(settling: list[asyncio.Task[None]], keep: int) -> None:
    """Wait until at most `keep` batches are settling; a failure to settle is raised."""
    while len(settling) > keep:
        task = settling[0]
        try:
            await task
        finally:
            if task.done():
                settling.remove(task)


async def _finished(task: asyncio.Task[None]) -> None:
    """Wait for a settling batch; its failure was already handled (the batch given back)."""
    await asyncio.wait([task])
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.warning("settling a batch failed (%s: %s)", type(exc).__name__, exc)


def _joined(counts: Counter[str]) -> str | None:
    """`acme=40,globex=24` (most first): a compact field for one log line."""
    return ",".join(f"{name}={n}" for name, n in counts.most_common()) or None


def _count(plan: _Plan) -> None:
    metrics.WORKER_BATCHES.inc()
    for tenant_id in plan.retried_tenants:
        metrics.RETRIES.labels(metrics.tenant_label(tenant_id)).inc()
    for tenant_id, provider in plan.dead_labels:
        labels = metrics.tenant_label(tenant_id), metrics.provider_label(provider)
        metrics.DEAD_LETTERS.labels(*labels).inc()
