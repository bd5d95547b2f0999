"""The VectorizationWorker: receive a micro-batch, embed and write it, account, then ack.

Acknowledgement comes only after the store write is durable (the ingestor flushes) and the
job outcome is recorded. Failures are retried with backoff, then dead-lettered with the
reason. `stop()` stops taking work; a batch in flight finishes or is released.
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
from vecpipe.core.pipeline import OUTCOME_TO_JOB, Pipeline
from vecpipe.queue.backoff import backoff_delay
from vecpipe.queue.base import Delivery, MessageQueue
from vecpipe.settings import Settings
from vecpipe.worker.messages import ParsedMessage, PoisonMessage, parse_message

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
    acks: list[Delivery] = field(default_factory=list)
    retries: list[tuple[Delivery, float, str]] = field(default_factory=list)
    dead: list[tuple[Delivery, str]] = field(default_factory=list)
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


class VectorizationWorker:
    def __init__(self, pipeline: Pipeline, queue: MessageQueue, settings: Settings) -> None:
        self.pipeline = pipeline
        self.queue = queue
        self.settings = settings
        self.stats = WorkerStats()
        self._stopping = asyncio.Event()
        self._check_store = False  # a batch was retried: is the store down?

    def request_stop(self) -> None:
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def run(self) -> None:
        """Consume until stop is requested; cancelling releases what is in flight."""
        loops = [self._consume() for _ in range(max(1, self.settings.worker_concurrency))]
        await asyncio.gather(*loops)

    async def run_until_idle(self) -> None:
        """Process until the queue has nothing ready (tests, `--once`)."""
        while deliveries := await self.queue.receive(self.settings.worker_batch_size, 0.05):
            await self.handle(deliveries)

    async def _consume(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                await self._wait_for_store()
                await self._consume_batch()
                failures = 0
            except Exception as exc:  # the queue or the database failed: back off, go on
                failures += 1
                delay = backoff_delay(
                    failures, self.settings.worker_poll_seconds, STORE_PROBE_MAX_SECONDS
                )
                log.warning(
                    "worker loop failed (%s: %s), again in %.1fs", type(exc).__name__, exc, delay
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)

    async def _consume_batch(self) -> None:
        deliveries = await self.queue.receive(
            self.settings.worker_batch_size, self.settings.worker_poll_seconds
        )
        if not deliveries:
            return
        if self._stopping.is_set() or self._check_store:  # check first (the store, or stop)
            await self.queue.release(deliveries)
            return
        try:
            await self.handle(deliveries)
        except BaseException:  # cancelled, or settling failed: give the batch back
            with contextlib.suppress(Exception):
                await self.queue.release(deliveries)
            raise

    async def _wait_for_store(self) -> None:
        """After a retried batch, take no work until the store reports ready.

        A store outage is no message's fault: retrying messages through it would spend their
        attempts and dead-letter the whole backlog of an outage longer than a few retries.
        """
        delay = self.settings.worker_poll_seconds
        while self._check_store and not self._stopping.is_set():
            try:
                await self.pipeline.store.check_ready()
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
        metrics.IN_FLIGHT.inc(len(deliveries))
        try:
            await self._handle(deliveries)
        finally:
            metrics.IN_FLIGHT.dec(len(deliveries))

    async def _handle(self, deliveries: Sequence[Delivery]) -> None:
        plan = _Plan()
        parsed: list[tuple[Delivery, ParsedMessage]] = []
        for delivery in deliveries:
            try:
                parsed.append((delivery, parse_message(delivery.body)))
            except PoisonMessage as exc:
                plan.dead.append((delivery, exc.reason))
                plan.dead_labels.append((metrics.UNKNOWN_TENANT, metrics.NO_PROVIDER))
        if parsed:
            try:
                outcomes = await self.pipeline.process([p.op for _, p in parsed])
            except Exception as exc:  # a bug or an unexpected failure: retry, never lose
                log.exception("batch failed unexpectedly")
                outcomes = [Outcome("failed", f"internal error: {type(exc).__name__}", True)]
                outcomes *= len(parsed)
            for (delivery, message), outcome in zip(parsed, outcomes, strict=True):
                self._plan(plan, delivery, message, outcome)
        await self._execute(plan)
        self._log_batch(len(deliveries), plan)

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
        self._check_store = self._check_store or bool(plan.retries)
        for (tenant_id, job_id), outcomes in plan.jobs.items():
            await self.pipeline.jobs.record_outcomes(job_id, outcomes, tenant_id=tenant_id)
        if plan.acks:
            await self.queue.ack(plan.acks)
        for delivery, delay, reason in plan.retries:
            await self.queue.retry(delivery, delay, reason)
        for delivery, reason in plan.dead:
            await self.queue.dead_letter(delivery, reason)

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
                **{status: plan.outcomes[status] for status in sorted(plan.outcomes)},
                "tenants": _joined(plan.tenants),
                "jobs": ",".join(sorted({job for _, job in plan.jobs})) or None,
                "providers": _joined(plan.providers),
            },
        )


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
