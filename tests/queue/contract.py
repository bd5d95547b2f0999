"""The contract every `MessageQueue` backend keeps, as a test class to subclass.

A backend's test module runs the whole suite by subclassing and providing one fixture:

    class TestSqliteQueueContract(MessageQueueContract):
        @pytest.fixture
        async def queue_factory(self, tmp_path) -> AsyncIterator[QueueFactory]:
            async with QueuePool(lambda **kw: SqliteQueue(tmp_path / "q.db", **kw).open()) as pool:
                yield pool.open

Every queue a factory returns is a new, open handle on the *same* queue (one queue per
test): two handles behave like two processes sharing it. The fixture closes whatever the
factory opened (`QueuePool` does that). `lease_seconds` is how long a receiver that vanished
keeps its messages; a broker that redelivers as soon as the receiver's connection closes may
ignore it.

No assertion here measures how fast something happens; waits are bounded by `patience` and
only lower bounds of time are checked (a retry must not come back before its delay).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, Protocol

import pytest

from vecpipe.errors import ClosedError
from vecpipe.queue.base import Delivery, MessageQueue

LONG_LEASE = 30.0  # no lease runs out during a test that does not want it to


class QueueFactory(Protocol):
    async def __call__(self, *, lease_seconds: float = LONG_LEASE) -> MessageQueue: ...


class QueuePool:
    """Opens handles with `opener(lease_seconds=...)`, closes them all on exit."""

    def __init__(self, opener: Callable[..., Awaitable[MessageQueue]]) -> None:
        self._opener = opener
        self._opened: list[MessageQueue] = []

    async def open(self, *, lease_seconds: float = LONG_LEASE) -> MessageQueue:
        queue = await self._opener(lease_seconds=lease_seconds)
        self._opened.append(queue)
        return queue

    async def __aenter__(self) -> QueuePool:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for queue in reversed(self._opened):
            await queue.aclose()


async def collect(
    queue: MessageQueue, count: int, *, patience: float, batch: int = 10
) -> list[Delivery]:
    """Receive until `count` deliveries arrived or `patience` seconds passed."""
    got: list[Delivery] = []
    deadline = time.monotonic() + patience
    while len(got) < count and (remaining := deadline - time.monotonic()) > 0:
        got += await queue.receive(min(batch, count - len(got)), timeout=remaining)
    return got


async def eventually(get: Callable[[], Awaitable[Any]], expected: Any, patience: float) -> Any:
    """Poll `get()` until it returns `expected` (brokers may count with a lag)."""
    deadline = time.monotonic() + patience
    while True:
        value = await get()
        if value == expected or time.monotonic() >= deadline:
            return value
        await asyncio.sleep(0.02)


class MessageQueueContract:
    """Subclass as `Test...Contract` and define the `queue_factory` fixture."""

    # Brokers that put a message back without counting a delivery when the receiver's
    # connection closes (RabbitMQ quorum queues since 4.x) may set this to False.
    counts_abandoned_deliveries: ClassVar[bool] = True
    retry_delay: ClassVar[float] = 0.5
    patience: ClassVar[float] = 10.0

    @pytest.fixture
    async def queue_factory(self) -> QueueFactory:
        pytest.fail("a MessageQueueContract subclass must define the queue_factory fixture")

    async def test_publish_receive_ack(self, queue_factory: QueueFactory) -> None:
        queue = await queue_factory()
        bodies = [b"first", b"second", b"\x00binary\xff", b"{}"]
        await queue.publish(bodies)

        got = await collect(queue, len(bodies), patience=self.patience)
        assert sorted(d.body for d in got) == sorted(bodies)
        assert all(d.attempts == 1 for d in got)
        await queue.ack(got)

        assert await eventually(queue.depth, 0, self.patience) == 0
        assert await queue.receive(10, timeout=0.1) == []

    async def test_receive_returns_at_most_max_messages(self, queue_factory: QueueFactory) -> None:
        queue = await queue_factory()
        await queue.publish([b"%d" % i for i in range(5)])
        first = await queue.receive(2, timeout=self.patience)
        assert 1 <= len(first) <= 2
        rest = await collect(queue, 5 - len(first), patience=self.patience)
        assert sorted(d.body for d in first + rest) == sorted(b"%d" % i for i in range(5))
        await queue.ack(first + rest)

    async def test_empty_queue_receives_nothing(self, queue_factory: QueueFactory) -> None:
        queue = await queue_factory()
        assert await queue.receive(5, timeout=0.05) == []
        assert await queue.receive(5, timeout=0) == []

    async def test_waiting_receive_gets_a_later_publish(self, queue_factory: QueueFactory) -> None:
        queue = await queue_factory()
        waiting = asyncio.create_task(queue.receive(1, timeout=self.patience))
        await asyncio.sleep(0.05)
        await queue.publish([b"late"])
        got = await waiting
        assert [d.body for d in got] == [b"late"]
        await queue.ack(got)

    async def test_large_binary_body_round_trips(self, queue_factory: QueueFactory) -> None:
        queue = await queue_factory()
        body = os.urandom(1024 * 1024)
        await queue.publish([body])
        (got,) = await collect(queue, 1, patience=self.patience)
        assert got.body == body
        await queue.ack([got])

    async def test_message_comes_back_when_its_receiver_vanishes(
        self, queue_factory: QueueFactory
    ) -> None:
        crashed = await queue_factory(lease_seconds=0.3)
        survivor = await queue_factory(lease_seconds=0.3)
        await crashed.publish([b"work"])
        (first,) = await collect(crashed, 1, patience=self.patience)
        await crashed.aclose()  # never acked: at-least-once means it is delivered again

        (again,) = await collect(survivor, 1, patience=self.patience)
        assert again.body == b"work"
        if self.counts_abandoned_deliveries:
            assert again.attempts == first.attempts + 1
        await survivor.ack([again])
        assert await eventually(survivor.depth, 0, self.patience) == 0

    async def test_an_extended_lease_outlives_its_first_expiry(
        self, queue_factory: QueueFactory
    ) -> None:
        holder = await queue_factory(lease_seconds=0.3)
        other = await queue_factory(lease_seconds=0.3)
        await holder.publish([b"long job"])
        (held,) = await collect(holder, 1, patience=self.patience)
        assert await holder.extend([held], LONG_LEASE) == []

        # waits past the first expiry; another receiver would get the message at once
        assert await other.receive(1, timeout=1.0) == []
        await holder.ack([held])
        assert await eventually(holder.depth, 0, self.patience) == 0
        assert await holder.extend([held], LONG_LEASE) == [held]  # settled: no longer held

    async def test_retry_comes_back_after_its_delay(self, queue_factory: QueueFactory) -> None:
        queue = await queue_factory()
        await queue.publish([b"flaky"])
        (first,) = await collect(queue, 1, patience=self.patience)
        retried_at = time.monotonic()
        await queue.retry(first, self.retry_delay, "gateway said 503")

        (again,) = await collect(queue, 1, patience=self.patience + self.retry_delay)
        assert time.monotonic() - retried_at >= self.retry_delay - 0.05
        assert again.body == b"flaky"
        assert again.attempts == 2
        await queue.ack([again])

    async def test_dead_letter_list_and_replay(self, queue_factory: QueueFactory) -> None:
        queue = await queue_factory()
        await queue.publish([b"poison", b"fine"])
        got = await collect(queue, 2, patience=self.patience)
        poison = next(d for d in got if d.body == b"poison")
        await queue.dead_letter(poison, "ValidationError: not a queue message")
        await queue.ack([d for d in got if d is not poison])

        dead = await eventually(_bodies_of_dead(queue), [b"poison"], self.patience)
        assert dead == [b"poison"]
        (letter,) = await queue.list_dead_letters()
        assert "not a queue message" in letter.reason
        assert letter.attempts == 1
        assert await eventually(queue.depth, 0, self.patience) == 0

        assert await queue.replay_dead_letters() == 1
        assert await queue.list_dead_letters() == []
        (again,) = await collect(queue, 1, patience=self.patience)
        assert again.body == b"poison"
        assert again.attempts == 1  # a replay starts the count afresh
        await queue.ack([again])

    async def test_purge_tenant_removes_its_messages_and_dead_letters(
        self, queue_factory: QueueFactory
    ) -> None:
        """Waiting messages and dead letters; messages a consumer holds (prefetched) are out
        of reach, which is why the worker drops a tombstoned tenant's messages too."""

        def body(tenant: str, n: int) -> bytes:
            return json.dumps({"kind": "delete", "tenant_id": tenant, "record_id": str(n)}).encode()

        consumer = await queue_factory()
        await consumer.publish([body("gone", 1), body("kept", 1)])
        for delivery in await collect(consumer, 2, patience=self.patience):
            await consumer.dead_letter(delivery, "failed")
        await consumer.aclose()
        queue = await queue_factory()  # a handle that never consumed: holds nothing
        await queue.publish([body("gone", 2), body("gone", 3), body("kept", 2), b"not json"])
        await eventually(queue.dead_letter_count, 2, self.patience)

        purged = await queue.purge_tenant("gone")
        assert (purged.messages, purged.dead_letters) == (2, 1), purged
        assert [d.body for d in await queue.list_dead_letters()] == [body("kept", 1)]
        left = await collect(queue, 2, patience=self.patience)
        assert sorted(d.body for d in left) == sorted([body("kept", 2), b"not json"])
        await queue.ack(left)
        assert await queue.purge_tenant("gone") == type(purged)()

    async def test_replay_only_the_named_dead_letters(self, queue_factory: QueueFactory) -> None:
        queue = await queue_factory()
        await queue.publish([b"a", b"b"])
        for delivery in await collect(queue, 2, patience=self.patience):
            await queue.dead_letter(delivery, f"failed {delivery.body!r}")
        letters = await eventually(_count_dead(queue), 2, self.patience)
        assert letters == 2
        by_body = {letter.body: letter.id for letter in await queue.list_dead_letters()}

        assert await queue.replay_dead_letters([by_body[b"a"]]) == 1
        assert [letter.body for letter in await queue.list_dead_letters()] == [b"b"]
        assert await queue.replay_dead_letters(["no-such-dead-letter"]) == 0
        (again,) = await collect(queue, 1, patience=self.patience)
        assert again.body == b"a"
        await queue.ack([again])

    async def test_dead_letter_count_is_exact_beyond_a_page(
        self, queue_factory: QueueFactory
    ) -> None:
        queue = await queue_factory()
        assert await queue.dead_letter_count() == 0
        await queue.publish([f"bad {i}".encode() for i in range(120)])
        for delivery in await collect(queue, 120, patience=self.patience):
            await queue.dead_letter(delivery, "bad")
        assert await eventually(queue.dead_letter_count, 120, self.patience) == 120
        assert len(await queue.list_dead_letters(100)) == 100  # a page; the count is all
        assert await queue.replay_dead_letters() == 120
        assert await eventually(queue.dead_letter_count, 0, self.patience) == 0
        await queue.ack(await collect(queue, 120, patience=self.patience))

    async def test_release_does_not_count_an_attempt(self, queue_factory: QueueFactory) -> None:
        queue = await queue_factory()
        await queue.publish([b"interrupted"])
        (first,) = await collect(queue, 1, patience=self.patience)
        assert first.attempts == 1
        await queue.release([first])

        (again,) = await collect(queue, 1, patience=self.patience)
        assert again.body == b"interrupted"
        assert again.attempts == 1
        await queue.ack([again])

    async def test_two_handles_never_receive_the_same_message(
        self, queue_factory: QueueFactory
    ) -> None:
        queues = [await queue_factory(), await queue_factory()]
        await self._race(queues, total=60)

    async def test_concurrent_receives_on_one_handle_never_overlap(
        self, queue_factory: QueueFactory
    ) -> None:
        queue = await queue_factory()
        await self._race([queue, queue, queue], total=45)

    async def _race(self, queues: list[MessageQueue], total: int) -> None:
        bodies = [b"m%03d" % i for i in range(total)]
        await queues[0].publish(bodies)
        seen: list[bytes] = []

        async def consume(queue: MessageQueue) -> None:
            deadline = time.monotonic() + self.patience
            while len(seen) < total and time.monotonic() < deadline:
                got = await queue.receive(3, timeout=0.1)
                seen.extend(d.body for d in got)
                await asyncio.sleep(0)  # let the others lease in between
                await queue.ack(got)

        await asyncio.gather(*(consume(q) for q in queues))
        assert len(seen) == len(set(seen)), "a message was delivered to two receivers"
        assert sorted(seen) == bodies

    async def test_depth_counts_waiting_delayed_and_in_flight(
        self, queue_factory: QueueFactory
    ) -> None:
        queue = await queue_factory()
        await queue.publish([b"1", b"2", b"3", b"4"])
        assert await eventually(queue.depth, 4, self.patience) == 4

        one, two, three = await collect(queue, 3, patience=self.patience, batch=1)
        assert await eventually(queue.depth, 4, self.patience) == 4  # in flight still counts
        await queue.ack([one])
        assert await eventually(queue.depth, 3, self.patience) == 3
        await queue.dead_letter(two, "bad")
        assert await eventually(queue.depth, 2, self.patience) == 2
        await queue.retry(three, 60.0, "later")  # delayed, still waiting
        assert await eventually(queue.depth, 2, self.patience) == 2

    async def test_empty_batches_are_no_ops(self, queue_factory: QueueFactory) -> None:
        queue = await queue_factory()
        await queue.publish([])
        await queue.ack([])
        await queue.release([])
        assert await queue.extend([], LONG_LEASE) == []
        assert await queue.depth() == 0

    async def test_use_after_close_is_refused(self, queue_factory: QueueFactory) -> None:
        queue = await queue_factory()
        await queue.aclose()
        await queue.aclose()  # idempotent
        with pytest.raises(ClosedError):
            await queue.publish([b"too late"])
        with pytest.raises(ClosedError):
            await queue.receive(1, timeout=0)
        with pytest.raises(ClosedError):
            await queue.depth()
        with pytest.raises(ClosedError):
            await queue.dead_letter_count()


def _bodies_of_dead(queue: MessageQueue) -> Callable[[], Awaitable[list[bytes]]]:
    async def bodies() -> list[bytes]:
        return [letter.body for letter in await queue.list_dead_letters()]

    return bodies


def _count_dead(queue: MessageQueue) -> Callable[[], Awaitable[int]]:
    async def count() -> int:
        return len(await queue.list_dead_letters())

    return count
