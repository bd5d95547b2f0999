"""Scale-out: `vecpipe worker` processes on one RabbitMQ queue and one PostgreSQL database.

The "API" role is this test process: it opens the same resource stack as `vecpipe serve
--no-worker` would (`open_resources` with the same settings) to configure the tenant, submit
jobs and read their progress. Workers are real subprocesses. No Qdrant server runs here, so
each worker keeps its own embedded Edge store (its own VECPIPE_DATA_DIR); "nothing lost" is
the job accounting plus the union of the workers' stores. Embeddings come from the loopback
test gateway (tests/support/gateway.py), which is fast and whose latency the test steers to
hold a job mid-way while it kills a worker or drops a connection.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aio_pika
import pytest
import yaml

from tests.db.conftest import temporary_postgres_database
from tests.queue.conftest import delete_topology, rabbitmq_url, rabbitmqctl  # noqa: F401
from tests.support.corpus import english_paragraphs
from tests.support.gateway import Gateway
from tests.support.processes import WorkerProcess, store_ai_config, wait_until_async
from vecpipe.db.jobs import JobStatus
from vecpipe.models import EmbeddingSpace, Record
from vecpipe.queue.rabbitmq import RabbitQueue
from vecpipe.queue.rabbitmq.topology import Topology
from vecpipe.resources import Resources, open_resources
from vecpipe.settings import Settings
from vecpipe.store.edge import EdgeStore

TENANT = "scale"
SECRET_KEY = "scale-out test secret, not a real one"
GATEWAY_KEY = "sk-scaleout-test"
MAX_RETRY_SECONDS = 5.0
HOLD_SECONDS = 1.0  # gateway latency that keeps a job mid-way while the test strikes
F = TypeVar("F", bound=Callable[..., Any])
DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


def scaleout(test: F) -> F:
    """Starts worker processes and needs RabbitMQ and PostgreSQL."""
    return pytest.mark.slow(pytest.mark.rabbitmq(pytest.mark.postgres(test)))


@dataclass
class Cluster:
    """The shared settings, the API-side resource stack and the workers started so far."""

    env: dict[str, str]
    resources: Resources
    gateway: Gateway
    tmp: Path
    queue_name: str
    space: EmbeddingSpace
    workers: list[WorkerProcess] = field(default_factory=list)

    def worker(self, name: str) -> WorkerProcess:
        """A worker with its own data dir (its own Edge store); started by the caller."""
        env = {**self.env, "VECPIPE_DATA_DIR": str(self.tmp / name)}
        worker = WorkerProcess(name, env, self.tmp / "logs")
        self.workers.append(worker)
        return worker

    async def job(self, job_id: str) -> JobStatus:
        return await self.resources.pipeline.job(TENANT, job_id)

    async def submit(self, texts: Sequence[str], prefix: str) -> tuple[str, list[str]]:
        ids = [f"{prefix}{i}" for i in range(len(texts))]
        records = [Record(id=ids[n], text=t, metadata={"n": n}) for n, t in enumerate(texts)]
        return await self.resources.pipeline.submit_job(TENANT, upserts=records), ids


def role_env(rabbit_url: str, queue_name: str, database_url: str) -> dict[str, str]:
    """What every role (API and workers) shares: broker, queue, database, secrets."""
    return {
        "VECPIPE_QUEUE": "rabbitmq",
        "VECPIPE_RABBITMQ_URL": rabbit_url,
        "VECPIPE_RABBITMQ_QUEUE": queue_name,
        "VECPIPE_DATABASE_URL": database_url,
        "VECPIPE_STORE": "edge",
        "VECPIPE_SECRET_KEY": SECRET_KEY,
        "VECPIPE_GATEWAY_ALLOWLIST": "127.0.0.1",
        "VECPIPE_RETRY_MAX_SECONDS": str(MAX_RETRY_SECONDS),
        "VECPIPE_WORKER_BATCH_SIZE": "32",
        "VECPIPE_SHUTDOWN_GRACE_SECONDS": "5",
        "VECPIPE_LOG_LEVEL": "INFO",
    }


def settings_from(env: dict[str, str], data_dir: Path) -> Settings:
    fields = {k.removeprefix("VECPIPE_").lower(): v for k, v in env.items()}
    return Settings.model_validate({**fields, "data_dir": data_dir})


@pytest.fixture
async def cluster(rabbitmq_url: str, gateway: Gateway, tmp_path: Path) -> AsyncIterator[Cluster]:  # noqa: F811
    queue_name = f"vecpipe-test-scaleout-{uuid.uuid4().hex[:12]}"
    gateway.control.api_key = GATEWAY_KEY
    try:
        async with temporary_postgres_database() as database_url:
            env = role_env(rabbitmq_url, queue_name, database_url)
            async with open_resources(settings_from(env, tmp_path / "api")) as resources:
                config = _gateway_config(gateway)
                space = await store_ai_config(resources.pipeline, TENANT, config)
                cluster = Cluster(env, resources, gateway, tmp_path, queue_name, space)
                try:
                    yield cluster
                finally:
                    for worker in cluster.workers:
                        worker.kill()
    finally:
        await delete_topology(rabbitmq_url, [Topology.for_queue(queue_name, MAX_RETRY_SECONDS)])


def _gateway_config(gateway: Gateway) -> dict[str, object]:
    return {
        "primary": {
            "kind": "openai",
            "base_url": gateway.base_url,
            "model": "scaleout-embed",
            "api_key": GATEWAY_KEY,
            "dimensions": gateway.control.default_dimension,
        }
    }


async def queue_counts(cluster: Cluster) -> tuple[int, int]:
    """(ready messages, consumers) of the work queue, as the broker reports them."""
    async with await aio_pika.connect(cluster.env["VECPIPE_RABBITMQ_URL"]) as connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(cluster.queue_name, passive=True)
        result = queue.declaration_result
        return int(result.message_count or 0), int(result.consumer_count or 0)


async def wait_for_consumers(cluster: Cluster, count: int) -> None:
    async def ready() -> bool:
        return (await queue_counts(cluster))[1] >= count

    await wait_until_async(ready, 60, f"{count} consumers", workers=tuple(cluster.workers))


async def wait_for_progress(
    cluster: Cluster, job_id: str, counted: int, workers: tuple[WorkerProcess, ...]
) -> None:
    async def progressed() -> bool:
        status = await cluster.job(job_id)
        return status.done + status.unchanged + status.failed >= counted

    await wait_until_async(progressed, 60, f"{counted} records counted", workers=workers)


async def wait_for_completion(
    cluster: Cluster, job_id: str, workers: tuple[WorkerProcess, ...]
) -> JobStatus:
    async def completed() -> bool:
        return (await cluster.job(job_id)).status == "completed"

    await wait_until_async(completed, 90, "completed job", interval=0.1, workers=workers)
    return await cluster.job(job_id)


async def stored_ids(data_dir: Path, space: EmbeddingSpace, ids: Sequence[str]) -> dict[str, str]:
    """Record id -> stored text, in one (stopped) worker's Edge store."""
    async with EdgeStore(data_dir) as store:
        found = await store.stored_records(space, TENANT, ids)
    return {record_id: stored.text for record_id, stored in found.items()}


