"""`vecpipe dlq list | replay` against a real `vecpipe worker`, on both queue backends.

Messages are published straight to the queue, as an application would: a record the gateway
refuses once (dead-lettered with the gateway's reason, fixable), then poison messages (invalid
JSON, an unknown op) between two good records. The worker dead-letters the poison with its
reason and keeps going; the CLI lists the dead letters and requeues them, by id or all.

The worker owns its data dir (datadir.py): on SQLite the CLI, which opens the queue there,
is refused while the worker runs, so it runs between workers; on RabbitMQ it opens only the
broker's queue and works beside the worker. `--url` against `serve`: tests/cli/test_remote.py.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from typer.testing import CliRunner

from tests.queue.conftest import delete_topology, rabbitmq_url  # noqa: F401
from tests.support.gateway import Fault, Gateway
from tests.support.processes import (
    Observer,
    WorkerProcess,
    observing,
    store_ai_config,
    wait_until_async,
)
from vecpipe.cli import app
from vecpipe.core.ingest import Op
from vecpipe.core.pipeline import message_for
from vecpipe.db.jobs import JobStatus
from vecpipe.models import Record
from vecpipe.queue.base import MessageQueue
from vecpipe.queue.rabbitmq.topology import Topology
from vecpipe.resources import open_resources
from vecpipe.settings import Settings

TENANT = "dlq"
SECRET_KEY = "dlq test secret, not a real one"
MAX_RETRY_SECONDS = 5.0
INVALID_JSON = b'{"v": 1, "op": "upsert", "tenant_id": "dlq", '
UNKNOWN_OP = json.dumps({"v": 1, "op": "explode", "tenant_id": TENANT, "record_id": "x"}).encode()

pytestmark = pytest.mark.slow


@dataclass
class Backend:
    name: str
    env: dict[str, str]
    publish: Callable[[MessageQueue, Sequence[bytes]], Awaitable[None]]

    @property
    def settings(self) -> Settings:
        fields = {k.removeprefix("VECPIPE_").lower(): v for k, v in self.env.items()}
        return Settings.model_validate(fields)


@pytest.fixture(params=["sqlite", pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    env = {
        "VECPIPE_DATA_DIR": str(tmp_path / "data"),
        "VECPIPE_SECRET_KEY": SECRET_KEY,
        "VECPIPE_GATEWAY_ALLOWLIST": "127.0.0.1",
        "VECPIPE_RETRY_MAX_SECONDS": str(MAX_RETRY_SECONDS),
        "VECPIPE_LOG_LEVEL": "INFO",
        "VECPIPE_QUEUE": request.param,
    }
    if request.param == "sqlite":
        yield Backend("sqlite", env, _publish_sqlite)
        return
    url: str = request.getfixturevalue("rabbitmq_url")
    queue_name = f"vecpipe-test-dlq-{uuid.uuid4().hex[:12]}"
    env |= {"VECPIPE_RABBITMQ_URL": url, "VECPIPE_RABBITMQ_QUEUE": queue_name}
    try:
        yield Backend("rabbitmq", env, lambda _, bodies: _publish_amqp(url, queue_name, bodies))
    finally:
        await delete_topology(url, [Topology.for_queue(queue_name, MAX_RETRY_SECONDS)])


async def _publish_sqlite(queue: MessageQueue, bodies: Sequence[bytes]) -> None:
    await queue.publish(bodies)


async def _publish_amqp(url: str, queue_name: str, bodies: Sequence[bytes]) -> None:
    """Plain AMQP, no vecpipe headers or message id: what another application would send."""
    async with await aio_pika.connect(url) as connection:
        channel = await connection.channel(publisher_confirms=True)
        for body in bodies:
            message = aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
            await channel.default_exchange.publish(message, routing_key=queue_name, mandatory=True)


def upsert(record_id: str, job_id: str | None = None) -> bytes:
    record = Record(id=record_id, text=f"the text of {record_id}", metadata={"kind": "good"})
    return message_for(Op(TENANT, record_id, record), job_id)


async def vecpipe(env: dict[str, str], *args: str) -> list[dict[str, Any]]:
    """Run `vecpipe ARGS` in-process (off the loop: it runs its own); its JSON output lines."""
    result = await asyncio.to_thread(CliRunner().invoke, app, list(args), env=env)
    assert result.exit_code == 0, (result.output, result.exception)
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


async def refused(env: dict[str, str], *args: str) -> str:
    """Run `vecpipe ARGS` where the data dir is owned: exit 2, the lock's message."""
    result = await asyncio.to_thread(CliRunner().invoke, app, list(args), env=env)
    assert result.exit_code == 2, (result.output, result.exception)
    return " ".join(result.stderr.split())


