"""RabbitMQ names, queue arguments and message headers for :mod:`vecpipe.queue.rabbitmq`.

For a queue named ``Q`` the broker holds::

    Q                 quorum, durable: the work queue; broker dead-letters (a reject without
                      requeue) go to Q.dlx with routing key Q.dlq
    Q.dlx             direct exchange, durable: the dead-letter exchange
    Q.dlq             quorum, durable, bound to Q.dlx: dead letters wait here for `vecpipe dlq`
    Q.retry.<N>ms     quorum, durable, one per delay bucket: x-message-ttl N and
                      x-dead-letter-exchange "" back to Q — the delayed retries

Why fixed buckets: a per-message `expiration` on one wait queue blocks behind the head (RabbitMQ
expires messages only at the head), and the delayed-message plugin is neither installed nor
replicated. With one TTL per queue every queue is FIFO in expiry order. A requested delay is
rounded *up* to the next bucket (so `Retry-After` is always honoured); the buckets are at most
~2.5x apart. The wait queues are quorum queues with the ``at-least-once`` dead-letter strategy,
so a retry in flight from a wait queue back to Q survives a broker crash.

Attempts: a quorum queue stamps ``x-delivery-count`` (earlier deliveries *of this copy*), and
every copy vecpipe publishes (retry, release, dead letter) carries ``x-vecpipe-attempts`` — the
deliveries before this copy existed. The delivery's ``attempts`` is their sum plus one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from vecpipe.errors import ConfigError
from vecpipe.queue.base import DeadLetter

DEFAULT_DELAY_BUCKETS: tuple[float, ...] = (1, 2, 5, 10, 30, 60, 120, 300)

ATTEMPTS_HEADER = "x-vecpipe-attempts"
REASON_HEADER = "x-vecpipe-reason"
FAILED_AT_HEADER = "x-vecpipe-failed-at"
DELIVERY_COUNT_HEADER = "x-delivery-count"

MAX_REASON_CHARS = 2000  # keep headers small; reasons are diagnostics, not payload

_QUORUM_AT_LEAST_ONCE: dict[str, Any] = {
    "x-queue-type": "quorum",
    # at-least-once dead-lettering needs reject-publish overflow; without a length limit the
    # overflow setting never triggers.
    "x-overflow": "reject-publish",
    "x-dead-letter-strategy": "at-least-once",
}


@dataclass(frozen=True)
class Topology:
    """Every name and argument of one vecpipe queue on the broker."""

    queue: str
    buckets: tuple[float, ...]

    @classmethod
    def for_queue(cls, queue: str, max_retry_delay: float) -> Topology:
        if not queue or len(queue) > 200:
            raise ConfigError("RabbitMQ queue name must be 1-200 characters")
        if max_retry_delay <= 0:
            raise ConfigError("max_retry_delay must be positive")
        buckets = tuple(b for b in DEFAULT_DELAY_BUCKETS if b < max_retry_delay)
        return cls(queue=queue, buckets=(*buckets, float(max_retry_delay)))

    @property
    def dlx(self) -> str:
        return f"{self.queue}.dlx"

    @property
    def dlq(self) -> str:
        return f"{self.queue}.dlq"

    def wait_queue(self, bucket: float) -> str:
        return f"{self.queue}.retry.{_ms(bucket)}ms"

    @property
    def wait_queues(self) -> list[str]:
        return [self.wait_queue(b) for b in self.buckets]

    @property
    def all_queues(self) -> list[str]:
        return [self.queue, self.dlq, *self.wait_queues]

    def bucket_for(self, delay: float) -> float | None:
        """The smallest bucket >= delay (capped at the largest); None for no delay."""
        if delay <= 0:
            return None
        for bucket in self.buckets:
            if bucket >= delay:
                return bucket
        return self.buckets[-1]

    def main_arguments(self) -> dict[str, Any]:
        return {
            **_QUORUM_AT_LEAST_ONCE,
            "x-dead-letter-exchange": self.dlx,
            "x-dead-letter-routing-key": self.dlq,
        }

    def dlq_arguments(self) -> dict[str, Any]:
        return {"x-queue-type": "quorum"}

    def wait_arguments(self, bucket: float) -> dict[str, Any]:
        return {
            **_QUORUM_AT_LEAST_ONCE,
            "x-message-ttl": _ms(bucket),
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": self.queue,
        }


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _int_header(headers: Mapping[str, Any], name: str) -> int:
    value = headers.get(name)
    try:
        return max(0, int(value)) if value is not None else 0
    except (TypeError, ValueError):
        return 0


def delivery_attempts(headers: Mapping[str, Any]) -> int:
    """Deliveries so far, this one included."""
    return _int_header(headers, ATTEMPTS_HEADER) + _int_header(headers, DELIVERY_COUNT_HEADER) + 1


def copy_headers(headers: Mapping[str, Any], *, attempts: int, **extra: str) -> dict[str, Any]:
    """Headers for a republished copy: the application's own plus vecpipe's.

    Broker bookkeeping (x-death, x-delivery-count, x-first-death-*) is dropped: the copy is a new
    message, and a stale x-delivery-count must not be added to the attempts twice.
    """
    kept = {k: v for k, v in headers.items() if not k.startswith("x-")}
    kept.update({k: v for k, v in headers.items() if k.startswith("x-vecpipe-")})
    kept[ATTEMPTS_HEADER] = max(0, attempts)
    for key, value in extra.items():
        kept[f"x-vecpipe-{key.replace('_', '-')}"] = value
    return kept


def truncate_reason(reason: str) -> str:
    return reason if len(reason) <= MAX_REASON_CHARS else reason[: MAX_REASON_CHARS - 1] + "…"


def message_key(message_id: str | None, body: bytes) -> str:
    """The id a dead letter is listed and replayed by: the message id set at publish.

    Messages published by someone else may lack one; their body digest stands in.
    """
    return message_id or "sha256:" + hashlib.sha256(body).hexdigest()[:32]


def dead_letter_from(message_id: str | None, body: bytes, headers: Mapping[str, Any]) -> DeadLetter:
    """Describe a message found in the DLQ, whoever put it there."""
    reason = headers.get(REASON_HEADER)
    failed_at = _parse_time(headers.get(FAILED_AT_HEADER))
    if reason is None:  # dead-lettered by the broker itself (e.g. rejected without requeue)
        death = _first_death(headers)
        reason = f"broker: {death.get('reason', 'unknown')}" if death else "unknown"
        failed_at = failed_at or _parse_time(death.get("time"))
        attempts = _int_header(headers, ATTEMPTS_HEADER) + 1
    else:
        attempts = _int_header(headers, ATTEMPTS_HEADER)
    return DeadLetter(
        id=message_key(message_id, body),
        body=body,
        reason=_text(reason),
        attempts=attempts,
        failed_at=failed_at,
    )


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def _first_death(headers: Mapping[str, Any]) -> Mapping[str, Any]:
    deaths = headers.get("x-death")
    if isinstance(deaths, list | tuple) and deaths and isinstance(deaths[0], Mapping):
        return deaths[0]
    return {}


def _parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, bytes | str):
        try:
            parsed = datetime.fromisoformat(_text(value))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