async def assert_nothing_left(cluster: Cluster) -> None:
    assert await cluster.resources.queue.depth() == 0
    assert await cluster.resources.queue.list_dead_letters() == []


def assert_accounted(status: JobStatus, total: int) -> None:
    assert status.status == "completed", status
    assert status.total == total
    assert status.failed == 0, status
    assert status.done + status.unchanged + status.failed == total, status


@scaleout
async def test_three_workers_one_sigkilled_mid_job_lose_nothing(cluster: Cluster) -> None:
    started = time.monotonic()
    texts = english_paragraphs(3000)
    workers = [cluster.worker(f"worker-{n}").start() for n in range(3)]
    victim, survivors = workers[0], tuple(workers[1:])
    await wait_for_consumers(cluster, 3)

    job_id, ids = await cluster.submit(texts, "rec-")
    submitted = time.monotonic()

    await wait_for_progress(cluster, job_id, 600, tuple(workers))
    cluster.gateway.control.latency_seconds = HOLD_SECONDS  # nothing new completes meanwhile
    assert (await cluster.job(job_id)).status != "completed"
    # Messages still wait, so every consumer's prefetch window is full: the victim dies
    # holding unacknowledged messages, which the broker must hand to the survivors.
    assert (await queue_counts(cluster))[0] > 0
    victim.kill()
    cluster.gateway.control.latency_seconds = 0.0

    status = await wait_for_completion(cluster, job_id, survivors)
    finished = time.monotonic()
    assert_accounted(status, 3000)
    assert [w.terminate() for w in survivors] == [0, 0]
    await assert_nothing_left(cluster)

    stores = [await stored_ids(cluster.tmp / w.name, cluster.space, ids) for w in workers]
    union = {record_id: text for store in stores for record_id, text in store.items()}
    assert set(union) == set(ids)  # every record is in some worker's store...
    assert all(union[i] == t for i, t in zip(ids, texts, strict=True))  # ...with its text
    assert stores[0], "the victim had stored records before it died"
    print(
        f"\n3 workers, 3000 records: job {finished - submitted:.1f}s, test "
        f"{time.monotonic() - started:.1f}s; records per store {[len(s) for s in stores]} "
        f"(sum {sum(map(len, stores))}); gateway inputs {cluster.gateway.control.inputs}; "
        f"status {status.done} done, {status.unchanged} unchanged"
    )


