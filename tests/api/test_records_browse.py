"""Listing, counting and deleting records by filter over HTTP (issue 15)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

R = "/v1/tenants/acme/records"


async def _seed(client: httpx.AsyncClient, n: int = 7, tenant: str = "acme") -> None:
    body = {
        "upsert": [
            {
                "id": f"r{i}",
                "text": f"note number {i}",
                "metadata": {"src": "jira" if i % 2 else "web", "i": i},
            }
            for i in range(n)
        ]
    }
    response = await client.post(f"/v1/tenants/{tenant}/records", json=body)
    assert response.status_code == 200, response.text


async def _walk(client: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await client.get(R, params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        seen += page["records"]
        cursor = page["next_cursor"]
        if cursor is None:
            return seen


async def test_list_pages_in_a_stable_order_with_versions(client: httpx.AsyncClient) -> None:
    await _seed(client)
    await _seed(client, 3, tenant="globex")
    by_two = await _walk(client, limit=2)
    assert [r["id"] for r in by_two] == [r["id"] for r in await _walk(client, limit=100)]
    assert sorted(r["id"] for r in by_two) == [f"r{i}" for i in range(7)]
    first = {r["id"]: r for r in by_two}["r3"]
    assert first["text"] == "note number 3" and first["metadata"] == {"src": "jira", "i": 3}
    assert first["version"] > 0
    no_text = (await client.get(R, params={"text": "false"})).json()["records"]
    assert all(r["text"] is None for r in no_text)


async def test_list_and_count_with_a_filter(client: httpx.AsyncClient) -> None:
    await _seed(client)
    jira = await _walk(client, filter=json.dumps({"src": "jira"}), limit=3)
    assert sorted(r["id"] for r in jira) == ["r1", "r3", "r5"]
    count = await client.post(f"{R}/count", json={"filter": {"src": "jira"}})
    assert count.json() == {"records": 3}
    assert (await client.post(f"{R}/count", json={})).json() == {"records": 7}
    assert (await client.post(f"{R}/count")).json() == {"records": 7}


async def test_delete_by_filter_dry_run_then_for_real(client: httpx.AsyncClient) -> None:
    await _seed(client)
    await _seed(client, 3, tenant="globex")
    dry = await client.post(f"{R}/delete", json={"filter": {"src": "web"}, "dry_run": True})
    assert dry.status_code == 200, dry.text
    assert dry.json() == {"deleted": 4, "dry_run": True}
    assert (await client.post(f"{R}/count")).json() == {"records": 7}
    done = await client.post(f"{R}/delete", json={"filter": {"src": "web"}})
    assert done.json() == {"deleted": 4, "dry_run": False}
    assert sorted(r["id"] for r in await _walk(client)) == ["r1", "r3", "r5"]
    assert (await client.get(f"{R}/r0")).status_code == 404
    other = await client.post("/v1/tenants/globex/records/count")
    assert other.json() == {"records": 3}


@pytest.mark.parametrize(
    "body",
    [{}, {"filter": {}}, {"filter": None}, {"dry_run": False}, {"filter": {"bad key!": 1}}],
)
async def test_delete_without_a_filter_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, body: Any
) -> None:
    await _seed(client)
    response = await client.post(f"{R}/delete", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["message"]
    assert (await client.post(f"{R}/count")).json() == {"records": 7}


@pytest.mark.parametrize(
    "params",
    [
        {"cursor": "not-a-cursor"},
        {"cursor": "djE6bm90LWEtdXVpZA"},  # "v1:not-a-uuid"
        {"cursor": "!!!"},
        {"filter": "{not json"},
        {"filter": "[1, 2]"},
        {"filter": json.dumps({"k": 1.5})},
        {"limit": "0"},
        {"limit": "100000"},
    ],
)
async def test_bad_list_parameters_get_a_clear_4xx(
    client: httpx.AsyncClient, params: dict[str, str]
) -> None:
    response = await client.get(R, params=params)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["message"]


async def test_a_bad_count_filter_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post(f"{R}/count", json={"filter": {"k": {"x": []}}})
    assert response.status_code == 422, response.text


async def test_count_and_delete_paths_are_the_bulk_routes_alone(
    client: httpx.AsyncClient,
) -> None:
    for name in ("count", "delete"):
        response = await client.get(f"{R}/{name}")
        assert response.status_code == 405 and response.headers["allow"] == "POST"


async def test_sync_over_http_dry_run_then_for_real(client: httpx.AsyncClient) -> None:
    await _seed(client, 5)
    wanted = [
        {
            "id": f"r{i}",
            "text": f"note number {i}",
            "metadata": {"src": "jira" if i % 2 else "web", "i": i},
        }
        for i in range(1, 4)
    ]
    wanted.append({"id": "r9", "text": "brand new"})
    body = {"records": wanted, "scope": {"src": "web"}, "dry_run": True, "sample": 2}
    dry = await client.post("/v1/tenants/acme/sync", json=body)
    assert dry.status_code == 200, dry.text
    assert dry.json()["counts"] == {"missing": 1, "changed": 0, "unchanged": 3, "extra": 2}
    done = await client.post("/v1/tenants/acme/sync", json={**body, "dry_run": False})
    assert done.json()["counts"]["extra"] == 2
    assert sorted(r["id"] for r in await _walk(client)) == ["r1", "r2", "r3", "r9"]


async def test_sync_with_a_bad_scope_is_refused(client: httpx.AsyncClient) -> None:
    await _seed(client, 3)
    for scope in ({"bad key!": 1}, {"k": 1.5}, "jira"):
        bad = await client.post("/v1/tenants/acme/sync", json={"records": [], "scope": scope})
        assert bad.status_code == 422, bad.text
    assert (await client.post(f"{R}/count")).json() == {"records": 3}


async def test_a_sync_body_over_the_limit_is_refused(client: httpx.AsyncClient) -> None:
    await _seed(client, 3)
    response = await client.post(
        "/v1/tenants/acme/sync",
        content=b"x" * (16 * 1024 * 1024 + 1),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413, response.text
    assert (await client.post(f"{R}/count")).json() == {"records": 3}
