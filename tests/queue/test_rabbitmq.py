"""RabbitMQ backend: the shared contract plus what only a broker can show."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import aio_pika
import pytest
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue

from tests.queue.conftest import (
    RabbitFactory,
    close_connection_named,
    delete_topology,
    queue_types,
)
from tests.queue.contract import LONG_LEASE, MessageQueueContract, QueueFactory, collect, eventually
from vecpipe.errors import ClosedError, ConfigError, QueueError
from vecpipe.queue.base import Delivery
from vecpipe.queue.rabbitmq import RabbitQueue
from vecpipe.queue.rabbitmq.topology import (
    Topology,
    copy_headers,
    dead_letter_from,
    delivery_attempts,
    message_key,
)

pytestmark = pytest.mark.rabbitmq

PATIENCE = 10.0


class TestRabbitQueueContract(MessageQueueContract):
    @pytest.fixture
    async def queue_factory(self, rabbit_factory: RabbitFactory) -> AsyncIterator[QueueFactory]:
        async def open_queue(*, lease_seconds: float = LONG_LEASE) -> RabbitQueue:
            return await rabbit_factory()  # the broker redelivers when a connection closes

        yield open_queue


async def test_topology_is_a_quorum_queue_with_dead_letter_and_wait_queues(
    rabbit_factory: RabbitFactory,
) -> None:
    queue = await rabbit_factory(max_retry_delay=30.0)
    top = queue.topology
    assert top.buckets == (1, 2, 5, 10, 30.0)
    rows = await queue_types(top.all_queues)

    assert set(rows) == set(top.all_queues)
    assert all(row["durable"] for row in rows.values())
    assert rows[top.queue]["type"] == "quorum"
    main_args = dict((k, v) for k, _, v in rows[top.queue]["arguments"])
    assert main_args["x-dead-letter-exchange"] == top.dlx
    assert rows[top.dlq]["type"] == "quorum"
    wait_args = dict((k, v) for k, _, v in rows[top.wait_queue(5)]["arguments"])
    assert wait_args["x-message-ttl"] == 5000
    assert wait_args["x-dead-letter-routing-key"] == top.queue

    again = await rabbit_factory(max_retry_delay=30.0)  # declaring twice is harmless
    await again.publish([b"x"])
    assert await eventually(queue.depth, 1, PATIENCE) == 1


def test_delay_buckets_round_up_and_cap() -> None:
    top = Topology.for_queue("q", 300.0)
    assert top.bucket_for(0) is None
    assert top.bucket_for(0.2) == 1
    assert top.bucket_for(2.5) == 5
    assert top.bucket_for(300) == 300
    assert top.bucket_for(10_000) == 300
    assert Topology.for_queue("q", 0.5).buckets == (0.5,)
    with pytest.raises(ConfigError):
        Topology.for_queue("q", 0)


def test_copies_drop_broker_headers_and_count_attempts() -> None:
    delivered = {"x-delivery-count": 2, "x-vecpipe-attempts": 3, "x-death": [], "app": "kept"}
    assert delivery_attempts(delivered) == 6
    assert delivery_attempts({}) == 1
    copy = copy_headers(delivered, attempts=6, reason="boom")
    assert copy == {"app": "kept", "x-vecpipe-attempts": 6, "x-vecpipe-reason": "boom"}
    assert delivery_attempts(copy) == 7


def test_dead_letter_descriptions() -> None:
    assert message_key(None, b"body").startswith("sha256:")
    assert message_key("m-1", b"body") == "m-1"
    died = datetime(2026, 1, 2, tzinfo=UTC)
    broker = dead_letter_from(
        None, b"b", {"x-death": [{"reason": "rejected", "time": died}], "x-delivery-count": 4}
    )
    assert (broker.reason, broker.failed_at, broker.attempts) == ("broker: rejected", died, 1)
    ours = dead_letter_from(
        "m-2",
        b"b",
        {
            "x-vecpipe-reason": "bad",
            "x-vecpipe-attempts": 5,
            "x-vecpipe-failed-at": died.isoformat(),
        },
    )
    assert (ours.id, ours.reason, ours.attempts, ours.failed_at) == ("m-2", "bad", 5, died)


async def test_conflicting_existing_queue_is_a_config_error(
    rabbitmq_url: str, rabbit_queue_name: str
) -> None:
    async with await aio_pika.connect(rabbitmq_url) as connection:
        channel = await connection.channel()
        await channel.declare_queue(rabbit_queue_name, durable=True)  # a classic queue
    try:
        with pytest.raises(ConfigError, match="other arguments"):
            await RabbitQueue(rabbitmq_url, rabbit_queue_name).open()
    finally:
        await delete_topology(rabbitmq_url, [Topology.for_queue(rabbit_queue_name, 300.0)])


async def test_unreachable_broker_raises_queue_error_without_the_password() -> None:
    queue = RabbitQueue("amqp://vecpipe:s3cret@127.0.0.1:1/", "q", operation_timeout=5.0)
    assert "s3cret" not in repr(queue)
    with pytest.raises(QueueError) as raised:
        await queue.open()
    assert "s3cret" not in str(raised.value)
    with pytest.raises(ClosedError):
        await queue.publish([b"x"])


async def test_unroutable_publish_raises(rabbit_factory: RabbitFactory, rabbitmq_url: str) -> None:
    queue = await rabbit_factory()
    await delete_topology(rabbitmq_url, [queue.topology])

    with pytest.raises(QueueError, match="unroutable"):
        await queue.publish([b"nowhere to go"])


async def test_failed_retry_publish_keeps_the_original(
    rabbit_factory: RabbitFactory, rabbitmq_url: str
) -> None:
    queue = await rabbit_factory(max_retry_delay=0.5)
    await queue.publish([b"keep me"])
    (delivery,) = await collect(queue, 1, patience=PATIENCE)
    async with await aio_pika.connect(rabbitmq_url) as connection:
        channel = await connection.channel()
        await channel.queue_delete(queue.topology.wait_queue(0.5))

    with pytest.raises(QueueError, match="unroutable"):
        await queue.retry(delivery, 0.5, "flaky")
    await queue.release([delivery])  # a no-op, had the failed retry acked it
    (again,) = await collect(queue, 1, patience=PATIENCE)
    assert (again.body, again.attempts) == (b"keep me", 1)
    await queue.ack([again])


async def test_unacked_message_goes_to_another_consumer_when_the_connection_drops(
    rabbit_factory: RabbitFactory,
) -> None:
    # A slow reconnect: the broker must hand the message to the survivor meanwhile.
    victim = await rabbit_factory(reconnect_interval=30.0)
    await victim.publish([b"unfinished"])
    (taken,) = await collect(victim, 1, patience=PATIENCE)
    survivor = await rabbit_factory()
    assert await survivor.receive(1, timeout=0) == []  # consuming from now on

    assert await close_connection_named(victim.connection_name) == 1
    (again,) = await collect(survivor, 1, patience=PATIENCE)
    assert again.body == b"unfinished"
    assert again.attempts == taken.attempts + 1

    # lost with its channel, once the client has seen the close (the broker may redeliver first)
    lost = await eventually(lambda: victim.extend([taken], LONG_LEASE), [taken], PATIENCE)
    assert lost == [taken]
    await victim.ack([taken])  # its channel is gone: a logged no-op, not an error
    await survivor.ack([again])
    await victim.aclose()  # closing while it waits to reconnect
    assert await eventually(survivor.depth, 0, PATIENCE) == 0


async def test_connection_loss_mid_stream_loses_nothing(rabbit_factory: RabbitFactory) -> None:
    queue = await rabbit_factory(prefetch=8)
    first = [b"a%02d" % i for i in range(30)]
    later = [b"b%02d" % i for i in range(10)]
    await queue.publish(first)
    acked: set[bytes] = set()
    stale: list[Delivery] = []

    batch = await collect(queue, 5, patience=PATIENCE)
    await queue.ack(batch)
    acked.update(d.body for d in batch)
    stale = await collect(queue, 3, patience=PATIENCE)  # in hand when the connection drops

    assert await close_connection_named(queue.connection_name) == 1
    await queue.publish(later)  # waits for the reconnect, then is confirmed
    await queue.ack(stale)  # no-op: the broker requeued them

    deadline = time.monotonic() + PATIENCE
    while acked != set(first + later) and time.monotonic() < deadline:
        got = await queue.receive(10, timeout=0.5)
        await queue.ack(got)
        acked.update(d.body for d in got)
    assert acked == set(first + later)
    assert await eventually(queue.depth, 0, PATIENCE) == 0


async def test_while_reconnecting_receive_waits_and_publish_fails_in_time(
    rabbit_factory: RabbitFactory,
) -> None:
    queue = await rabbit_factory(reconnect_interval=30.0, operation_timeout=0.5)
    assert await queue.receive(1, timeout=0) == []  # consuming
    assert await close_connection_named(queue.connection_name) == 1

    with pytest.raises(QueueError):
        await queue.publish([b"no broker"])
    assert await queue.receive(1, timeout=0.2) == []
    with pytest.raises(QueueError):
        await queue.depth()


async def test_retry_counts_attempts_and_carries_the_reason(
    rabbit_factory: RabbitFactory,
) -> None:
    queue = await rabbit_factory(max_retry_delay=0.3)
    await queue.publish([b"flaky"])
    (first,) = await collect(queue, 1, patience=PATIENCE)
    await queue.retry(first, 0.3, "503 from gateway")
    (second,) = await collect(queue, 1, patience=PATIENCE)
    assert second.attempts == 2
    assert second.tag.headers["x-vecpipe-reason"] == "503 from gateway"
    await queue.retry(second, 0, "again, at once")
    (third,) = await collect(queue, 1, patience=PATIENCE)
    assert third.attempts == 3
    await queue.dead_letter(third, "gave up")

    (letter,) = await queue.list_dead_letters()
    assert (letter.body, letter.attempts, letter.reason) == (b"flaky", 3, "gave up")
    assert letter.failed_at is not None


async def test_close_gives_back_prefetched_messages_without_counting(
    rabbit_factory: RabbitFactory,
) -> None:
    early = await rabbit_factory(prefetch=10)
    await early.publish([b"%d" % i for i in range(5)])
    (one,) = await early.receive(1, timeout=PATIENCE)  # the others are prefetched
    await early.ack([one])
    await early.aclose()

    late = await rabbit_factory()
    rest = await collect(late, 4, patience=PATIENCE)
    assert sorted(d.body for d in [*rest, one]) == [b"%d" % i for i in range(5)]
    assert all(d.attempts == 1 for d in rest)
    await late.ack(rest)


async def test_dead_letters_listing_does_not_consume_them(rabbit_factory: RabbitFactory) -> None:
    queue = await rabbit_factory()
    await queue.publish([b"x", b"y"])
    for delivery in await collect(queue, 2, patience=PATIENCE):
        await queue.dead_letter(delivery, "bad")
    assert await eventually(_dead_count(queue), 2, PATIENCE) == 2
    for _ in range(3):
        assert sorted(d.body for d in await queue.list_dead_letters()) == [b"x", b"y"]
    assert [d.body for d in await queue.list_dead_letters(limit=1)] in ([b"x"], [b"y"])


async def test_broker_dead_lettered_messages_are_listed_and_replayable(
    rabbit_factory: RabbitFactory, rabbitmq_url: str
) -> None:
    queue = await rabbit_factory()
    top = queue.topology
    async with await aio_pika.connect(rabbitmq_url) as connection:
        channel = await connection.channel()
        # An application's own message, rejected by some consumer.
        await channel.default_exchange.publish(
            aio_pika.Message(b"foreign", delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            routing_key=top.queue,
        )
        work = await channel.get_queue(top.queue, ensure=False)
        message = await _get_eventually(work)
        await message.reject(requeue=False)  # the broker dead-letters it through the DLX

    assert await eventually(_dead_letters(queue), [b"foreign"], PATIENCE) == [b"foreign"]
    (letter,) = await queue.list_dead_letters()
    assert letter.reason == "broker: rejected"
    assert await queue.replay_dead_letters([letter.id]) == 1
    (again,) = await collect(queue, 1, patience=PATIENCE)
    assert (again.body, again.attempts) == (b"foreign", 1)
    await queue.ack([again])


async def test_receive_waiting_when_closed_raises_closed(rabbit_factory: RabbitFactory) -> None:
    queue = await rabbit_factory()
    waiting = asyncio.create_task(queue.receive(1, timeout=PATIENCE))
    await asyncio.sleep(0.1)
    await queue.aclose()
    with pytest.raises(ClosedError):
        await waiting


async def _get_eventually(queue: AbstractQueue) -> AbstractIncomingMessage:
    deadline = time.monotonic() + PATIENCE
    while (message := await queue.get(no_ack=False, fail=False)) is None:
        assert time.monotonic() < deadline, "message never arrived"
        await asyncio.sleep(0.02)
    return message


def _dead_count(queue: RabbitQueue) -> Callable[[], Awaitable[int]]:
    async def count() -> int:
        return len(await queue.list_dead_letters())

    return count


def _dead_letters(queue: RabbitQueue) -> Callable[[], Awaitable[list[bytes]]]:
    async def bodies() -> list[bytes]:
        return [d.body for d in await queue.list_dead_letters()]

    return bodies
