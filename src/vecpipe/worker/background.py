"""Running a VectorizationWorker: wired from the resources, beside the API or on its own.

`vecpipe serve` hands `in_process_worker` to the app factory as its background hook (the
app runs it while its lifespan lasts, and asks it whether it still runs for readiness);
`vecpipe worker` runs one until a signal (runtime.py). Either way `stop_worker` stops it:
no new work, the batch in flight finishes within the grace period or is given back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from vecpipe.queue.base import MessageQueue
from vecpipe.resources import Resources
from vecpipe.settings import Settings
from vecpipe.worker.worker import VectorizationWorker

log = logging.getLogger(__name__)


def worker_for(
    resources: Resources,
    *,
    queue: MessageQueue | None = None,
    settings: Settings | None = None,
) -> VectorizationWorker:
    """A worker on the resources' pipeline, job repository and store; on their queue and
    settings unless others are given (tests)."""
    return VectorizationWorker(
        queue or resources.queue,
        settings or resources.settings,
        batches=resources.pipeline,
        jobs=resources.database.jobs,
        store=resources.store,
        tenants=resources.database.tombstones,
    )


@dataclass
class RunningWorker:
    """A worker running in a task of its own (the app's `Background`)."""

    worker: VectorizationWorker
    task: asyncio.Task[None]

    def is_running(self) -> bool:
        return not self.task.done()


@dataclass
class ShutdownClock:
    """One grace period for the whole process, from the stop signal.

    `vecpipe serve` starts it when uvicorn begins its shutdown: the in-process worker stops
    taking work at once, beside the HTTP connections draining, and it gets what is left of
    the same period afterwards, not a second one (SIGTERM to exit within grace + a bound).
    """

    grace_seconds: float
    deadline: float | None = None
    workers: list[VectorizationWorker] = field(default_factory=list)

    def start(self) -> None:
        if self.deadline is None:
            self.deadline = time.monotonic() + self.grace_seconds
        for worker in self.workers:
            worker.request_stop()

    def remaining(self) -> float:
        self.start()
        assert self.deadline is not None
        return max(0.0, self.deadline - time.monotonic())


@contextlib.asynccontextmanager
async def in_process_worker(
    resources: Resources, clock: ShutdownClock | None = None
) -> AsyncIterator[RunningWorker]:
    """Run a worker while the block lasts; stop it (stop_worker) when the block ends,
    within what `clock` leaves of the grace period (all of it without one)."""
    worker = worker_for(resources)
    clock = clock or ShutdownClock(resources.settings.shutdown_grace_seconds)
    clock.workers.append(worker)
    task = asyncio.create_task(worker.run(), name="vecpipe-worker")
    try:
        yield RunningWorker(worker, task)
    finally:
        await stop_worker(worker, task, clock.remaining())


async def stop_worker(
    worker: VectorizationWorker, task: asyncio.Task[None], grace_seconds: float
) -> None:
    """Stop taking work; let the batch in flight finish within the grace period, else cancel."""
    worker.request_stop()
    try:
        await asyncio.wait_for(asyncio.shield(task), grace_seconds)
    except TimeoutError:
        log.warning("worker did not finish within %.1fs; releasing in-flight work", grace_seconds)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    except Exception:
        log.exception("worker stopped with an error")
