"""POST /v1/tenants/{t}/sync over HTTP (issue 15): both body forms and the job form give the
same exact drift, write only the drift, call the provider only for missing and changed
texts, keep a scope's deletions inside it, and refuse bad input naming it, changing nothing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from tests.support.app import FakeFactory, lifespan_state, make_settings
from tests.support.processes import eventually
from vecpipe.api.app import create_app
from vecpipe.resources import Resources
from vecpipe.worker.background import worker_for

S = "/v1/tenants/acme/sync"
R = "/v1/tenants/acme/records"
NDJSON = {"content-type": "application/x-ndjson"}


@dataclass
class App:
    http: httpx.AsyncClient
    resources: Resources
    fake: FakeFactory


@pytest.fixture
async def app(tmp_path: Any, fake_factory: FakeFactory) -> AsyncIterator[App]:
    settings = make_settings(tmp_path / "data")
    settings.limits.max_sync_stream_bytes = 200_000
    built = create_app(settings, provider_factory=fake_factory)
    async with (
        LifespanManager(built) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://vecpipe.test"
        ) as http,
    ):
        yield App(http, lifespan_state(manager).resources, fake_factory)


def rec(i: int, version: str = "v1", src: str = "jira") -> dict[str, Any]:
    return {"id": f"r{i}", "text": f"text {i} {version}", "metadata": {"src": src}}


def lines(items: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(i).encode() + b"\n" for i in items)


WANTED = (
    [rec(i) for i in range(100, 900)]
    + [rec(i, "v2") for i in range(900, 1000)]
    + [rec(i) for i in range(1000, 1100)]
)
DRIFT = {"missing": 100, "changed": 100, "unchanged": 800, "extra": 100}


async def _seed(app: App, n: int = 1000) -> None:
    for start in range(0, n, 500):
        body = {"upsert": [rec(i) for i in range(start, min(n, start + 500))]}
        response = await app.http.post(R, json=body)
        assert response.status_code == 200, response.text


async def _ids(app: App) -> set[str]:
    ids: set[str] = set()
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 1000, "text": "false"}
        if cursor:
            params["cursor"] = cursor
        page = (await app.http.get(R, params=params)).json()
        ids |= {r["id"] for r in page["records"]}
        cursor = page["next_cursor"]
        if cursor is None:
            return ids


async def _count(app: App) -> int:
    count: int = (await app.http.post(f"{R}/count")).json()["records"]
    return count


async def _send(app: App, form: str, *, dry_run: bool, job: bool = False) -> httpx.Response:
    params = {"job": "true"} if job else {}
    if form == "json":
        body = {"records": WANTED, "dry_run": dry_run, "sample": 3}
        return await app.http.post(S, json=body, params=params)
    params |= {"dry_run": str(dry_run).lower(), "sample": "3"}
    return await app.http.post(S, content=lines(WANTED), headers=NDJSON, params=params)


@pytest.mark.parametrize("form", ["json", "ndjson"])
async def test_1000_records_100_changed_100_new_100_gone(app: App, form: str) -> None:
    await _seed(app)
    before = app.fake.texts_embedded
    dry = await _send(app, form, dry_run=True)
    assert dry.status_code == 200, dry.text
    assert dry.json()["counts"] == DRIFT and len(dry.json()["sample"]["missing"]) == 3
    assert app.fake.texts_embedded == before and await _count(app) == 1000
    done = await _send(app, form, dry_run=False)
    assert done.status_code == 200, done.text
    assert done.json()["counts"] == DRIFT and done.json()["failed_count"] == 0
    assert app.fake.texts_embedded - before == 200  # only the new and changed texts
    assert await _ids(app) == {r["id"] for r in WANTED}


@pytest.mark.parametrize("form", ["json", "ndjson"])
async def test_the_job_form_queues_the_drift_and_shows_its_progress(app: App, form: str) -> None:
    await _seed(app)
    before = app.fake.texts_embedded
    accepted = await _send(app, form, dry_run=False, job=True)
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["counts"] == DRIFT and accepted.json()["total"] == 300
    job_url = f"/v1/tenants/acme/jobs/{accepted.json()['job_id']}"
    queued = (await app.http.get(job_url)).json()
    assert queued["status"] == "queued" and queued["total"] == 300
    assert queued["sync"]["state"] == "published" and queued["sync"]["counts"] == DRIFT
    assert app.fake.texts_embedded == before
    worker = worker_for(app.resources)
    task = asyncio.create_task(worker.run())

    async def completed() -> bool:
        return (await app.http.get(job_url)).json()["status"] == "completed"

    try:
        await eventually(completed, "the sync job completed", 60)
    finally:
        worker.request_stop()
        await task
    final = (await app.http.get(job_url)).json()
    assert (final["done"], final["failed"], final["sync"]["counts"]) == (300, 0, DRIFT)
    operator = (await app.http.get(f"/v1/jobs/{accepted.json()['job_id']}")).json()
    assert operator["sync"]["counts"] == DRIFT
    assert app.fake.texts_embedded - before == 200
    assert await _ids(app) == {r["id"] for r in WANTED}


async def test_a_scoped_json_lines_sync_never_touches_records_outside_its_scope(app: App) -> None:
    body = {
        "upsert": [rec(i, src="jira") for i in range(10)]
        + [rec(i, src="web") for i in range(10, 20)]
    }
    assert (await app.http.post(R, json=body)).status_code == 200
    params = {"scope": json.dumps({"src": "jira"})}
    content = lines([rec(i, src="jira") for i in range(5)])
    done = await app.http.post(S, content=content, headers=NDJSON, params=params)
    assert done.status_code == 200, done.text
    assert done.json()["counts"] == {"missing": 0, "changed": 0, "unchanged": 5, "extra": 5}
    assert await _ids(app) == {f"r{i}" for i in [*range(5), *range(10, 20)]}


BAD_LINES = [
    (b'{"id": "a", "text": "fine"}\n\xff\xfe\n', "line 2: not valid UTF-8"),
    (b'{"id": "a", "text": "fine"}\n\n{"id": "b", "text": \n', "line 3: not valid JSON"),
    (b'{"id": "a", "text": "fine"}\n[1, 2]\n', "line 2: a record is a JSON object"),
    (b'{"id": "a", "text": "fine"}\n{"id": "b"}\n', "line 2: not a valid record"),
    (
        b'{"id": "a", "text": "fine"}\r\n{"id": "a", "text": "again"}',
        "line 2: record id appears twice",
    ),
    (b'{"id": "b", "text": "fine"}\n{"id": "a", "text": "   "}\n', "line 2: "),
    (b'{"id": "a", "text": "\\ud800"}\n', "line 1: holds a lone UTF-16 surrogate"),
]


@pytest.mark.parametrize(("content", "message"), BAD_LINES)
async def test_a_bad_line_is_refused_by_its_number_and_changes_nothing(
    app: App, content: bytes, message: str
) -> None:
    await _seed(app, 3)
    before = app.fake.texts_embedded
    response = await app.http.post(S, content=content, headers=NDJSON, params={"scope": "{}"})
    assert response.status_code == 422, response.text
    assert message in response.json()["error"]["message"], response.text
    assert await _count(app) == 3 and app.fake.texts_embedded == before


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"scope": "{not json"}, 422),
        ({"scope": json.dumps({"k": 1.5})}, 422),
        ({"scope": json.dumps("jira")}, 422),
        ({"dry_run": "true", "job": "true"}, 422),
    ],
)
async def test_bad_query_parameters_are_refused_and_change_nothing(
    app: App, params: dict[str, str], status: int
) -> None:
    await _seed(app, 3)
    content = lines([rec(1)])
    response = await app.http.post(S, content=content, headers=NDJSON, params=params)
    assert response.status_code == status, response.text
    assert response.json()["error"]["message"]
    assert await _ids(app) == {"r0", "r1", "r2"}


async def test_a_json_lines_body_over_its_limit_is_refused_and_changes_nothing(app: App) -> None:
    await _seed(app, 3)
    big = lines([rec(i) for i in range(5000)])  # > 200,000 bytes, the limit set above
    response = await app.http.post(S, content=big, headers=NDJSON, params={"scope": "{}"})
    assert response.status_code == 413, response.text
    assert "200000" in response.json()["error"]["message"]

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: refused as it streams
        for start in range(0, len(big), 16384):
            yield big[start : start + 16384]

    response = await app.http.post(S, content=chunked(), headers=NDJSON, params={"scope": "{}"})
    assert response.status_code == 413, response.text
    assert await _ids(app) == {"r0", "r1", "r2"}


async def test_a_json_body_with_query_options_or_none_is_refused(app: App) -> None:
    refused = await app.http.post(S, json={"records": []}, params={"dry_run": "true"})
    assert refused.status_code == 422 and "in the body" in refused.json()["error"]["message"]
    empty = await app.http.post(S)
    assert empty.status_code == 422 and "body is required" in empty.json()["error"]["message"]
