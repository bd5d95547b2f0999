"""Store faults: the store stops taking writes, then comes back.

`/readyz` says not ready with the reason, the worker acknowledges nothing and spends no
attempts while the store is down (it pauses until the store reports ready), and the work
resumes when the store is back.

How the Edge data dir is made read-only. Tests run as root, for whom permission bits stop
nothing, and mounting is not for tests. `chattr +i` (the immutable attribute) stops root too:
no file can be created in the directory. That is what the readiness probe meets, for real.
But an immutable *file* that Qdrant Edge has mapped (its WAL) kills the process with SIGBUS
on the next write (tried: Edge 0.9 writes through mmap), which no service can answer. So:
- a space never opened: `chattr +i` on `shards/` alone is the whole fault (the shard cannot
  be created, a real EPERM);
- a space already open: `chattr +i` on `shards/` plus the store's executor calls for writes
  raising `OSError(EROFS)`, i.e. what Edge reports for a read-only file system, without the
  mmap crash.
The Qdrant adapter is pointed at a dead endpoint; no Qdrant server runs here, so its return
is covered by the Edge cases (the worker's pause is the same code for both stores).
"""

from __future__ import annotations

import errno
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy.exc import OperationalError

from tests.reliability.support import QueueSpy, ReadyProbes
from tests.support.app import FakeFactory, lifespan_state, make_settings
from tests.support.processes import eventually
from vecpipe.api.app import create_app
from vecpipe.api.state import AppState
from vecpipe.resources import Resources
from vecpipe.settings import Settings
from vecpipe.store.edge import EdgeStore
from vecpipe.worker.background import in_process_worker

TENANT = "stored"
WRITES = frozenset({"upsert", "delete", "set_payload", "flush"})


class Immutable:
    """`chattr +i` on a directory, lifted by `clear()` (and always at teardown)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def set(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["chattr", "+i", str(self.path)], capture_output=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"chattr +i is not possible here: {done.stderr.decode().strip()}")

    def clear(self) -> None:
        if self.path.exists():
            subprocess.run(["chattr", "-i", str(self.path)], check=True)


@pytest.fixture
def immutable(tmp_path: Path) -> Iterator[Immutable]:
    if shutil.which("chattr") is None:
        pytest.skip("chattr is not installed")
    lock = Immutable(tmp_path / "data" / "shards")
    try:
        yield lock
    finally:
        lock.clear()


def store_settings(tmp_path: Path, **overrides: object) -> Settings:
    # Attempts are few and retries fast: a worker that kept retrying during the outage
    # would dead-letter everything before the store came back.
    return make_settings(tmp_path / "data", max_attempts=3, worker_concurrency=2, **overrides)


@pytest.fixture
async def served(request: pytest.FixtureRequest) -> AsyncIterator[Callable[..., Any]]:
    """Starts the app with its worker on given settings; yields (http client, app state)."""
    stack: list[tuple[LifespanManager, httpx.AsyncClient]] = []

    async def start(settings: Settings) -> tuple[httpx.AsyncClient, AppState]:
        app = create_app(settings, provider_factory=FakeFactory(), background=in_process_worker)
        manager = await LifespanManager(app).__aenter__()
        http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://vecpipe.test"
        )
        stack.append((manager, http))
        return http, lifespan_state(manager)

    yield start
    for manager, http in reversed(stack):
        await http.aclose()
        await manager.__aexit__(None, None, None)


def records(prefix: str, count: int = 4) -> dict[str, Any]:
    return {"upsert": [{"id": f"{prefix}{i}", "text": f"{prefix} text {i}"} for i in range(count)]}


async def job_status(http: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    response = await http.get(f"/v1/tenants/{TENANT}/jobs/{job_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def ready(http: httpx.AsyncClient) -> bool:
    return (await http.get("/readyz")).status_code == 200


async def hold_outage(
    http: httpx.AsyncClient, resources: Resources, spy: QueueSpy, job_id: str
) -> dict[str, Any]:
    """Wait out a good part of the outage; returns /readyz's answer meanwhile."""
    probes = ReadyProbes(resources)
    await eventually(lambda: _at_least(spy.retries, 1), "the worker met the fault")
    await eventually(lambda: _probed(probes, 8), "the worker paused, probing the store")
    response = await http.get("/readyz")
    assert response.status_code == 503
    assert spy.acks == 0  # nothing acknowledged
    assert await resources.queue.list_dead_letters() == []  # no attempt wasted to death
    status = await job_status(http, job_id)
    assert (status["done"], status["failed"]) == (0, 0)
    body: dict[str, Any] = response.json()
    return body


async def test_edge_dir_read_only_before_the_space_opens(
    tmp_path: Path, immutable: Immutable, served: Callable[..., Any]
) -> None:
    http, state = await served(store_settings(tmp_path))
    resources: Resources = state.resources
    spy = QueueSpy(resources.queue).install()
    immutable.set()
    job_id = (await http.post(f"/v1/tenants/{TENANT}/jobs", json=records("a"))).json()["job_id"]
    body = await hold_outage(http, resources, spy, job_id)
    assert body["status"] == "not_ready"
    assert "not writable" in body["reason"] and "Operation not permitted" in body["reason"]
    assert all("edge open failed" in reason for _, reason in spy.retries), spy.retries

    immutable.clear()
    await eventually(lambda: _completed(http, job_id), "the job completed once the dir is back")
    assert await ready(http)
    assert (await job_status(http, job_id))["done"] == 4


