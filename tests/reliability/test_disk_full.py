"""A full disk refuses writes; it never crashes (issue 12, finding 3).

Setup: a 160 MiB tmpfs mounted by the test (tests/support/disk.py: root only, as in CI;
elsewhere skipped with the reason) holds the whole data dir: Edge shards, the SQLite queue
and the SQLite database. A ballast file fills it past the free-space floor (8 MiB here), and
is deleted again to give the space back. The servers are real `vecpipe serve` processes with
fake providers (tests/support/fake_serve.py), so that a crash would show as an exit code.

Before the fix, by hand on a 40 MiB tmpfs with the real model: `vecpipe serve` died of SIGBUS
(exit -7, no log line) on the first writes once the disk was full, its acknowledged records
intact; restarted on the full disk it exited at once (the queue file rewrote its schema
version on every open: "database or disk is full"); and loading the shard there died of SIGBUS.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from tests.reliability.support import QueueSpy, ReadyProbes
from tests.support.app import FakeFactory, lifespan_state, make_settings
from tests.support.disk import MIB, Disk, small_disk  # noqa: F401  (the fixture)
from tests.support.processes import eventually
from tests.support.server import ServeProcess
from vecpipe.api.app import create_app
from vecpipe.db.engine import open_database
from vecpipe.errors import StorageFull
from vecpipe.queue.sqlite import SqliteQueue
from vecpipe.resources import Resources
from vecpipe.worker.background import worker_for

pytestmark = pytest.mark.slow

FLOOR = 8 * MIB
TENANT = "t"
LOCAL_CONFIG = {"primary": {"kind": "local", "model": "all-MiniLM-L6-v2"}}
TEXT = "lorem ipsum dolor sit amet " * 150  # ~4 KB: a few MiB of writes fill what is left


@pytest.fixture
def serve(small_disk: Disk, tmp_path: Path) -> Iterator[Callable[..., ServeProcess]]:  # noqa: F811
    """Starts servers on the small disk's data dir (logs outside it); stops them after."""
    started: list[ServeProcess] = []

    def start(floor: int = FLOOR, until: str = "/readyz") -> ServeProcess:
        env = {
            "VECPIPE_MIN_FREE_BYTES": str(floor),
            "VECPIPE_WORKER_POLL_SECONDS": "0.05",
            "VECPIPE_RETRY_BASE_SECONDS": "0.05",
            "VECPIPE_RETRY_MAX_SECONDS": "0.2",
        }
        server = ServeProcess(
            small_disk.path / "data", extra_env=env, fake_providers=True, log_dir=tmp_path
        )
        started.append(server)
        return server.start(until=until)

    yield start
    for server in started:
        server.__exit__(None, None, None)


def batch(prefix: str, count: int = 50) -> dict[str, Any]:
    return {"upsert": [{"id": f"{prefix}{i}", "text": f"{prefix}{i} {TEXT}"} for i in range(count)]}


def write(http: httpx.Client, prefix: str, count: int = 50) -> list[str]:
    """Upsert a batch; every record acknowledged, their ids returned."""
    response = http.post(f"/v1/tenants/{TENANT}/records", json=batch(prefix, count))
    assert response.status_code == 200, response.text
    assert response.json()["failed"] == [] and response.json()["upserted"] == count
    return [f"{prefix}{i}" for i in range(count)]


def submit(http: httpx.Client, prefix: str, count: int = 10) -> str:
    response = http.post(f"/v1/tenants/{TENANT}/jobs", json=batch(prefix, count))
    assert response.status_code == 202, response.text
    job_id: str = response.json()["job_id"]
    return job_id


def job(http: httpx.Client, job_id: str) -> dict[str, Any]:
    response = http.get(f"/v1/tenants/{TENANT}/jobs/{job_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for: {what}")
        time.sleep(0.05)


def assert_refused(response: httpx.Response) -> None:
    """507 with Retry-After and the JSON error: the write was refused, nothing else."""
    assert response.status_code == 507, response.text
    assert int(response.headers["retry-after"]) >= 1
    assert response.json()["error"]["code"] == "insufficient_storage"


def assert_all_present(http: httpx.Client, ids: list[str]) -> None:
    missing = [i for i in ids if http.get(f"/v1/tenants/{TENANT}/records/{i}").status_code != 200]
    assert missing == [], f"{len(missing)} acknowledged records missing: {missing[:5]}"


