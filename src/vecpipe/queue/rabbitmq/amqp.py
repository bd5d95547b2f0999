"""Small aio-pika helpers for the RabbitMQ queue: error mapping, readiness, liveness, settling."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aio_pika.abc import AbstractIncomingMessage, AbstractRobustChannel
from aio_pika.exceptions import (
    AMQPError,
    ChannelInvalidStateError,
    ChannelNotFoundEntity,
    ChannelPreconditionFailed,
    MessageProcessError,
)
from yarl import URL

from vecpipe.errors import ConfigError, QueueError

log = logging.getLogger(__name__)

# What a broker or a dropped connection raises through aio-pika/aiormq. ChannelInvalidStateError
# is a RuntimeError, not an AMQPError.
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    AMQPError,
    ChannelInvalidStateError,
    ConnectionError,
    OSError,
    TimeoutError,
)


def safe_url(url: str) -> str:
    """The broker URL without its password, for messages and reprs."""
    try:
        parsed = URL(url)
    except (TypeError, ValueError):
        return "<invalid url>"
    return str(parsed.with_password(None)) if parsed.password else str(parsed)


@asynccontextmanager
async def amqp_errors(what: str) -> AsyncIterator[None]:
    """Raise broker and transport failures as vecpipe errors (names only, never credentials)."""
    try:
        yield
    except ChannelPreconditionFailed as exc:
        raise ConfigError(
            f"RabbitMQ refused to {what}: an existing queue or exchange has other arguments"
            f" ({exc.args[0] if exc.args else 'PRECONDITION_FAILED'})"
        ) from exc
    except ChannelNotFoundEntity as exc:
        raise QueueError(f"RabbitMQ could not {what}: a queue or exchange is missing") from exc
    except TRANSPORT_ERRORS as exc:
        raise QueueError(f"RabbitMQ could not {what}: {type(exc).__name__}") from exc


def is_live(message: AbstractIncomingMessage) -> bool:
    """Whether the channel the message came on is still open (so it can be settled)."""
    try:
        message.channel  # noqa: B018 - the property raises once the channel is closed
    except ChannelInvalidStateError:
        return False
    return True


async def settle(message: AbstractIncomingMessage, *, requeue: bool | None) -> None:
    """Ack (requeue=None) or nack; a message already settled or whose channel died is left be.

    A dead channel means the broker has already requeued the message: it will be delivered
    again, which at-least-once delivery allows.
    """
    try:
        if requeue is None:
            await message.ack()
        else:
            await message.nack(requeue=requeue)
    except MessageProcessError:
        log.debug("RabbitMQ message %s was already settled", message.message_id)
    except TRANSPORT_ERRORS as exc:
        log.warning(
            "RabbitMQ could not settle message %s (%s); the broker will redeliver it",
            message.message_id,
            type(exc).__name__,
        )


async def wait_ready(channel: AbstractRobustChannel, deadline: float) -> None:
    """Wait (until the loop time `deadline`) for a robust channel that may be reconnecting."""
    remaining = deadline - asyncio.get_running_loop().time()
    try:
        async with asyncio.timeout(max(remaining, 0.001)):
            await channel.ready()
    except TimeoutError:
        raise QueueError("RabbitMQ is unreachable (still reconnecting)") from None
