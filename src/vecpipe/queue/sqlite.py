"""The embedded, durable queue: a table in the data dir's `queue.db`.

    async with SqliteQueue(data_dir / "queue.db") as queue:
        await queue.publish([b"..."])
        for delivery in await queue.receive(max_messages=64, timeout=1.0):
            ...
            await queue.ack([delivery])

One `sqlite3` connection lives on one dedicated thread for the queue's lifetime; the event
loop only awaits it. Several processes may share the file (an API process publishing, a
worker receiving): the statements and their locking are in sqlite_ops.py.

Below the free-space floor (`min_free_bytes`, diskspace.py) the calls that grow the file
(publish, retry, dead-letter, replay) are refused with StorageFull; receiving, acking and
giving messages back go on. SQLite's own "database or disk is full" is StorageFull too.

A received message is leased for `lease_seconds` (its holder may `extend` the lease); a
receiver that dies loses the lease and the message comes back, counted as an attempt.
`receive` polls every `poll_interval` seconds while it waits, and wakes at once when this
queue object publishes or gives a message back.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sqlite3
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Self, TypeVar

from vecpipe.diskspace import FreeSpaceFloor, is_disk_full, storage_full
from vecpipe.errors import ClosedError, QueueError
from vecpipe.lifecycle import AsyncResource
from vecpipe.queue import sqlite_ops as ops
from vecpipe.queue.base import DeadLetter, Delivery, Purged
from vecpipe.queue.sqlite_ops import Leased, SqliteTag

__all__ = ["SqliteQueue", "SqliteTag"]

log = logging.getLogger(__name__)
T = TypeVar("T")


class SqliteQueue(AsyncResource):
    """`MessageQueue` on a SQLite file. Open with `async with` (or `await open()`)."""

    def __init__(
        self,
        path: Path,
        *,
        lease_seconds: float = 60.0,
        poll_interval: float = 0.2,
        busy_timeout: float = 10.0,
        min_free_bytes: int = 0,
    ) -> None:
        if lease_seconds <= 0 or poll_interval <= 0 or busy_timeout < 0:
            raise ValueError("lease_seconds and poll_interval must be positive, busy_timeout >= 0")
        self._path = Path(path)
        self._lease_seconds = lease_seconds
        self._poll_interval = poll_interval
        self._busy_timeout = busy_timeout
        self._floor = FreeSpaceFloor(self._path.parent, min_free_bytes, label="queue")
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None  # used on the executor's thread only
        self._wakeup = asyncio.Event()

    @property
    def path(self) -> Path:
        return self._path

    @property
    def closed(self) -> bool:
        return self.resource_state == "closed"

    def __repr__(self) -> str:
        return f"<SqliteQueue {str(self._path)!r} {self.resource_state}>"

    # -- lifecycle (lifecycle.AsyncResource) -----------------------------------------------

    async def open(self) -> Self:
        await self._open_once()
        return self

    async def _open(self) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="vecpipe-sqlite-queue")
        await asyncio.get_running_loop().run_in_executor(self._executor, self._connect)

    async def _close(self) -> None:
        """Close the connection on its thread. Unacked leases simply expire."""
        self._wakeup.set()  # receivers waiting for messages see the queue is closed
        executor = self._executor
        if executor is None:
            return
        try:
            # Runs after every statement already queued: the thread executes in order.
            await asyncio.get_running_loop().run_in_executor(executor, self._disconnect)
        finally:
            executor.shutdown(wait=False)

    def __del__(self, _warn: Callable[..., None] = warnings.warn) -> None:
        if getattr(self, "_resource_state", "closed") != "open":
            return
        _warn(f"unclosed {self!r}", ResourceWarning, source=self)
        executor, conn = self._executor, self._conn
        if executor is not None:
            with contextlib.suppress(RuntimeError):
                if conn is not None:
                    executor.submit(conn.close)
                executor.shutdown(wait=False)

    def _connect(self) -> None:
        try:
            self._conn = ops.connect(self._path, self._busy_timeout)
        except sqlite3.Error as exc:
            if is_disk_full(exc):
                raise storage_full(f"cannot open queue file {self._path.name}") from exc
            raise QueueError(f"cannot open queue file {self._path.name}: {exc}") from exc

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    # -- running statements on the queue's thread ------------------------------------------

    def _guarded(self, op: Callable[[sqlite3.Connection], T], grows: bool = False) -> T:
        """Run `op` on the queue's thread; `grows`: it adds to the file, so the free-space
        floor is checked first (here, off the loop)."""
        conn = self._conn
        if conn is None:
            raise ClosedError("the sqlite queue is closed")
        if grows:
            self._floor.check_blocking()
        try:
            return op(conn)
        except sqlite3.Error as exc:
            if is_disk_full(exc):
                raise storage_full(f"sqlite queue {self._path.name}") from exc
            raise QueueError(f"sqlite queue {self._path.name}: {exc}") from exc

    def _submit(
        self, op: Callable[[sqlite3.Connection], T], grows: bool = False
    ) -> asyncio.Future[T]:
        self._check_open()
        assert self._executor is not None
        call = functools.partial(self._guarded, op, grows)
        return asyncio.get_running_loop().run_in_executor(self._executor, call)

    async def _call(self, op: Callable[[sqlite3.Connection], T], grows: bool = False) -> T:
        return await self._submit(op, grows)

    # -- MessageQueue ----------------------------------------------------------------------

    async def publish(self, bodies: Sequence[bytes]) -> None:
        """Returns once the messages are committed (and synced, synchronous=FULL)."""
        self._check_open()
        if bodies:
            await self._call(lambda conn: ops.insert(conn, bodies), grows=True)
            self._wakeup.set()

    async def receive(self, max_messages: int, timeout: float) -> list[Delivery]:
        if max_messages < 1:
            raise ValueError("max_messages must be at least 1")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(timeout, 0.0)
        while True:
            self._wakeup.clear()
            leased = await self._lease(max_messages)
            if leased:
                return [Delivery(m.body, m.attempts, SqliteTag(m.id, m.token)) for m in leased]
            remaining = deadline - loop.time()
            if remaining <= 0:
                return []
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(self._poll_interval, remaining)):
                    await self._wakeup.wait()
            self._check_open()

    async def _lease(self, max_messages: int) -> list[Leased]:
        future = self._submit(lambda conn: ops.lease(conn, max_messages, self._lease_seconds))
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            # The statement may still commit on the thread; give what it leases straight
            # back, or a cancelled receive (shutdown) would hide messages for a whole lease.
            future.add_done_callback(self._give_back_orphans)
            raise

    def _give_back_orphans(self, future: asyncio.Future[list[Leased]]) -> None:
        if future.cancelled() or future.exception() is not None or not future.result():
            return
        tags = [SqliteTag(m.id, m.token) for m in future.result()]
        if self.resource_state == "open" and self._executor is not None:
            with contextlib.suppress(RuntimeError):  # closing meanwhile: the leases expire
                self._executor.submit(self._guarded, lambda conn: ops.unlease(conn, tags))

    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        """Delete the messages, unless another receiver has leased one since (then no-op)."""
        self._check_open()
        tags = _tags(deliveries)
        if tags:
            lost = await self._call(lambda conn: ops.delete(conn, tags))
            _warn_lost("ack", lost)

    async def extend(self, deliveries: Sequence[Delivery], seconds: float) -> list[Delivery]:
        """Leases end `seconds` from now, unless lost: those are returned, left to their holder."""
        self._check_open()
        if seconds <= 0:
            raise ValueError("seconds must be positive")
        tags = _tags(deliveries)
        if not tags:
            return []
        lost = set(await self._call(lambda conn: ops.extend(conn, tags, seconds)))
        return [delivery for delivery in deliveries if delivery.tag in lost]

    async def retry(self, delivery: Delivery, delay: float, reason: str) -> None:
        tag = _tag(delivery)
        if await self._call(lambda conn: ops.reschedule(conn, tag, delay, reason), grows=True):
            if delay <= 0:
                self._wakeup.set()
        else:
            _warn_lost("retry", [tag])

    async def dead_letter(self, delivery: Delivery, reason: str) -> None:
        tag = _tag(delivery)
        if not await self._call(lambda conn: ops.bury(conn, tag, reason), grows=True):
            _warn_lost("dead_letter", [tag])

    async def release(self, deliveries: Sequence[Delivery]) -> None:
        """Give the messages back now; this delivery does not count as an attempt."""
        self._check_open()
        tags = _tags(deliveries)
        if tags:
            lost = await self._call(lambda conn: ops.unlease(conn, tags))
            _warn_lost("release", lost)
            self._wakeup.set()

    async def depth(self) -> int:
        """Messages waiting (due or delayed) plus messages leased and not yet acked."""
        return await self._call(ops.count)

    async def dead_letter_count(self) -> int:
        return await self._call(ops.count_dead)

    async def list_dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """Oldest failure first."""
        return await self._call(lambda conn: ops.dead_letters(conn, limit))

    async def replay_dead_letters(self, ids: Sequence[str] | None = None) -> int:
        """Requeue dead letters as new messages with attempts reset; unknown ids are skipped."""
        replayed = await self._call(lambda conn: ops.replay(conn, ids), grows=True)
        if replayed:
            self._wakeup.set()
        return replayed

    async def purge_tenant(self, tenant_id: str) -> Purged:
        return await self._call(lambda conn: ops.purge_tenant(conn, tenant_id))


def _tag(delivery: Delivery) -> SqliteTag:
    if not isinstance(delivery.tag, SqliteTag):
        raise TypeError("this delivery was not received from a SqliteQueue")
    return delivery.tag


def _tags(deliveries: Sequence[Delivery]) -> list[SqliteTag]:
    return [_tag(d) for d in deliveries]


def _warn_lost(action: str, lost: Sequence[SqliteTag]) -> None:
    if lost:
        log.warning(
            "sqlite queue: %s ignored for message(s) %s: their lease expired and another "
            "receiver holds them now",
            action,
            ", ".join(str(tag.id) for tag in lost),
        )