async def test_edge_writes_fail_on_an_open_space(
    tmp_path: Path,
    immutable: Immutable,
    served: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    http, state = await served(store_settings(tmp_path))
    resources: Resources = state.resources
    first = (await http.post(f"/v1/tenants/{TENANT}/jobs", json=records("a"))).json()["job_id"]
    await eventually(lambda: _completed(http, first), "a first job opened the space")
    spy = QueueSpy(resources.queue).install()
    read_only = fail_writes(resources.store, monkeypatch)
    immutable.set()
    job_id = (await http.post(f"/v1/tenants/{TENANT}/jobs", json=records("b"))).json()["job_id"]
    body = await hold_outage(http, resources, spy, job_id)
    assert "not writable" in body["reason"]
    assert all("Read-only file system" in reason for _, reason in spy.retries), spy.retries
    search = await http.post(f"/v1/tenants/{TENANT}/search", json={"query": "a text"})
    assert search.status_code == 200  # reads still work

    immutable.clear()
    read_only.clear()
    await eventually(lambda: _completed(http, job_id), "the job completed once writes work")
    assert (await job_status(http, job_id))["done"] == 4
    assert await ready(http)


async def test_a_failing_flush_is_not_ready_until_a_write_succeeds(
    tmp_path: Path, served: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every flush fails (the data dir itself is fine): /readyz says so, with the reason, for
    as long as they fail, and is ready again once a write goes through."""
    http, state = await served(store_settings(tmp_path))
    resources: Resources = state.resources
    assert (await http.post(f"/v1/tenants/{TENANT}/records", json=records("a"))).status_code == 200
    failing = fail_writes(resources.store, monkeypatch)
    failing -= {"upsert", "delete", "set_payload"}  # only flushes fail
    body = (await http.post(f"/v1/tenants/{TENANT}/records", json=records("b"))).json()
    assert len(body["failed"]) == 4, body
    for _ in range(3):  # not a moment's failure: it stays not ready while flushes fail
        response = await http.get("/readyz")
        assert response.status_code == 503
        reason = response.json()["reason"]
        assert "edge flush failed" in reason and "Read-only file system" in reason, reason

    failing.clear()
    body = (await http.post(f"/v1/tenants/{TENANT}/records", json=records("c"))).json()
    assert body["upserted"] == 4 and body["failed"] == [], body
    assert await ready(http)


async def test_qdrant_at_a_dead_endpoint(tmp_path: Path, served: Callable[..., Any]) -> None:
    settings = store_settings(tmp_path, store="qdrant", qdrant_url="http://127.0.0.1:1")
    http, state = await served(settings)
    resources: Resources = state.resources
    spy = QueueSpy(resources.queue).install()
    job_id = (await http.post(f"/v1/tenants/{TENANT}/jobs", json=records("q"))).json()["job_id"]
    body = await hold_outage(http, resources, spy, job_id)
    assert body["status"] == "not_ready" and body["reason"].startswith("qdrant unreachable")
    assert all("qdrant" in reason for _, reason in spy.retries), spy.retries
    search = await http.post(f"/v1/tenants/{TENANT}/search", json={"query": "q text"})
    assert search.status_code == 503
    assert search.json()["error"]["code"] == "store_error"


async def test_database_failing_while_settling_keeps_the_worker_running(
    tmp_path: Path, served: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job database fails when the worker records outcomes: nothing is acknowledged,
    the batch goes back, the worker backs off and carries on once the database answers."""
    http, state = await served(store_settings(tmp_path))
    resources: Resources = state.resources
    spy = QueueSpy(resources.queue).install()
    jobs = resources.pipeline.jobs
    record_outcomes = jobs.record_outcomes
    failures: list[int] = []

    async def failing(*args: Any, **kwargs: Any) -> int:
        if len(failures) < 3:
            failures.append(1)
            raise OperationalError("UPDATE job_items ...", {}, OSError("disk I/O error"))
        return await record_outcomes(*args, **kwargs)

    monkeypatch.setattr(jobs, "record_outcomes", failing)
    job_id = (await http.post(f"/v1/tenants/{TENANT}/jobs", json=records("d"))).json()["job_id"]
    await eventually(lambda: _completed(http, job_id), "the job completed after the failures")
    assert len(failures) == 3 and spy.acks == 4
    assert state.background is not None and state.background.is_running()
    status = await job_status(http, job_id)
    # the redeliveries find the records stored under their job's versions: their own write
    assert (status["done"], status["unchanged"], status["failed"]) == (4, 0, 0)
    assert await resources.queue.list_dead_letters() == []


class _Switch(set[str]):
    """The write ops currently failing (empty: the store works)."""


def fail_writes(store: object, monkeypatch: pytest.MonkeyPatch) -> _Switch:
    """Make the Edge store's write calls fail on its executor thread, as a read-only FS would."""
    store = getattr(store, "inner", store)  # resources.store is the guard around the adapter
    assert isinstance(store, EdgeStore)
    failing = _Switch(WRITES)
    run = store._run

    async def run_or_fail(op: str, space: Any, fn: Callable[..., Any], *args: Any) -> Any:
        return await run(op, space, _read_only if op in failing else fn, *args)

    monkeypatch.setattr(store, "_run", run_or_fail)
    return failing


def _read_only(*args: object) -> None:
    raise OSError(errno.EROFS, "Read-only file system")


async def _at_least(items: list[Any], count: int) -> bool:
    return len(items) >= count


async def _probed(probes: ReadyProbes, count: int) -> bool:
    return probes.calls >= count


async def _completed(http: httpx.AsyncClient, job_id: str) -> bool:
    return (await job_status(http, job_id))["status"] == "completed"
