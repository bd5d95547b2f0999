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
from collections.abc import AsyncIterator
from dataclasses import dataclass

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


@contextlib.asynccontextmanager
async def in_process_worker(resources: Resources) -> AsyncIterator[RunningWorker]:
    """Run a worker while the block lasts; stop it (stop_worker) when the block ends."""
    worker = worker_for(resources)
    task = asyncio.create_task(worker.run(), name="vecpipe-worker")
    try:
        yield RunningWorker(worker, task)
    finally:
        await stop_worker(worker, task, resources.settings.shutdown_grace_seconds)


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
