from __future__ import annotations

import asyncio
import gc
import logging
import os
import sqlite3
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.queue.contract import (
    LONG_LEASE,
    MessageQueueContract,
    QueueFactory,
    QueuePool,
    collect,
)
from vecpipe.errors import ClosedError, ConfigError, QueueError, StorageFull
from vecpipe.queue import sqlite_ops
from vecpipe.queue.base import Delivery
from vecpipe.queue.sqlite import SqliteQueue

PATIENCE = 10.0


def open_queue(path: Path, lease_seconds: float = LONG_LEASE) -> SqliteQueue:
    return SqliteQueue(path, lease_seconds=lease_seconds, poll_interval=0.01)


class TestSqliteQueueContract(MessageQueueContract):
    @pytest.fixture
    async def queue_factory(self, tmp_path: Path) -> AsyncIterator[QueueFactory]:
        path = tmp_path / "queue.db"

        async def opener(*, lease_seconds: float) -> SqliteQueue:
            return await open_queue(path, lease_seconds).open()

        async with QueuePool(opener) as pool:
            yield pool.open


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "data" / "queue.db"  # the data dir does not exist yet


async def test_messages_and_dead_letters_survive_close_and_reopen(db: Path) -> None:
    async with open_queue(db) as queue:
        await queue.publish([b"a", b"b", b"c"])
        first, second = await queue.receive(2, timeout=0)
        await queue.ack([first])
        await queue.dead_letter(second, "boom")

    async with open_queue(db) as queue:
        assert await queue.depth() == 1
        assert [d.body for d in await queue.receive(5, timeout=0)] == [b"c"]
        assert [letter.body for letter in await queue.list_dead_letters()] == [b"b"]


async def test_lease_of_a_crashed_process_expires_after_reopen(db: Path) -> None:
    async with open_queue(db, lease_seconds=0.2) as queue:
        await queue.publish([b"work"])
        (first,) = await queue.receive(1, timeout=0)
        # closed without ack or release, as a killed worker would leave it

    async with open_queue(db) as queue:
        (again,) = await collect(queue, 1, patience=PATIENCE)
        assert (again.body, again.attempts) == (b"work", first.attempts + 1)