CONNECTION_NAME = re.compile(r'\{"connection_name","([^"]*)"\}')


async def close_connections(prefix: str, keep: str) -> int:
    """Broker-side close of every connection named `prefix…`, except the one named `keep`."""
    listing = await rabbitmqctl(
        "list_connections", "pid", "client_properties", "--no-table-headers"
    )
    victims = []
    for line in listing.splitlines():
        match = CONNECTION_NAME.search(line)
        if match and match.group(1).startswith(prefix) and match.group(1) != keep:
            victims.append(line.split("\t", 1)[0])
    for pid in victims:
        await rabbitmqctl("close_connection", pid, "vecpipe scale-out test")
    return len(victims)


@scaleout
async def test_worker_reconnects_after_the_broker_closes_its_connection(cluster: Cluster) -> None:
    texts = english_paragraphs(1000)
    worker = cluster.worker("worker").start()
    await wait_for_consumers(cluster, 1)
    job_id, ids = await cluster.submit(texts, "conn-")

    await wait_for_progress(cluster, job_id, 200, (worker,))
    cluster.gateway.control.latency_seconds = HOLD_SECONDS  # a batch is in flight at the close
    assert (await cluster.job(job_id)).status != "completed"
    api_queue = cluster.resources.queue
    assert isinstance(api_queue, RabbitQueue)
    closed = await close_connections(f"vecpipe:{cluster.queue_name}:", api_queue.connection_name)
    assert closed == 1
    assert (await cluster.job(job_id)).status != "completed"  # the close came mid-job
    cluster.gateway.control.latency_seconds = 0.0

    status = await wait_for_completion(cluster, job_id, (worker,))
    assert_accounted(status, 1000)
    assert worker.terminate() == 0
    await assert_nothing_left(cluster)
    stored = await stored_ids(cluster.tmp / worker.name, cluster.space, ids)
    assert stored == dict(zip(ids, texts, strict=True))
    print(f"\nreconnect: {status.done} done, {status.unchanged} unchanged")


def test_compose_file_describes_every_role() -> None:
    """Docker cannot run here: this checks the file parses and wires each role's environment."""
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert {"rabbitmq", "postgres", "qdrant", "api", "worker"} <= set(services)
    api, worker = services["api"], services["worker"]
    assert api["command"] == ["serve", "--no-worker"]
    assert worker["command"] == ["worker"]
    assert int(worker["deploy"]["replicas"]) >= 2
    for role in (api, worker):
        env = role["environment"]
        assert env["VECPIPE_QUEUE"] == "rabbitmq" and env["VECPIPE_STORE"] == "qdrant"
        assert env["VECPIPE_RABBITMQ_URL"].startswith("amqp://")
        assert env["VECPIPE_DATABASE_URL"].startswith("postgresql+asyncpg://")
        assert env["VECPIPE_QDRANT_URL"].startswith("http://qdrant:")
        assert "${" in env["VECPIPE_SECRET_KEY"]  # from .env, never written in the file
        assert set(role["depends_on"]) == {"rabbitmq", "postgres", "qdrant"}
        assert role["build"]["dockerfile"] == "deploy/Dockerfile"
    assert "${" in api["environment"]["VECPIPE_ADMIN_TOKEN"]
    assert api["environment"]["VECPIPE_HOST"] == "0.0.0.0"
    assert "VECPIPE_ADMIN_TOKEN" not in worker["environment"]  # workers serve no HTTP
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in dockerfile and '"torch==2.13.0"' in dockerfile
