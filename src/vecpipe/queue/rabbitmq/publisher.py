"""The publishing half of the RabbitMQ queue: persistent, mandatory, confirmed.

Every message is published with `mandatory` on a channel with publisher confirms and
`on_return_raises`, and `publish` returns only when the broker confirmed all of them. A returned
(unroutable) or nacked message raises `QueueError` at once: never a silent loss. A publish cut
off by a lost connection is repeated once the robust connection is back, until the deadline; a
message whose confirm was lost with the connection may then be stored twice (at-least-once).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustChannel, AbstractRobustExchange
from aio_pika.exceptions import DeliveryError, PublishError

from vecpipe.errors import QueueError
from vecpipe.queue.rabbitmq.amqp import wait_ready
from vecpipe.queue.rabbitmq.topology import message_key

log = logging.getLogger(__name__)

_CHUNK = 500  # confirms awaited concurrently per chunk


@dataclass(frozen=True)
class Outgoing:
    routing_key: str
    message: aio_pika.Message
    to_dlx: bool = False  # through the dead-letter exchange, else the default exchange


class Publisher:
    def __init__(
        self,
        channel: AbstractRobustChannel,
        dlx: AbstractRobustExchange,
        *,
        timeout: float,
        pause: float,
    ) -> None:
        self._channel = channel
        self._dlx = dlx
        self._timeout = timeout
        self._pause = pause

    async def publish(self, items: Sequence[Outgoing], within: float | None = None) -> None:
        """Publish all items with confirms, within `within` seconds (default: operation timeout)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self._timeout if within is None else within)
        pending = list(items)
        while pending:
            await wait_ready(self._channel, deadline)
            pending, error = await self._publish_pending(pending)
            if pending and loop.time() >= deadline:
                raise QueueError(
                    f"RabbitMQ did not confirm {len(pending)} message(s): {type(error).__name__}"
                ) from error
            if pending:
                log.info("RabbitMQ publish interrupted (%s); retrying", type(error).__name__)
                await asyncio.sleep(self._pause)

    async def _publish_pending(
        self, pending: list[Outgoing]
    ) -> tuple[list[Outgoing], BaseException | None]:
        """Publish once; return what failed on the way (a transport error) and the last error."""
        failed: list[Outgoing] = []
        last_error: BaseException | None = None
        for start in range(0, len(pending), _CHUNK):
            chunk = pending[start : start + _CHUNK]
            results = await asyncio.gather(
                *(self._publish_one(item) for item in chunk), return_exceptions=True
            )
            for item, result in zip(chunk, results, strict=True):
                if isinstance(result, DeliveryError):  # returned (unroutable) or nacked
                    raise QueueError(_refused(item, result)) from result
                if isinstance(result, BaseException):
                    failed.append(item)
                    last_error = result
        return failed, last_error

    async def _publish_one(self, item: Outgoing) -> object:
        exchange = self._dlx if item.to_dlx else self._channel.default_exchange
        return await exchange.publish(
            item.message, item.routing_key, mandatory=True, timeout=self._timeout
        )


def new_message(body: bytes, now: datetime) -> aio_pika.Message:
    """A message as vecpipe publishes it: persistent, with a unique id (dead letters' id)."""
    return aio_pika.Message(
        body,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=uuid.uuid4().hex,
        timestamp=now,
        app_id="vecpipe",
    )


def copy_message(message: AbstractIncomingMessage, headers: dict[str, Any]) -> aio_pika.Message:
    """A persistent copy of a delivered message with new headers (same id, same body).

    `expiration` is not copied: it would cut a wait queue's delay short.
    """
    return aio_pika.Message(
        message.body,
        headers=headers,
        message_id=message_key(message.message_id, message.body),
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        content_type=message.content_type,
        content_encoding=message.content_encoding,
        correlation_id=message.correlation_id,
        timestamp=message.timestamp,
        app_id=message.app_id,
        type=message.type,
    )


def _refused(item: Outgoing, error: DeliveryError) -> str:
    kind = "unroutable (returned)" if isinstance(error, PublishError) else "nacked"
    target = "the dead-letter exchange" if item.to_dlx else f"queue {item.routing_key!r}"
    return f"RabbitMQ refused a message for {target}: {kind}"
