"""The queue contract, shared by the SQLite and RabbitMQ backends.

At-least-once: a received message stays owned by the receiver until it is acked, retried,
dead-lettered or released; a receiver that dies loses its lease and the message returns.
A receiver that holds messages longer than a lease keeps them with `extend`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol


@dataclass
class Delivery:
    body: bytes
    attempts: int  # deliveries so far, this one included (1 on first delivery)
    tag: Any  # backend handle (row id and lease token, or a broker message)


@dataclass
class DeadLetter:
    id: str
    body: bytes
    reason: str
    attempts: int
    failed_at: datetime | None


@dataclass(frozen=True)
class Purged:
    messages: int = 0
    dead_letters: int = 0


def tenant_of(body: bytes) -> str | None:
    """The tenant a message body names (JSON with `tenant_id`); None when unreadable."""
    try:
        value = json.loads(body)
    except ValueError:
        return None
    tenant = value.get("tenant_id") if isinstance(value, dict) else None
    return tenant if isinstance(tenant, str) else None


class MessageQueue(Protocol):
    async def publish(self, bodies: Sequence[bytes]) -> None:
        """Durably enqueue; returns only once the backend has the messages (or raises)."""

    async def receive(self, max_messages: int, timeout: float) -> list[Delivery]:
        """Up to max_messages, waiting at most timeout seconds for the first one."""

    async def ack(self, deliveries: Sequence[Delivery]) -> None: ...

    async def extend(self, deliveries: Sequence[Delivery], seconds: float) -> list[Delivery]:
        """Keep the messages owned `seconds` from now; returns the deliveries no longer owned.

        A lease lost (it ran out and another receiver has the message) or a message already
        settled is left alone, never taken back, and returned. Backends without leases keep
        messages for as long as the receiver is connected and only report lost ones.
        """

    async def retry(self, delivery: Delivery, delay: float, reason: str) -> None:
        """Give the message back to be delivered again after `delay` seconds."""

    async def dead_letter(self, delivery: Delivery, reason: str) -> None: ...

    async def release(self, deliveries: Sequence[Delivery]) -> None:
        """Give messages back at once, not counting this delivery as a failed attempt."""

    async def depth(self) -> int:
        """Messages waiting or in flight."""

    async def dead_letter_count(self) -> int:
        """Dead letters waiting to be replayed or dropped."""

    async def list_dead_letters(self, limit: int = 100) -> list[DeadLetter]: ...

    async def replay_dead_letters(self, ids: Sequence[str] | None = None) -> int:
        """Requeue dead letters (all when ids is None); returns how many."""

    async def aclose(self) -> None: ...

    async def purge_tenant(self, tenant_id: str) -> Purged:
        """Remove the tenant's waiting messages and dead letters (offboarding). Messages in
        flight or in a backend's delay queues may escape: the worker drops those (tenant
        tombstones, db/tombstones.py)."""
