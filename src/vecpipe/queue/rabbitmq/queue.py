"""The RabbitMQ queue backend (aio-pika): the scale-out `MessageQueue`.

One robust connection (it reconnects after a broker restart or a forced close, and restores the
topology and the consumer) carries a publishing channel with publisher confirms
(`publisher.py`) and a consuming channel with QoS `prefetch` (`consumer.py`).
Names, arguments and headers: `topology.py`. Dead letters and depth: `dlq.py`.

Delivery is at-least-once:

- `retry`, `dead_letter` and `release` publish their copy first (confirmed, `mandatory`) and
  ack the original after; if the publish fails the original stays with the caller.
- A delivery whose channel died (connection lost) has already been requeued by the broker:
  settling it is a logged no-op, like a lease that ran out in the SQLite backend.
- `release` (and `aclose`, for prefetched messages never handed out) republishes a copy with
  the attempts header lowered by one instead of `basic.nack`: a quorum queue counts a requeue
  as a delivery (`x-delivery-count`), which would spend one of the message's attempts. Only if
  that publish fails does it fall back to a counting nack. Messages on a connection that dies
  are counted by the broker all the same, prefetched ones included.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Self

import aio_pika
import aiormq.abc
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustChannel, AbstractRobustConnection
from aio_pika.exceptions import AMQPError
from yarl import URL

from vecpipe.errors import ClosedError, QueueError, ValidationError
from vecpipe.lifecycle import AsyncResource
from vecpipe.queue.base import DeadLetter, Delivery, Purged
from vecpipe.queue.rabbitmq import dlq
from vecpipe.queue.rabbitmq.amqp import amqp_errors, is_live, safe_url, settle, wait_ready
from vecpipe.queue.rabbitmq.consumer import Consumer
from vecpipe.queue.rabbitmq.publisher import Outgoing, Publisher, copy_message, new_message
from vecpipe.queue.rabbitmq.topology import (
    Topology,
    copy_headers,
    delivery_attempts,
    now_iso,
    truncate_reason,
)

log = logging.getLogger(__name__)

CLOSE_TIMEOUT = 5.0  # aclose gives up on the broker after this, so shutdown stays bounded


class RabbitQueue(AsyncResource):
    """`MessageQueue` on a RabbitMQ quorum queue; use as ``async with RabbitQueue(...) as q``."""

    def __init__(
        self,
        url: str,
        queue_name: str,
        *,
        prefetch: int = 128,
        max_retry_delay: float = 300.0,
        connection_name: str | None = None,
        reconnect_interval: float = 2.0,
        operation_timeout: float = 30.0,
    ) -> None:
        self._url = url
        self._topology = Topology.for_queue(queue_name, max_retry_delay)
        self._prefetch = max(1, prefetch)
        self.connection_name = connection_name or f"vecpipe:{queue_name}:{uuid.uuid4().hex[:8]}"
        self._reconnect_interval = reconnect_interval
        self._timeout = operation_timeout
        self._connection: AbstractRobustConnection | None = None
        self._pub: AbstractRobustChannel | None = None
        self._sub: AbstractRobustChannel | None = None
        self._publisher: Publisher | None = None
        self._consumer: Consumer | None = None
        self._stale = 0  # deliveries found without their channel, not yet logged

    def __repr__(self) -> str:
        return f"RabbitQueue({safe_url(self._url)!r}, {self._topology.queue!r})"

    @property
    def topology(self) -> Topology:
        return self._topology

    # -- lifecycle (lifecycle.AsyncResource) -------------------------------------------------

    async def open(self) -> Self:
        await self._open_once()
        return self

    async def _open(self) -> None:
        """Connect, open both channels and declare the topology (idempotent on the broker)."""
        async with amqp_errors(f"connect to RabbitMQ at {safe_url(self._url)}"):
            self._connection = await aio_pika.connect_robust(
                URL(self._url),
                client_properties={"connection_name": self.connection_name},
                reconnect_interval=self._reconnect_interval,
                timeout=self._timeout,
            )
            self._pub = await self._connection.channel(
                publisher_confirms=True, on_return_raises=True
            )
            self._sub = await self._connection.channel(publisher_confirms=False)
            await self._sub.set_qos(prefetch_count=self._prefetch)
            self._publisher = await self._declare_topology(self._pub)
            work_queue = await self._sub.declare_queue(
                self._topology.queue, durable=True, arguments=self._topology.main_arguments()
            )
            self._consumer = Consumer(self._sub, work_queue, self._timeout)

    async def _declare_topology(self, channel: AbstractRobustChannel) -> Publisher:
        """Declared robustly: re-declared by aio-pika after every reconnect."""
        top = self._topology
        dlx = await channel.declare_exchange(top.dlx, aio_pika.ExchangeType.DIRECT, durable=True)
        await channel.declare_queue(top.queue, durable=True, arguments=top.main_arguments())
        dead_letters = await channel.declare_queue(
            top.dlq, durable=True, arguments=top.dlq_arguments()
        )
        await dead_letters.bind(dlx, routing_key=top.dlq)
        for bucket in top.buckets:
            await channel.declare_queue(
                top.wait_queue(bucket), durable=True, arguments=top.wait_arguments(bucket)
            )
        pause = min(0.5, self._reconnect_interval)
        return Publisher(channel, dlx, timeout=self._timeout, pause=pause)

    async def _close(self) -> None:
        """Stop consuming, give back what was buffered but never handed out, close everything.

        Deliveries handed out and not yet settled return to the queue when the channel closes
        (counted by the broker as a delivery); callers settle or release them first.
        """
        try:
            if self._consumer is not None:
                waiting = await self._consumer.stop(CLOSE_TIMEOUT)
                await self._give_back(waiting, within=CLOSE_TIMEOUT)
        finally:
            await self._close_connection()

    async def _close_connection(self) -> None:
        for channel in (self._sub, self._pub):
            if channel is not None and channel.is_initialized and not channel.is_closed:
                try:
                    await channel.close()
                except (AMQPError, RuntimeError, OSError) as exc:
                    log.debug("closing a RabbitMQ channel failed: %r", exc)
        if self._connection is not None:
            try:
                await self._connection.close()
            except (AMQPError, RuntimeError, OSError) as exc:
                log.debug("closing the RabbitMQ connection failed: %r", exc)

    # -- publishing --------------------------------------------------------------------------

    async def publish(self, bodies: Sequence[bytes]) -> None:
        self._check_open()
        now = datetime.now(UTC)
        await self._publish([Outgoing(self._topology.queue, new_message(b, now)) for b in bodies])

    async def _publish(self, items: Sequence[Outgoing], within: float | None = None) -> None:
        if self._publisher is None:
            raise ClosedError("RabbitQueue is not open")
        await self._publisher.publish(items, within)

    # -- consuming ---------------------------------------------------------------------------

    async def receive(self, max_messages: int, timeout: float) -> list[Delivery]:
        consumer = self._open_consumer()
        if max_messages < 1:
            return []
        messages = await consumer.take(max_messages, timeout)
        return [
            Delivery(body=m.body, attempts=delivery_attempts(m.headers), tag=m) for m in messages
        ]

    def _open_consumer(self) -> Consumer:
        self._check_open()
        assert self._consumer is not None
        return self._consumer

    def _take(self, delivery: Delivery) -> AbstractIncomingMessage | None:
        """The broker message behind a delivery, or None when it is settled or stale."""
        message = delivery.tag
        if not isinstance(message, AbstractIncomingMessage):
            raise ValidationError("not a RabbitMQ delivery")
        self._open_consumer().forget(message)
        if message.processed:
            log.debug("RabbitMQ delivery %s already settled", message.message_id)
            return None
        if not is_live(message):
            self._stale += 1  # logged once per call by _log_stale, not once per message
            return None
        return message

    def _log_stale(self) -> None:
        if self._stale:
            log.warning(
                "%d RabbitMQ deliveries lost their channel; the broker redelivers them",
                self._stale,
            )
            self._stale = 0

    # -- settling ----------------------------------------------------------------------------

    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        self._check_open()
        for delivery in deliveries:
            message = self._take(delivery)
            if message is not None:
                await settle(message, requeue=None)
        self._log_stale()

    async def extend(self, deliveries: Sequence[Delivery], seconds: float) -> list[Delivery]:
        """Nothing to extend: returns the deliveries already settled or whose channel died.

        RabbitMQ has no lease: an unacked delivery stays with this consumer until it is settled
        or its channel closes (connection lost, or the broker's `consumer_timeout`, 30 min by
        default, for a delivery unacked that long), and then goes back to the queue. No AMQP
        method resets that timeout, so there is nothing to renew: it bounds how long a batch,
        and the ones prefetched behind it (see `prefetch`), may take.
        """
        self._check_open()
        lost = []
        for delivery in deliveries:
            message = delivery.tag
            if not isinstance(message, AbstractIncomingMessage):
                raise ValidationError("not a RabbitMQ delivery")
            if message.processed or not is_live(message):
                lost.append(delivery)
        return lost

    async def retry(self, delivery: Delivery, delay: float, reason: str) -> None:
        self._check_open()
        message = self._take(delivery)
        if message is None:
            self._log_stale()
            return
        bucket = self._topology.bucket_for(delay)
        target = self._topology.queue if bucket is None else self._topology.wait_queue(bucket)
        headers = copy_headers(
            message.headers, attempts=delivery.attempts, reason=truncate_reason(reason)
        )
        await self._publish_then_ack(message, Outgoing(target, copy_message(message, headers)))

    async def dead_letter(self, delivery: Delivery, reason: str) -> None:
        self._check_open()
        message = self._take(delivery)
        if message is None:
            self._log_stale()
            return
        headers = copy_headers(
            message.headers,
            attempts=delivery.attempts,
            reason=truncate_reason(reason),
            failed_at=now_iso(),
        )
        outgoing = Outgoing(self._topology.dlq, copy_message(message, headers), to_dlx=True)
        await self._publish_then_ack(message, outgoing)

    async def _publish_then_ack(self, message: AbstractIncomingMessage, item: Outgoing) -> None:
        try:
            await self._publish([item])
        except BaseException:
            if self._consumer is not None:
                self._consumer.remember(message)  # still ours: the caller may try again
            raise
        await settle(message, requeue=None)

    async def release(self, deliveries: Sequence[Delivery]) -> None:
        self._check_open()
        messages = [m for m in map(self._take, deliveries) if m is not None]
        self._log_stale()
        await self._give_back(messages)

    async def _give_back(
        self, messages: Sequence[AbstractIncomingMessage], within: float | None = None
    ) -> None:
        """Return messages without spending an attempt (see the module docstring)."""
        if not messages:
            return
        copies = [
            Outgoing(
                self._topology.queue,
                copy_message(m, copy_headers(m.headers, attempts=delivery_attempts(m.headers) - 1)),
            )
            for m in messages
        ]
        try:
            await self._publish(copies, within)
        except (QueueError, ClosedError) as exc:
            log.warning("RabbitMQ release by republishing failed (%s); requeueing", exc)
            for message in messages:
                await settle(message, requeue=True)
            return
        for message in messages:
            await settle(message, requeue=None)

    # -- inspection and dead letters ---------------------------------------------------------

    @asynccontextmanager
    async def _admin_channel(self, what: str) -> AsyncIterator[aiormq.abc.AbstractChannel]:
        self._check_open()
        assert self._connection is not None and self._pub is not None
        await wait_ready(self._pub, asyncio.get_running_loop().time() + self._timeout)
        async with amqp_errors(what):
            transport = self._connection.transport
            if transport is None:
                raise QueueError("RabbitMQ connection is down")
            channel = await transport.connection.channel(timeout=self._timeout)
            try:
                async with asyncio.timeout(self._timeout):
                    yield channel
            finally:
                if not channel.is_closed:
                    await channel.close()

    async def depth(self) -> int:
        """Ready messages in the work and wait queues, plus this consumer's unsettled ones.

        Other consumers' unacknowledged messages are invisible over AMQP (the management API
        reports them as `messages_unacknowledged`).
        """
        names = [self._topology.queue, *self._topology.wait_queues]
        async with self._admin_channel("read the queue depth") as channel:
            ready = await dlq.queue_depth(channel, names)
        return ready + (self._consumer.in_flight() if self._consumer is not None else 0)

    async def dead_letter_count(self) -> int:
        """Dead letters ready in the DLQ; those a peek or a replay holds that moment are not
        counted (they are back a moment later)."""
        async with self._admin_channel("count dead letters") as channel:
            return await dlq.queue_depth(channel, [self._topology.dlq])

    async def list_dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        if limit < 1:
            return []
        async with self._admin_channel("list dead letters") as channel:
            return await dlq.peek_dead_letters(channel, self._topology, limit)

    async def replay_dead_letters(self, ids: Sequence[str] | None = None) -> int:
        async with self._admin_channel("replay dead letters") as channel:
            return await dlq.replay_dead_letters(channel, self._topology, ids)

    async def purge_tenant(self, tenant_id: str) -> Purged:
        """The work queue's and the DLQ's ready messages of the tenant; those in a retry
        delay queue or held by a consumer come back later and the worker drops them."""
        async with self._admin_channel("purge tenant") as channel:
            messages = await dlq.purge_tenant(channel, self._topology.queue, tenant_id)
            dead = await dlq.purge_tenant(channel, self._topology.dlq, tenant_id)
        return Purged(messages=messages, dead_letters=dead)
