"""RabbitMQ fixtures: a reachable broker (or a skip), unique queues, and their cleanup.

Tests that need the broker skip when it is unreachable, except under `CI=true`, where a missing
broker is a failure. Every test gets its own queue name; whatever a factory opened is closed
and every queue and exchange of that name deleted afterwards.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aio_pika
import pytest
from yarl import URL

from vecpipe.queue.rabbitmq import RabbitQueue
from vecpipe.queue.rabbitmq.topology import Topology

RABBITMQ_URL = os.environ.get("VECPIPE_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")

RabbitFactory = Callable[..., Awaitable[RabbitQueue]]


def _reachable(url: str) -> bool:
    parsed = URL(url)
    try:
        with socket.create_connection((parsed.host or "127.0.0.1", parsed.port or 5672), 2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def rabbitmq_url() -> str:
    if not _reachable(RABBITMQ_URL):
        message = f"RabbitMQ is not reachable at {URL(RABBITMQ_URL).with_password(None)}"
        if os.environ.get("CI") == "true":
            pytest.fail(message + " (CI=true: the broker must run)", pytrace=False)
        pytest.skip(message)
    return RABBITMQ_URL


async def delete_topology(url: str, topologies: list[Topology]) -> None:
    """Delete the queues and dead-letter exchanges (deleting a missing one is not an error)."""
    async with await aio_pika.connect(url) as connection:
        channel = await connection.channel()
        for topology in topologies:
            for name in topology.all_queues:
                await channel.queue_delete(name)
            await channel.exchange_delete(topology.dlx)


@pytest.fixture
def rabbit_queue_name() -> str:
    return f"vecpipe-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def rabbit_factory(rabbitmq_url: str, rabbit_queue_name: str) -> AsyncIterator[RabbitFactory]:
    """Opens RabbitQueue handles on this test's queue (or another name); cleans up after."""
    opened: list[RabbitQueue] = []

    async def make(queue_name: str | None = None, **kwargs: Any) -> RabbitQueue:
        kwargs.setdefault("reconnect_interval", 0.2)
        kwargs.setdefault("max_retry_delay", 5.0)
        queue = RabbitQueue(rabbitmq_url, queue_name or rabbit_queue_name, **kwargs)
        opened.append(queue)
        return await queue.open()

    yield make
    for queue in reversed(opened):
        await queue.aclose()
    topologies = [q.topology for q in opened] or [Topology.for_queue(rabbit_queue_name, 5.0)]
    await delete_topology(rabbitmq_url, topologies)


async def rabbitmqctl(*args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        "rabbitmqctl",
        "-q",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {args[0]} failed: {err.decode(errors='replace')}")
    return out.decode()


async def close_connection_named(name: str, reason: str = "vecpipe test") -> int:
    """Force-close (broker side) every connection whose client-provided name is `name`."""
    # The tabular output has the pid in the form close_connection accepts (JSON's does not).
    listing = await rabbitmqctl(
        "list_connections", "pid", "client_properties", "--no-table-headers"
    )
    needle = json.dumps(["connection_name", name])[1:-1].replace(", ", ",")
    pids = [line.split("\t", 1)[0] for line in listing.splitlines() if "{" + needle + "}" in line]
    for pid in pids:
        await rabbitmqctl("close_connection", pid, reason)
    return len(pids)


async def queue_types(names: list[str]) -> dict[str, dict[str, Any]]:
    listing = await rabbitmqctl(
        "list_queues", "name", "type", "durable", "arguments", "--formatter", "json"
    )
    return {row["name"]: row for row in json.loads(listing or "[]") if row["name"] in names}
