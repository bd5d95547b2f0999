"""The VectorizationWorker: receive a micro-batch, embed and write it, account, then ack.

Acknowledgement comes only after the store write is durable (the ingestor flushes) and the
job outcome is recorded. Failures are retried with backoff, then dead-lettered with the
reason. `stop()` stops taking work; a batch in flight finishes or is released.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from vecpipe.core.ingest import Outcome
from vecpipe.core.pipeline import OUTCOME_TO_JOB, Pipeline
from vecpipe.queue.backoff import backoff_delay
from vecpipe.queue.base import Delivery, MessageQueue
from vecpipe.settings import Settings
from vecpipe.worker.messages import ParsedMessage, PoisonMessage, parse_message

log = logging.getLogger(__name__)


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


class VectorizationWorker:
    def __init__(self, pipeline: Pipeline, queue: MessageQueue, settings: Settings) -> None:
        self.pipeline = pipeline
        self.queue = queue
        self.settings = settings
        self.stats = WorkerStats()
        self._stopping = asyncio.Event()

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
        while not self._stopping.is_set():
            deliveries = await self.queue.receive(
                self.settings.worker_batch_size, self.settings.worker_poll_seconds
            )
            if not deliveries:
                continue
            if self._stopping.is_set():
                await self.queue.release(deliveries)
                return
            try:
                await self.handle(deliveries)
            except asyncio.CancelledError:
                await self.queue.release(deliveries)
                raise

    async def handle(self, deliveries: Sequence[Delivery]) -> None:
        plan = _Plan()
        parsed: list[tuple[Delivery, ParsedMessage]] = []
        for delivery in deliveries:
            try:
                parsed.append((delivery, parse_message(delivery.body)))
            except PoisonMessage as exc:
                plan.dead.append((delivery, exc.reason))
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
        else:
            reason = outcome.error or "failed"
            plan.dead.append((delivery, reason))
            job_outcome = ("failed", reason)
        if message.job_id and job_outcome:
            plan.jobs[(message.op.tenant_id, message.job_id)][message.op.record_id] = job_outcome

    async def _execute(self, plan: _Plan) -> None:
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
        log.info(
            "batch messages=%d acked=%d retried=%d dead_lettered=%d",
            size,
            len(plan.acks),
            len(plan.retries),
            len(plan.dead),
        )
