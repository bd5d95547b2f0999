"""The consuming half of the RabbitMQ queue: a buffer fed by a manual-ack consumer.

The broker pushes up to `prefetch` unacknowledged messages; the consumer callback only appends
them to a buffer, and `receive` hands them out. After a reconnect the buffered messages of the
dead channel are skipped: the broker requeued them when the channel died, and the restored
consumer (aio-pika restores it on the new channel) receives them again.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from aio_pika.abc import AbstractIncomingMessage, AbstractRobustChannel, AbstractRobustQueue

from vecpipe.errors import ClosedError, QueueError
from vecpipe.queue.rabbitmq.amqp import amqp_errors, is_live, wait_ready

log = logging.getLogger(__name__)


class Consumer:
    """Consumes one queue lazily (first `take`), so a publish-only process prefetches nothing."""

    def __init__(
        self, channel: AbstractRobustChannel, queue: AbstractRobustQueue, timeout: float
    ) -> None:
        self._channel = channel
        self._queue = queue
        self._timeout = timeout
        self._tag: str | None = None
        self._lock = asyncio.Lock()
        self._buffer: deque[AbstractIncomingMessage] = deque()
        self._arrived = asyncio.Event()
        self._handed_out: dict[int, AbstractIncomingMessage] = {}
        self._stopped = False

    async def take(self, max_messages: int, wait: float) -> list[AbstractIncomingMessage]:
        """Up to max_messages live messages, waiting at most `wait` seconds for the first."""
        deadline = asyncio.get_running_loop().time() + max(wait, 0.0)
        if not await self._start(deadline):
            return []  # the connection is still coming back: nothing to hand out yet
        batch = self._pop_live(max_messages)
        while not batch:
            if self._stopped:
                raise ClosedError("RabbitQueue closed while receiving")
            self._arrived.clear()
            try:
                async with asyncio.timeout_at(deadline):
                    await self._arrived.wait()
            except TimeoutError:
                return self._pop_live(max_messages)
            batch = self._pop_live(max_messages)
        for message in batch:
            self._handed_out[id(message)] = message
        return batch

    def forget(self, message: AbstractIncomingMessage) -> None:
        """The message is being settled: no longer counted as in flight here."""
        self._handed_out.pop(id(message), None)

    def remember(self, message: AbstractIncomingMessage) -> None:
        """Settling failed before the broker knew: the message is in flight again."""
        self._handed_out[id(message)] = message

    def in_flight(self) -> int:
        """Buffered plus handed-out messages that the broker still counts as unacked for us."""
        for key, message in list(self._handed_out.items()):
            if message.processed or not is_live(message):
                del self._handed_out[key]  # settled, or requeued by the broker with its channel
        return len(self._handed_out) + sum(1 for m in self._buffer if is_live(m))

    async def _start(self, deadline: float) -> bool:
        """Start consuming if not yet; False when the channel is not ready by `deadline`."""
        if self._tag is not None:
            return True
        async with self._lock:
            if self._tag is not None:
                return True
            if self._stopped:
                raise ClosedError("RabbitQueue is closed")
            try:
                await wait_ready(self._channel, deadline)
            except QueueError:
                return False
            async with amqp_errors("start consuming"):
                self._tag = await self._queue.consume(
                    self._on_message, no_ack=False, timeout=self._timeout
                )
            return True

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        self._buffer.append(message)
        self._arrived.set()

    def _pop_live(self, limit: int) -> list[AbstractIncomingMessage]:
        batch: list[AbstractIncomingMessage] = []
        while self._buffer and len(batch) < limit:
            message = self._buffer.popleft()
            if is_live(message):
                batch.append(message)
        return batch

    async def stop(self, within: float) -> list[AbstractIncomingMessage]:
        """Cancel the consumer; return the live messages buffered but never handed out."""
        self._stopped = True
        self._arrived.set()  # wakes a waiting `take`, which raises ClosedError
        tag, self._tag = self._tag, None
        if tag is not None and not self._channel.is_closed:
            try:
                async with amqp_errors("cancel the consumer"):
                    await self._queue.cancel(tag, timeout=within)
            except Exception as exc:
                log.warning("%s", exc)
            # Deliveries that preceded Basic.CancelOk reach _on_message in tasks of their own.
            for _ in range(3):
                await asyncio.sleep(0)
        waiting = self._pop_live(len(self._buffer))
        self._handed_out.clear()
        return waiting