async def wait_for_dead_letters(queue: MessageQueue, count: int, worker: WorkerProcess) -> None:
    async def reached() -> bool:
        return len(await queue.list_dead_letters()) == count

    await wait_until_async(reached, 30, f"{count} dead letters", workers=(worker,))


async def wait_for_job(observer: Observer, job_id: str, worker: WorkerProcess) -> JobStatus:
    async def completed() -> bool:
        return (await observer.job(TENANT, job_id)).status == "completed"

    await wait_until_async(completed, 30, "completed job", workers=(worker,))
    return await observer.job(TENANT, job_id)


def embedded(gateway: Gateway, text: str) -> int:
    """How many requests the gateway received with `text` among their inputs."""
    return sum(text in json.dumps(body.get("input")) for body in gateway.control.bodies)


def _gateway_config(gateway: Gateway) -> dict[str, object]:
    primary = {"kind": "openai", "base_url": gateway.base_url, "model": "dlq-embed"}
    return {"primary": {**primary, "dimensions": gateway.control.default_dimension}}


async def test_poison_is_dead_lettered_and_the_cli_lists_and_replays_it(
    backend: Backend, gateway: Gateway, tmp_path: Path
) -> None:
    async with open_resources(backend.settings) as resources:  # then the workers own it
        await store_ai_config(resources.pipeline, TENANT, _gateway_config(gateway))
    logs = tmp_path / "logs"
    async with observing(backend.settings) as observer:
        queue = observer.queue
        with WorkerProcess("first", backend.env, logs) as worker:
            # a record the gateway refuses once: dead-lettered with the gateway's reason
            gateway.control.inject(Fault.http_status(400, message="refused, try again later"))
            await backend.publish(queue, [upsert("fixable")])
            await wait_for_dead_letters(queue, 1, worker)

            # poison between two good records of a job: the worker keeps going
            job_id = await observer.jobs.create(
                TENANT, [("good-1", "upsert"), ("good-2", "upsert")]
            )
            good = [upsert("good-1", job_id), upsert("good-2", job_id)]
            await backend.publish(queue, [good[0], INVALID_JSON, UNKNOWN_OP, good[1]])
            status = await wait_for_job(observer, job_id, worker)
            assert (status.done, status.failed) == (2, 0)
            await wait_for_dead_letters(queue, 3, worker)
            if backend.name == "sqlite":  # the queue is in the worker's data dir
                said = await refused(backend.env, "dlq", "list")
                assert f"in use by process {worker.process.pid}" in said  # type: ignore[union-attr]
            else:  # the broker's queue: no data dir to own
                assert len(await vecpipe(backend.env, "dlq", "list")) == 3
            assert worker.terminate() == 0  # drains what it holds, then exits 0

        listed = await vecpipe(backend.env, "dlq", "list")
        letters = {letter["body"]: letter for letter in listed}
        assert len(letters) == 3
        fixable = next(v for k, v in letters.items() if '"fixable"' in k)
        assert "HTTP 400" in fixable["reason"] and "refused" in fixable["reason"]
        assert letters[INVALID_JSON.decode()]["reason"] == "invalid JSON"
        assert "op" in letters[UNKNOWN_OP.decode()]["reason"]
        assert all(letter["attempts"] == 1 for letter in letters.values())

        # requeue one by id: the gateway takes it this time
        assert await vecpipe(backend.env, "dlq", "replay", fixable["id"]) == [{"replayed": 1}]
        remaining = await vecpipe(backend.env, "dlq", "list")
        assert {letter["body"] for letter in remaining} == {
            INVALID_JSON.decode(),
            UNKNOWN_OP.decode(),
        }
        with WorkerProcess("second", backend.env, logs) as worker:

            def fixable_embedded() -> bool:
                return embedded(gateway, "the text of fixable") == 2

            await wait_until_async(fixable_embedded, 30, "a second try", workers=(worker,))
            assert worker.terminate() == 0

        # requeue the rest: still poison, so back they come with their reasons
        assert await vecpipe(backend.env, "dlq", "replay") == [{"replayed": 2}]
        with WorkerProcess("third", backend.env, logs) as worker:
            await wait_for_dead_letters(queue, 2, worker)
            assert worker.terminate() == 0
        again = await vecpipe(backend.env, "dlq", "list")
        assert sorted(letter["reason"] for letter in again) == sorted(
            letter["reason"] for letter in remaining
        )
    async with open_resources(backend.settings) as resources:
        assert await resources.queue.depth() == 0
        for record_id in ("fixable", "good-1", "good-2"):
            stored = await resources.pipeline.get_record(TENANT, record_id)
            assert stored.text == f"the text of {record_id}"