async def test_old_holder_cannot_touch_a_message_leased_again(
    db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with open_queue(db, lease_seconds=0.2) as queue:
        await queue.publish([b"slow"])
        (stale,) = await queue.receive(1, timeout=0)
        (fresh,) = await collect(queue, 1, patience=PATIENCE)
        assert fresh.attempts == 2

        with caplog.at_level(logging.WARNING, logger="vecpipe.queue.sqlite"):
            await queue.ack([stale])
            await queue.retry(stale, 0, "late")
            await queue.release([stale])
            await queue.dead_letter(stale, "late")
        assert len(caplog.records) == 4
        assert await queue.depth() == 1
        assert await queue.list_dead_letters() == []

        await queue.ack([fresh])
        assert await queue.depth() == 0


async def test_extend_never_takes_back_a_lease_another_receiver_holds(
    db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with open_queue(db, lease_seconds=0.2) as queue:
        await queue.publish([b"slow"])
        (stale,) = await queue.receive(1, timeout=0)
        (fresh,) = await collect(queue, 1, patience=PATIENCE)  # leased again once it ran out
        await queue.publish([b"next"])
        (mine,) = await queue.receive(1, timeout=0)

        assert await queue.extend([stale, mine, fresh], LONG_LEASE) == [stale]
        assert await queue.receive(5, timeout=0.5) == []  # past both leases' first expiry
        with caplog.at_level(logging.WARNING, logger="vecpipe.queue.sqlite"):
            await queue.ack([fresh, mine])  # both tokens still hold their message
        assert caplog.records == []
        assert await queue.depth() == 0


async def test_an_extended_lease_still_runs_out(db: Path) -> None:
    async with open_queue(db, lease_seconds=LONG_LEASE) as queue:
        await queue.publish([b"abandoned"])
        (first,) = await queue.receive(1, timeout=0)
        assert await queue.extend([first], 0.1) == []  # ends 0.1 s from now, not 30 s
        (again,) = await collect(queue, 1, patience=PATIENCE)
        assert (again.body, again.attempts) == (b"abandoned", 2)
        with pytest.raises(ValueError):
            await queue.extend([again], 0)


async def test_holder_may_ack_after_its_lease_ran_out_if_nobody_took_it(db: Path) -> None:
    async with open_queue(db, lease_seconds=0.05) as queue:
        await queue.publish([b"done late"])
        (delivery,) = await queue.receive(1, timeout=0)
        await asyncio.sleep(0.1)
        await queue.ack([delivery])
        assert await queue.depth() == 0


async def test_file_is_wal_with_schema(db: Path) -> None:
    async with open_queue(db):
        pass

    def inspect() -> tuple[str, int, set[str]]:
        with sqlite3.connect(db) as conn:
            (mode,) = conn.execute("PRAGMA journal_mode").fetchone()
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        conn.close()
        return mode, version, tables

    mode, version, tables = await asyncio.to_thread(inspect)
    assert mode == "wal"
    assert version == sqlite_ops.SCHEMA_VERSION
    assert {"messages", "dead_letters"} <= tables


async def test_statements_run_off_the_event_loop_thread(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[threading.Thread] = []
    real_insert = sqlite_ops.insert

    def spy(conn: sqlite3.Connection, bodies: list[bytes]) -> None:
        threads.append(threading.current_thread())
        real_insert(conn, bodies)

    monkeypatch.setattr(sqlite_ops, "insert", spy)
    async with open_queue(db) as queue:
        await queue.publish([b"x"])
    assert threads
    assert threads[0] is not threading.current_thread()


async def test_cancelled_receive_gives_its_lease_back(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entered, proceed = threading.Event(), threading.Event()
    real_lease = sqlite_ops.lease

    def slow_lease(conn: sqlite3.Connection, n: int, seconds: float) -> list[sqlite_ops.Leased]:
        entered.set()
        proceed.wait(PATIENCE)
        return real_lease(conn, n, seconds)

    async with open_queue(db) as queue:
        await queue.publish([b"m"])
        monkeypatch.setattr(sqlite_ops, "lease", slow_lease)
        receiving = asyncio.create_task(queue.receive(1, timeout=0))
        await asyncio.to_thread(entered.wait, PATIENCE)
        receiving.cancel()
        proceed.set()
        with pytest.raises(asyncio.CancelledError):
            await receiving
        monkeypatch.setattr(sqlite_ops, "lease", real_lease)

        (again,) = await collect(queue, 1, patience=PATIENCE)
        assert again.attempts == 1  # given back uncounted, long before the 30 s lease


async def test_close_wakes_a_waiting_receiver(db: Path) -> None:
    queue = await open_queue(db).open()
    waiting = asyncio.create_task(queue.receive(1, timeout=PATIENCE))
    await asyncio.sleep(0.05)
    await queue.aclose()
    with pytest.raises(ClosedError):
        await waiting


async def test_refuses_use_before_open_and_a_second_open(db: Path) -> None:
    queue = open_queue(db)
    with pytest.raises(ClosedError):
        await queue.publish([b"x"])
    async with queue:
        with pytest.raises(ClosedError):
            await queue.open()
    assert queue.closed


async def test_unusable_file_is_a_queue_error(tmp_path: Path) -> None:
    with pytest.raises(QueueError):
        await open_queue(tmp_path).open()  # a directory, not a database file


async def test_newer_schema_is_refused(db: Path) -> None:
    def stamp() -> None:
        db.parent.mkdir()
        conn = sqlite3.connect(db)
        conn.execute("PRAGMA user_version = 99")
        conn.close()

    await asyncio.to_thread(stamp)
    with pytest.raises(ConfigError, match="schema version 99"):
        await open_queue(db).open()


async def test_rejects_deliveries_of_another_backend(db: Path) -> None:
    async with open_queue(db) as queue:
        with pytest.raises(TypeError):
            await queue.ack([Delivery(b"x", 1, tag="broker-tag")])


async def test_unclosed_queue_warns(db: Path) -> None:
    queue = await open_queue(db).open()
    # The queue's thread may still hold its last job (which refers to the queue) for a moment
    # after the job's result reached the loop; one more job, of its own, lets go of it.
    assert queue._executor is not None
    await asyncio.get_running_loop().run_in_executor(queue._executor, lambda: None)
    with pytest.warns(ResourceWarning, match="unclosed"):
        del queue
        gc.collect()


async def test_long_reasons_are_clipped_and_bad_ids_skipped(db: Path) -> None:
    async with open_queue(db) as queue:
        await queue.publish([b"x"])
        (delivery,) = await queue.receive(1, timeout=0)
        await queue.dead_letter(delivery, "e" * 100_000)
        (letter,) = await queue.list_dead_letters()
        assert len(letter.reason) == sqlite_ops.MAX_REASON_CHARS
        assert letter.failed_at is not None and letter.failed_at.tzinfo is not None
        assert await queue.replay_dead_letters(["", "x1", "-1"]) == 0
        assert await queue.replay_dead_letters([letter.id, letter.id]) == 1


_CONSUMER = """
import asyncio, sys
from pathlib import Path
from vecpipe.queue.sqlite import SqliteQueue

async def main(path):
    async with SqliteQueue(Path(path), lease_seconds=30, poll_interval=0.01) as queue:
        print("ready", flush=True)
        idle = 0
        while idle < 5:
            got = await queue.receive(3, timeout=0.2)
            idle = 0 if got else idle + 1
            for delivery in got:
                print(delivery.body.decode(), flush=True)
            await queue.ack(got)

asyncio.run(main(sys.argv[1]))
"""


@pytest.mark.slow
async def test_another_process_consumes_concurrently_without_double_delivery(db: Path) -> None:
    env = _child_env()
    bodies = {f"m{i:03d}" for i in range(150)}
    async with open_queue(db) as queue:
        await queue.depth()  # the file exists with its schema before the child opens it
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _CONSUMER, str(db), env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            async with asyncio.timeout(60):
                mine, theirs, errors = await _consume_alongside(queue, child, bodies)
        finally:
            if child.returncode is None:
                child.kill()
                await child.wait()
        assert child.returncode == 0, errors
        assert theirs, "the child process received nothing"
        assert not set(mine) & set(theirs), "a message was delivered to both processes"
        assert len(mine) + len(theirs) == len(bodies)
        assert set(mine) | set(theirs) == bodies
        assert await queue.depth() == 0


def _child_env() -> dict[str, str]:
    """The child imports the same vecpipe as this process, installed or not."""
    import vecpipe

    src = str(Path(vecpipe.__file__).resolve().parents[1])
    path = os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path}


async def _consume_alongside(
    queue: SqliteQueue, child: asyncio.subprocess.Process, bodies: set[str]
) -> tuple[list[str], list[str], str]:
    stdout, stderr = child.stdout, child.stderr
    assert stdout is not None and stderr is not None
    assert await stdout.readline() == b"ready\n"
    await queue.publish(sorted(b.encode() for b in bodies))

    held = await queue.receive(3, timeout=0)  # hold a lease until the child got work too
    mine = [d.body.decode() for d in held]
    theirs = [(await stdout.readline()).decode().strip()]
    await queue.ack(held)

    async def read_child() -> None:
        async for line in stdout:
            theirs.append(line.decode().strip())

    reader = asyncio.create_task(read_child())
    while got := await queue.receive(3, timeout=0.5):
        mine += [d.body.decode() for d in got]
        await queue.ack(got)
    await reader
    errors = (await stderr.read()).decode()
    await child.wait()
    return mine, theirs, errors


# -- a full disk --------------------------------------------------------------------------


async def test_below_the_floor_growing_calls_are_refused(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    free = {"bytes": 100 * 1024 * 1024}
    monkeypatch.setattr("vecpipe.diskspace.free_bytes", lambda path: free["bytes"])
    queue = SqliteQueue(db, lease_seconds=LONG_LEASE, poll_interval=0.01, min_free_bytes=1 << 20)
    async with queue:
        await queue.publish([b"a", b"b", b"c"])
        [first, second, third] = await queue.receive(3, timeout=0)
        await queue.dead_letter(third, "boom")
        free["bytes"] = (1 << 20) - 1
        with pytest.raises(StorageFull, match=r"queue disk has 1\.0 MiB free, below the floor"):
            await queue.publish([b"d"])
        with pytest.raises(StorageFull):
            await queue.retry(first, 0.0, "again")
        with pytest.raises(StorageFull):
            await queue.dead_letter(first, "boom")
        with pytest.raises(StorageFull):
            await queue.replay_dead_letters()
        await queue.ack([first])  # what shrinks the queue, or gives work back, goes on
        await queue.release([second])
        assert [d.body for d in await queue.receive(3, timeout=0)] == [b"b"]
        assert await queue.depth() == 1 and len(await queue.list_dead_letters()) == 1

        free["bytes"] = 1 << 20  # back above: no reopening
        await queue.publish([b"d"])
        assert await queue.depth() == 2


async def test_database_or_disk_is_full_is_storage_full(db: Path) -> None:
    """SQLite's own SQLITE_FULL (here from a page limit; a full disk says the same)."""
    async with open_queue(db) as queue:
        await queue._call(lambda conn: conn.execute("PRAGMA max_page_count = 8"))
        with pytest.raises(StorageFull, match=r"sqlite queue queue\.db: the disk is full") as full:
            await queue.publish([b"x" * 4096] * 16)
        assert isinstance(full.value.__cause__, sqlite3.OperationalError)
        assert await queue.depth() == 0  # nothing half published
        await queue.publish([b"small"])
        with pytest.raises(QueueError):  # other SQLite failures stay QueueError
            await queue._call(lambda conn: conn.execute("SELECT * FROM no_such_table"))