def assert_clean_exit(server: ServeProcess) -> None:
    server.signal(signal.SIGTERM)
    assert server.wait(20) == 0, server.log()
    assert "Traceback" not in server.log(), server.log()


def test_a_full_disk_refuses_writes_and_the_server_lives(
    small_disk: Disk,  # noqa: F811
    serve: Callable[..., ServeProcess],
) -> None:
    server = serve()
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        acked = write(http, "a") + write(http, "b")
        done = submit(http, "j")
        until(lambda: job(http, done)["status"] == "completed", "a first job done")

        small_disk.fill(leave=FLOOR // 8)  # below the floor, and less than the writes below
        for round_ in range(8):  # ~1.6 MiB of text: more than is left, were they taken
            assert_refused(http.post(f"/v1/tenants/{TENANT}/records", json=batch(f"x{round_}")))
        assert_refused(http.post(f"/v1/tenants/{TENANT}/jobs", json=batch("y")))
        assert_refused(http.put("/v1/tenants/other/ai-config", json=LOCAL_CONFIG))
        assert_refused(http.delete(f"/v1/tenants/{TENANT}/records/a0"))

        search = http.post(f"/v1/tenants/{TENANT}/search", json={"query": "a1 lorem"})
        assert search.status_code == 200 and search.json()["results"], search.text
        assert http.get(f"/v1/tenants/{TENANT}/records/a1").status_code == 200
        assert job(http, done)["done"] == 10
        assert http.get("/healthz").status_code == 200
        ready = http.get("/readyz")
        assert ready.status_code == 503
        assert "below the floor" in ready.json()["reason"], ready.text
        assert server.process is not None and server.process.poll() is None, server.log()

        small_disk.clear()  # space is back: no restart
        until(lambda: http.get("/readyz").status_code == 200, "ready again")
        acked += write(http, "c")
        again = submit(http, "k")
        until(lambda: job(http, again)["status"] == "completed", "a job after the full disk")
        assert http.put("/v1/tenants/other/ai-config", json=LOCAL_CONFIG).status_code == 200
        assert_all_present(http, acked + [f"j{i}" for i in range(10)])
        assert http.get(f"/v1/tenants/{TENANT}/records/x0").status_code == 404
    assert_clean_exit(server)


def test_sqlite_full_is_507_not_500(
    small_disk: Disk,  # noqa: F811
    serve: Callable[..., ServeProcess],
) -> None:
    """With no floor, the database meets the full disk itself: "database or disk is full"
    is StorageFull (507), with no traceback and the connection kept."""
    server = serve(floor=0)
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        small_disk.fill(leave=0)
        big_job = {"upsert": [{"id": f"{i:0400d}", "text": "t"} for i in range(1000)]}
        response = http.post(f"/v1/tenants/{TENANT}/jobs", json=big_job)  # 400 KB of job rows
        assert_refused(response)
        assert response.headers.get("connection") != "close"
        assert "disk is full" in response.json()["error"]["message"]
        assert http.get("/healthz").status_code == 200
        assert job_count(server) == 0  # the refused job left nothing behind

        small_disk.clear()
        accepted = http.post(f"/v1/tenants/{TENANT}/jobs", json=big_job)
        assert accepted.status_code == 202, accepted.text
        assert server.process is not None and server.process.poll() is None
    assert_clean_exit(server)
    assert "Exception in ASGI application" not in server.log()


def job_count(server: ServeProcess) -> int:
    with sqlite3.connect(server.data_dir / "vecpipe.db") as conn:
        (count,) = conn.execute("SELECT count(*) FROM jobs").fetchone()
    return int(count)


def test_a_restart_on_a_full_disk_answers_and_recovers(
    small_disk: Disk,  # noqa: F811
    serve: Callable[..., ServeProcess],
) -> None:
    """The crash loop: a server killed, the disk then filled to the last byte, and a new one
    started there comes up (not ready), answers reads of the space it cannot load yet with
    507, and serves it once space is back."""
    first = serve()
    with httpx.Client(base_url=first.base_url, timeout=30) as http:
        acked = write(http, "a")
    first.kill()  # SIGKILL: the SQLite files keep their WAL and shared memory

    small_disk.fill(leave=0)
    server = serve(until="/healthz")
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        ready = http.get("/readyz")
        assert ready.status_code == 503 and "below the floor" in ready.json()["reason"]
        refused = http.post(f"/v1/tenants/{TENANT}/search", json={"query": "a1"})
        assert_refused(refused)
        assert "cannot open space" in refused.json()["error"]["message"]
        assert_refused(http.post(f"/v1/tenants/{TENANT}/records", json=batch("x")))
        assert server.process is not None and server.process.poll() is None, server.log()

        small_disk.clear()
        search = http.post(f"/v1/tenants/{TENANT}/search", json={"query": "a1 lorem"})
        assert search.status_code == 200 and search.json()["results"], search.text
        acked += write(http, "b")
        assert_all_present(http, acked)
        until(lambda: http.get("/readyz").status_code == 200, "ready again")
    assert_clean_exit(server)


async def test_a_queued_job_waits_for_space_without_spending_attempts(
    small_disk: Disk,  # noqa: F811
) -> None:
    """The worker meets the full disk: it gives the batch back (no attempt spent, nothing
    acknowledged or dead-lettered), waits for the store to report space, then completes."""
    settings = make_settings(small_disk.path / "data", min_free_bytes=FLOOR, max_attempts=2)
    app = create_app(settings, provider_factory=FakeFactory())
    async with LifespanManager(app) as manager:
        http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://t"
        )
        async with http:
            resources: Resources = lifespan_state(manager).resources
            accepted = await http.post(f"/v1/tenants/{TENANT}/jobs", json=batch("q", 5))
            job_id = accepted.json()["job_id"]
            small_disk.fill(leave=FLOOR // 8)

            spy = QueueSpy(resources.queue).install()
            probes = ReadyProbes(resources)
            worker = worker_for(resources, settings=settings)
            task = asyncio.create_task(worker.run())
            try:
                await eventually(lambda: _true(spy.released >= 5), "the worker met the full disk")
                await eventually(lambda: _true(probes.calls >= 5), "the worker waits for space")
                assert (spy.acks, spy.retries) == (0, [])
                assert await resources.queue.list_dead_letters() == []
                assert await resources.queue.depth() == 5
                assert _attempts(small_disk.path / "data" / "queue.db") == [0] * 5
                status = (await http.get(f"/v1/tenants/{TENANT}/jobs/{job_id}")).json()
                assert (status["status"], status["done"], status["failed"]) == ("queued", 0, 0)

                small_disk.clear()
                await eventually(lambda: _completed(http, job_id), "the job completed")
                status = (await http.get(f"/v1/tenants/{TENANT}/jobs/{job_id}")).json()
                assert (status["done"], status["failed"]) == (5, 0)
                assert spy.retries == [] and await resources.queue.list_dead_letters() == []
            finally:
                worker.request_stop()
                await task


async def test_the_queue_and_database_on_a_full_disk(small_disk: Disk) -> None:  # noqa: F811
    """No floor: SQLite itself meets the full disk ("database or disk is full"), and both the
    queue and the database raise StorageFull, then work again once space is back."""
    data = small_disk.path / "data"
    url = f"sqlite+aiosqlite:///{data / 'vecpipe.db'}"
    async with SqliteQueue(data / "queue.db") as queue, open_database(url) as database:
        await queue.publish([b"before"])
        small_disk.fill(leave=0)
        with pytest.raises(StorageFull, match="disk is full"):
            await queue.publish([b"x" * 4096] * 256)
        with pytest.raises(StorageFull, match="disk is full"):
            await database.jobs.create(TENANT, [(f"{i:0400d}", "upsert") for i in range(1000)])
        assert await queue.depth() == 1  # reads go on

        small_disk.clear()
        await queue.publish([b"x" * 4096] * 256)
        assert await queue.depth() == 257
        await database.jobs.create(TENANT, [(f"{i:0400d}", "upsert") for i in range(1000)])


async def _true(value: bool) -> bool:
    return value


async def _completed(http: httpx.AsyncClient, job_id: str) -> bool:
    response = await http.get(f"/v1/tenants/{TENANT}/jobs/{job_id}")
    return bool(response.json()["status"] == "completed")


def _attempts(queue_file: Path) -> list[int]:
    with sqlite3.connect(queue_file) as conn:
        return [int(n) for (n,) in conn.execute("SELECT attempts FROM messages ORDER BY id")]
