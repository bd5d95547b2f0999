"""Dead-letter and depth operations of the RabbitMQ queue, on a short-lived raw channel.

They use a plain aiormq channel of their own, not one of the queue's robust channels: a failed
passive declare closes its channel, and a robust channel would try to restore it. Messages taken
with ``basic.get`` stay unacknowledged until this code settles them, so if anything fails
midway, closing the channel hands them back to the DLQ: nothing is lost, at worst reordered.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import aio_pika
import aiormq.abc
from aio_pika.message import IncomingMessage
from aiormq import spec

from vecpipe.queue.base import DeadLetter, tenant_of
from vecpipe.queue.rabbitmq.topology import REASON_HEADER, Topology, dead_letter_from, message_key

LAST_ERROR_HEADER = "x-vecpipe-last-error"
REPLAY_HEADER = "x-vecpipe-replay"  # the replay scan that requeued a message (copies keep it)


async def queue_depth(channel: aiormq.abc.AbstractChannel, names: Sequence[str]) -> int:
    """Ready messages in the named queues (passive declares: a missing queue raises)."""
    total = 0
    for name in names:
        declared = await channel.queue_declare(name, passive=True)
        total += declared.message_count or 0
    return total


async def _get(channel: aiormq.abc.AbstractChannel, queue: str) -> IncomingMessage | None:
    delivered = await channel.basic_get(queue, no_ack=False)
    if isinstance(delivered.delivery, spec.Basic.GetEmpty):
        return None
    return IncomingMessage(delivered, no_ack=False)


def _replayed_by(message: IncomingMessage, scan: str) -> bool:
    value = (message.headers or {}).get(REPLAY_HEADER)
    return value == scan or value == scan.encode()


async def _requeue(messages: Sequence[IncomingMessage]) -> None:
    for message in messages:
        await message.nack(requeue=True)


async def peek_dead_letters(
    channel: aiormq.abc.AbstractChannel, topology: Topology, limit: int
) -> list[DeadLetter]:
    """Up to `limit` dead letters, left in the DLQ (taken unacked, then requeued)."""
    held: list[IncomingMessage] = []
    try:
        while len(held) < limit:
            message = await _get(channel, topology.dlq)
            if message is None:
                break
            held.append(message)
        return [dead_letter_from(m.message_id, m.body, m.headers or {}) for m in held]
    finally:
        if not channel.is_closed:
            await _requeue(held)


def replay_copy(message: IncomingMessage, scan: str) -> aio_pika.Message:
    """A fresh message for the work queue: attempts reset, the last reason kept for humans,
    and the id of the replay `scan` that sent it."""
    headers = message.headers or {}
    fresh: dict[str, Any] = {k: v for k, v in headers.items() if not k.startswith("x-")}
    reason = headers.get(REASON_HEADER)
    if reason is not None:
        fresh[LAST_ERROR_HEADER] = reason
    fresh[REPLAY_HEADER] = scan
    return aio_pika.Message(
        message.body,
        headers=fresh,
        message_id=message_key(message.message_id, message.body),
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        content_type=message.content_type,
        content_encoding=message.content_encoding,
        correlation_id=message.correlation_id,
        timestamp=datetime.now(UTC),
        app_id=message.app_id,
        type=message.type,
    )


async def replay_dead_letters(
    channel: aiormq.abc.AbstractChannel, topology: Topology, ids: Sequence[str] | None
) -> int:
    """Move dead letters (all, or those whose id is in `ids`) back to the work queue.

    Each one is published with confirms and `mandatory`, and only then acked in the DLQ.
    Skipped ones stay unacknowledged (so `basic.get` moves past them) until the scan has
    reached the end of the DLQ, and are requeued then. A running worker may dead-letter a
    replayed message again before the scan ends; the copy carries the scan's id, so the scan
    skips it instead of replaying it over and over.
    """
    wanted = None if ids is None else set(ids)
    if wanted is not None and not wanted:
        return 0
    scan = uuid.uuid4().hex
    skipped: list[IncomingMessage] = []
    replayed = 0
    try:
        while (message := await _get(channel, topology.dlq)) is not None:
            key = message_key(message.message_id, message.body)
            if _replayed_by(message, scan) or (wanted is not None and key not in wanted):
                skipped.append(message)
                continue
            copy = replay_copy(message, scan)
            await channel.basic_publish(
                copy.body,
                exchange="",
                routing_key=topology.queue,
                properties=copy.properties,
                mandatory=True,
            )
            await message.ack()
            replayed += 1
        return replayed
    finally:
        if not channel.is_closed:
            await _requeue(skipped)


async def purge_tenant(channel: aiormq.abc.AbstractChannel, queue: str, tenant_id: str) -> int:
    """Take every ready message of `queue`, ack (drop) the tenant's, requeue the others once
    the scan has reached the end (so `basic.get` moves past them)."""
    kept: list[IncomingMessage] = []
    dropped = 0
    try:
        while (message := await _get(channel, queue)) is not None:
            if tenant_of(message.body) == tenant_id:
                await message.ack()
                dropped += 1
            else:
                kept.append(message)
        return dropped
    finally:
        if not channel.is_closed:
            await _requeue(kept)
