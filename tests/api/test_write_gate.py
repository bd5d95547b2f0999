"""Writes for a tenant being offboarded get 409 and write nothing (api/write_gate.py):
started during an offboarding, left behind by one a crash cut short, or in flight when it
starts (the offboarding waits for them, then deletes what they wrote)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from tests.support.app import FakeFactory, lifespan_state, make_settings
from vecpipe.api.app import create_app
from vecpipe.queue.base import Purged
from vecpipe.resources import Resources

A, B = "acme", "globex"
RECORD = {"id": "late", "text": "written during the offboarding"}
LOCAL = {"primary": {"kind": "local", "model": "all-MiniLM-L6-v2"}}
# every write route of a tenant: (method, path under /v1/tenants/{t}, json body, content)
WRITES: list[tuple[str, str, Any]] = [
    ("POST", "records", {"upsert": [RECORD]}),
    ("POST", "records/delete", {"filter": {"src": "x"}}),
    ("DELETE", "records/r1", None),
    ("POST", "jobs", {"upsert": [RECORD]}),
    ("POST", "sync", {"records": [RECORD], "scope": {"src": "x"}}),
    ("POST", "sync?job=true", {"records": [RECORD], "scope": {"src": "x"}}),
    ("PUT", "ai-config", LOCAL),
    ("DELETE", "ai-config", None),
    ("DELETE", "ai-config/migration", None),
    ("POST", "tokens", None),
]


@pytest.fixture
async def app(
    tmp_path: Any, fake_factory: FakeFactory
) -> AsyncIterator[tuple[httpx.AsyncClient, Resources]]:
    built = create_app(make_settings(tmp_path / "data"), provider_factory=fake_factory)
    async with (
        LifespanManager(built) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://vecpipe.test"
        ) as http,
    ):
        yield http, lifespan_state(manager).resources


async def _seed(http: httpx.AsyncClient, tenant: str) -> None:
    body = {"upsert": [{"id": f"r{i}", "text": f"note {i}"} for i in range(3)]}
    assert (await http.post(f"/v1/tenants/{tenant}/records", json=body)).status_code == 200


async def _count(http: httpx.AsyncClient, tenant: str) -> int:
    count: int = (await http.post(f"/v1/tenants/{tenant}/records/count")).json()["records"]
    return count


async def _write(
    http: httpx.AsyncClient, tenant: str, method: str, path: str, body: Any
) -> httpx.Response:
    return await http.request(method, f"/v1/tenants/{tenant}/{path}", json=body)


async def test_writes_started_during_an_offboarding_get_409_and_write_nothing(
    app: tuple[httpx.AsyncClient, Resources],
) -> None:
    http, resources = app
    await _seed(http, A)
    await _seed(http, B)
    entered, release = asyncio.Event(), asyncio.Event()
    purge = resources.queue.purge_tenant

    async def held_purge(tenant_id: str) -> Purged:
        entered.set()
        await release.wait()
        return await purge(tenant_id)

    resources.queue.purge_tenant = held_purge  # type: ignore[method-assign]
    offboarding = asyncio.create_task(http.delete(f"/v1/tenants/{A}"))
    await asyncio.wait_for(entered.wait(), 10)
    for method, path, body in WRITES:
        refused = await _write(http, A, method, path, body)
        assert refused.status_code == 409, (method, path, refused.text)
        assert refused.json()["error"]["code"] == "tenant_offboarding", (method, path)
        assert "being offboarded" in refused.json()["error"]["message"]
    other = await _write(http, B, "POST", "records", {"upsert": [RECORD]})
    assert other.status_code == 200, other.text  # another tenant's writes go on
    release.set()
    removed = await offboarding
    assert removed.status_code == 200, removed.text
    assert removed.json()["records"] == 3 and removed.json()["jobs"] == 0
    assert removed.json()["tokens"] == 0  # no token was issued meanwhile
    assert await _count(http, A) == 0
    assert await _count(http, B) == 4
    # a finished offboarding refuses nothing: the tenant may come back
    back = await _write(http, A, "POST", "records", {"upsert": [RECORD]})
    assert back.status_code == 200, back.text


async def test_a_tombstone_left_deleting_by_a_crash_refuses_writes_until_repeated(
    app: tuple[httpx.AsyncClient, Resources],
) -> None:
    http, resources = app
    await _seed(http, A)
    await resources.database.tombstones.begin(A)  # as a DELETE that died mid-way leaves it
    refused = await _write(http, A, "POST", "records", {"upsert": [RECORD]})
    assert refused.status_code == 409 and "repeating it" in refused.json()["error"]["message"]
    assert (await http.delete(f"/v1/tenants/{A}")).status_code == 200
    assert (await _write(http, A, "POST", "records", {"upsert": [RECORD]})).status_code == 200


async def test_an_offboarding_waits_for_writes_in_flight_then_deletes_them(
    app: tuple[httpx.AsyncClient, Resources], fake_factory: FakeFactory
) -> None:
    http, _ = app
    await _seed(http, A)
    fake_factory.built[-1].delay = 0.5  # the next write embeds slowly
    body = {"upsert": [{"id": f"slow{i}", "text": f"slow {i}"} for i in range(5)]}
    writing = asyncio.create_task(http.post(f"/v1/tenants/{A}/records", json=body))
    await asyncio.sleep(0.1)  # the write is past its check, embedding
    offboarding = asyncio.create_task(http.delete(f"/v1/tenants/{A}"))
    written = await writing
    assert written.status_code == 200 and written.json()["upserted"] == 5
    removed = await offboarding
    fake_factory.built[-1].delay = 0.0
    assert removed.status_code == 200 and removed.json()["records"] == 8
    assert await _count(http, A) == 0


async def test_a_sync_streaming_when_an_offboarding_starts_is_refused_before_it_writes(
    app: tuple[httpx.AsyncClient, Resources],
) -> None:
    http, _ = app
    await _seed(http, A)
    first_line_sent, go_on = asyncio.Event(), asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        yield b'{"id": "s1", "text": "streamed one"}\n'
        first_line_sent.set()
        await go_on.wait()
        yield b'{"id": "s2", "text": "streamed two"}\n'

    syncing = asyncio.create_task(
        http.post(
            f"/v1/tenants/{A}/sync",
            content=body(),
            headers={"content-type": "application/x-ndjson"},
            params={"scope": '{"src": "none"}'},
        )
    )
    await asyncio.wait_for(first_line_sent.wait(), 10)
    offboarding = asyncio.create_task(http.delete(f"/v1/tenants/{A}"))
    await asyncio.sleep(0.2)  # the offboarding has closed the gate, waits for the sync
    assert not offboarding.done()
    go_on.set()
    refused = await syncing
    assert refused.status_code == 409, refused.text
    assert (await offboarding).json()["records"] == 3
    assert await _count(http, A) == 0
