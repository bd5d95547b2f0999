"""Graceful shutdown under load: SIGTERM to `vecpipe worker` in the middle of a large job.

The job is for a gateway tenant on the loopback test gateway, whose latency the test sets.
Twice: once with batches that finish within the grace period, once with batches far slower
than it (they are released). Each time the worker exits 0, its log holds no asyncio error
and no traceback, and a restarted worker completes the job, each record counted once.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.reliability.support import gateway_factory
from tests.support.app import make_settings
from tests.support.gateway import Gateway
from tests.support.processes import Observer, WorkerProcess, eventually, observing
from vecpipe.db.jobs import JobStatus
from vecpipe.models import EmbeddingSpace, Record
from vecpipe.resources import open_resources

pytestmark = pytest.mark.slow

TENANT = "bulk"
RECORDS = 300
SECRET = "shutdown test secret, not a real one"
SPACE = EmbeddingSpace("bulk-model", 16)
LOG_PROBLEMS = ("Traceback", "Task exception was never retrieved", "Event loop is closed")


def worker_env(data_dir: Path, grace: float) -> dict[str, str]:
    return {
        "VECPIPE_DATA_DIR": str(data_dir),
        "VECPIPE_GATEWAY_ALLOWLIST": "127.0.0.1",
        "VECPIPE_SECRET_KEY": SECRET,
        "VECPIPE_WORKER_BATCH_SIZE": "32",
        "VECPIPE_WORKER_POLL_SECONDS": "0.05",
        "VECPIPE_SHUTDOWN_GRACE_SECONDS": str(grace),
        "VECPIPE_LEASE_SECONDS": "30",  # a released message must not wait for its lease
    }


async def progress(observer: Observer, job_id: str) -> JobStatus:
    return await observer.job(TENANT, job_id)


async def counted(observer: Observer, job_id: str) -> int:
    status = await progress(observer, job_id)
    return status.done + status.unchanged + status.failed


async def stop_mid_job(
    observer: Observer, job_id: str, worker: WorkerProcess, grace: float
) -> tuple[int, str]:
    """Let the worker get going, SIGTERM it mid-job; its exit code and log."""
    before = await counted(observer, job_id)
    await eventually(lambda: _above(observer, job_id, before), "the worker took work", 60)
    code = await asyncio.to_thread(worker.terminate, grace + 20)  # raises if it hangs
    assert await counted(observer, job_id) < RECORDS, "the job was over before the signal"
    return code, worker.log(100_000)


def check_clean(code: int, log: str) -> None:
    assert code == 0, log[-4000:]
    assert not [p for p in LOG_PROBLEMS if p in log], log[-4000:]
    assert not [line for line in log.splitlines() if "ERROR" in line and "asyncio" in line]
    assert "worker stopped" in log


async def test_sigterm_mid_job_then_restart_completes(tmp_path: Path, gateway: Gateway) -> None:
    data_dir = tmp_path / "data"
    settings = make_settings(data_dir, gateway_allowlist="127.0.0.1", secret_key=SECRET)
    # The API side configures and submits, then closes: the worker owns the data dir
    factory = gateway_factory(settings.allowlisted_gateway_hosts)  # a fake for the local model
    async with open_resources(settings, provider_factory=factory) as resources:
        provider = {
            "kind": "openai",
            "base_url": gateway.base_url,
            "model": SPACE.model,
            "api_key": "sk-bulk",
            "dimensions": SPACE.dimension,
        }
        await resources.pipeline.set_ai_config(TENANT, {"primary": provider})
        records = [Record(id=f"b{i}", text=f"bulk record {i} of the job") for i in range(RECORDS)]
        job_id = await resources.pipeline.submit_job(TENANT, upserts=records)

    async with observing(settings) as observer:  # the job's progress, beside the worker
        gateway.control.latency_seconds = 0.1  # batches finish well within the grace
        with WorkerProcess("finishing", worker_env(data_dir, 5.0), tmp_path) as worker:
            code, log = await stop_mid_job(observer, job_id, worker, 5.0)
        check_clean(code, log)
        assert "releasing in-flight work" not in log

        gateway.control.latency_seconds = 3.0  # batches outlast the grace: released
        with WorkerProcess("releasing", worker_env(data_dir, 1.0), tmp_path) as worker:
            code, log = await stop_at_the_gateway(gateway, worker)
        check_clean(code, log)
        assert "releasing in-flight work" in log

        gateway.control.latency_seconds = 0.0
        with WorkerProcess("completing", worker_env(data_dir, 5.0), tmp_path) as worker:
            await eventually(lambda: _completed(observer, job_id), "the job completed", 120)
            assert await asyncio.to_thread(worker.terminate) == 0
        status = await progress(observer, job_id)
        assert (status.failed, status.done + status.unchanged) == (0, RECORDS)
    async with open_resources(settings, provider_factory=factory) as resources:
        assert await resources.queue.depth() == 0
        await resources.store.ensure_space(SPACE)
        assert await resources.store.count(SPACE, TENANT) == RECORDS


async def stop_at_the_gateway(gateway: Gateway, worker: WorkerProcess) -> tuple[int, str]:
    """SIGTERM while the worker's batches wait at the (slow) gateway; exit code and log."""
    await eventually(lambda: _in_flight(gateway), "a batch at the gateway", 60)
    code = await asyncio.to_thread(worker.terminate, 30.0)
    return code, worker.log(100_000)


async def _in_flight(gateway: Gateway) -> bool:
    return gateway.control.in_flight > 0


async def _above(observer: Observer, job_id: str, before: int) -> bool:
    return await counted(observer, job_id) > before


async def _completed(observer: Observer, job_id: str) -> bool:
    return (await progress(observer, job_id)).status == "completed"
