"""Keeping the worker's messages leased for as long as it holds them.

A SQLite-queue lease lasts `lease_seconds` from the receive; one batch of large records on
the local model can take far longer to embed, and the worker also holds a batch received
ahead and one settling. Without renewal their leases run out, another receiver (or this
worker's own next receive) gets the same messages and embeds them again, spending attempts.

The worker `hold`s deliveries when it receives them and `drop`s them right before it acks,
retries, dead-letters or releases them; meanwhile `LeaseKeeper.renewing()` extends every held
lease every `lease_seconds / 3`, in one queue call. A renewal that fails (the queue's store is
down) is logged and tried again next time; a lease found lost (another receiver leased the
message after it ran out) is logged and no longer renewed; the queue ignores this worker's
later ack of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence

from vecpipe.queue.base import Delivery, MessageQueue

log = logging.getLogger(__name__)

RENEWALS_PER_LEASE = 3  # a renewal may fail and the next come late before a lease runs out


class LeaseKeeper:
    """The leases a worker holds, renewed by a task while `renewing()` is entered."""

    def __init__(self, queue: MessageQueue, lease_seconds: float) -> None:
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        self._queue = queue
        self._lease_seconds = lease_seconds
        self.interval = lease_seconds / RENEWALS_PER_LEASE
        # by identity: a Delivery is an unhashable dataclass, and equal bodies may be distinct
        self._held: dict[int, Delivery] = {}
        self._task: asyncio.Task[None] | None = None
        self._users = 0  # renewing() may be entered by several callers at once

    @property
    def held(self) -> int:
        return len(self._held)

    def hold(self, deliveries: Sequence[Delivery]) -> None:
        for delivery in deliveries:
            self._held[id(delivery)] = delivery

    def drop(self, deliveries: Sequence[Delivery]) -> None:
        """Stop renewing these (about to be settled or given back); unknown ones are ignored."""
        for delivery in deliveries:
            self._held.pop(id(delivery), None)

    @contextlib.asynccontextmanager
    async def renewing(self) -> AsyncIterator[None]:
        """Renew held leases in the background until the last caller leaves."""
        self._users += 1
        if self._task is None:
            self._task = asyncio.create_task(self._renew_forever(), name="vecpipe-lease-keeper")
        try:
            yield
        finally:
            self._users -= 1
            if self._users == 0 and self._task is not None:
                task, self._task = self._task, None
                task.cancel()
                await asyncio.wait([task])

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.renew()

    async def renew(self) -> None:
        """Extend every held lease once; failures are logged, never raised."""
        held = list(self._held.values())
        if not held:
            return
        try:
            lost = await self._queue.extend(held, self._lease_seconds)
        except Exception as exc:  # the queue's store is down: the next renewal may work
            log.warning(
                "renewing %d message leases failed (%s: %s); trying again in %.1fs",
                len(held),
                type(exc).__name__,
                exc,
                self.interval,
            )
            return
        # one dropped while the renewal ran was settled meanwhile: not lost, just done
        lost = [delivery for delivery in lost if id(delivery) in self._held]
        if lost:
            self.drop(lost)
            log.warning(
                "%d message leases were lost (they ran out and another receiver has the "
                "messages): they may be processed twice; this worker's settling of them is "
                "ignored",
                len(lost),
            )
