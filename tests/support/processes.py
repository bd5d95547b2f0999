"""Runs `vecpipe worker` (`python -m vecpipe.cli worker`) as real subprocesses, for scale-out tests.

Each `WorkerProcess` gets the test process's environment plus the VECPIPE_* settings it is
given, writes its log (stdout and stderr) to a file of its own, and is stopped when its
`with` block ends: SIGTERM, then SIGKILL if it does not exit in time. `kill()` is the SIGKILL
a test uses to crash a worker mid-job. `store_ai_config` configures the tenant the workers
will serve, from the test process. `wait_until_async` and `eventually` poll a condition.

A worker subprocess on the embedded default owns its data dir (datadir.py): the test process
may not open the resource stack there while it runs. `observing(settings)` opens the
SQLite database and queue of that data dir beside the worker, without the lock, for a test
to publish, watch jobs and read dead letters: SQLite itself allows that, and the Edge store,
which does not, stays closed. The product has no such door: tools ask the owner over HTTP.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from vecpipe.core.pipeline import Pipeline
from vecpipe.db.jobs import JobRepo, JobStatus
from vecpipe.models import EmbeddingSpace
from vecpipe.providers.config import AIConfig
from vecpipe.queue.base import MessageQueue
from vecpipe.settings import Settings

STOP_TIMEOUT = 20.0

# How the data dir's lock note names this test process (datadir.py: the script's name, or
# "python" for `python -c`): "pytest", or "python" in a pytest-xdist worker.
THIS_COMMAND = "python" if sys.argv[0] in ("", "-c") else Path(sys.argv[0]).name


class WorkerProcess:
    """One `vecpipe worker` subprocess; `env` overrides the inherited environment."""

    def __init__(self, name: str, env: Mapping[str, str], log_dir: Path) -> None:
        self.name = name
        self.env = dict(env)
        self.log_path = log_dir / f"{name}.log"
        self.args = [sys.executable, "-m", "vecpipe.cli", "worker"]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        if self.process is not None:
            raise RuntimeError(f"worker {self.name} was started already")
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", **self.env}
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.args, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self, tail: int = 8000) -> str:
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-tail:]

    def kill(self) -> None:
        """SIGKILL: no shutdown at all, as if the machine had died."""
        if self.alive():
            self._running().send_signal(signal.SIGKILL)
        if self.process is not None:
            self.process.wait(STOP_TIMEOUT)

    def terminate(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM and wait; the exit code (a worker that hangs is killed, then raises)."""
        process = self._running()
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise RuntimeError(f"worker {self.name} ignored SIGTERM:\n{self.log()}") from None

    def _running(self) -> subprocess.Popen[bytes]:
        if self.process is None:
            raise RuntimeError(f"worker {self.name} was not started")
        return self.process

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self.alive():
            return
        try:
            self.terminate()
        except RuntimeError:
            if exc is None:
                raise


async def wait_until_async(
    condition: Callable[[], object],
    timeout: float,
    what: str,
    *,
    interval: float = 0.05,
    workers: tuple[WorkerProcess, ...] = (),
) -> None:
    """Poll `condition` (a callable, or one returning an awaitable) until it is true.

    Raises with the workers' logs on timeout, or as soon as one of `workers` has exited.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        _check_progress(deadline, timeout, what, workers)
        await asyncio.sleep(interval)


async def eventually(
    condition: Callable[[], Awaitable[bool]], what: str, timeout: float = 30.0
) -> None:
    """Poll `condition()` until it holds, with no worker process to watch.

    A bound on waiting, not a claim about speed.
    """
    await wait_until_async(condition, timeout, what, interval=0.02)


def _check_progress(
    deadline: float, timeout: float, what: str, workers: tuple[WorkerProcess, ...]
) -> None:
    for worker in workers:
        if worker.process is not None and not worker.alive():
            raise RuntimeError(
                f"worker {worker.name} exited ({worker.process.returncode}) while waiting for "
                f"{what}:\n{worker.log()}"
            )
    if time.monotonic() > deadline:
        logs = "\n".join(f"--- {w.name}\n{w.log(3000)}" for w in workers)
        raise TimeoutError(f"gave up after {timeout:g}s waiting for: {what}\n{logs}")


async def store_ai_config(
    pipeline: Pipeline, tenant_id: str, config: dict[str, Any]
) -> EmbeddingSpace:
    """Store a tenant's provider chain; returns its embedding space.

    Like `Pipeline.set_ai_config` minus its comparison with the tenant's current space,
    which for a tenant without a config loads the default local model: seconds of CPU in
    the test process, for a model these tests never use.
    """
    parsed = AIConfig.model_validate(config)
    pipeline.configs.check(parsed)
    await pipeline.configs.save(tenant_id, parsed)
    pipeline.providers.forget(tenant_id)
    return await pipeline.space_of(tenant_id)


@dataclass
class Observer:
    """The jobs table and the queue of a data dir another process owns (tests only)."""

    jobs: JobRepo
    queue: MessageQueue

    async def job(self, tenant_id: str, job_id: str) -> JobStatus:
        status = await self.jobs.get(tenant_id, job_id)
        assert status is not None, f"no job {job_id}"
        return status


@asynccontextmanager
async def observing(settings: Settings) -> AsyncIterator[Observer]:
    """The database and the queue of `settings`, opened without the data dir's lock."""
    from vecpipe.db.engine import open_database
    from vecpipe.resources import open_queue

    async with open_database(settings.resolved_database_url) as db, open_queue(settings) as queue:
        yield Observer(db.jobs, queue)
