"""Bulk records over HTTP: outcomes, single records, and bad input that changes nothing."""

from __future__ import annotations

from typing import Any

import httpx
import pytest


async def _post(client: httpx.AsyncClient, body: Any, tenant: str = "acme") -> httpx.Response:
    return await client.post(f"/v1/tenants/{tenant}/records", json=body)


async def test_bulk_upsert_unchanged_delete(client: httpx.AsyncClient) -> None:
    body = {
        "upsert": [{"id": f"r{i}", "text": f"hello {i}", "metadata": {"i": i}} for i in range(5)]
    }
    first = await _post(client, body)
    assert first.status_code == 200
    assert first.json() == {
        "upserted": 5,
        "unchanged": 0,
        "deleted": 0,
        "not_found": 0,
        "failed": [],
    }
    again = await _post(client, body)
    assert again.json()["unchanged"] == 5
    deleted = await _post(client, {"delete": ["r0", "r1"]})
    assert deleted.json()["deleted"] == 2


async def test_deleting_unknown_ids_counts_them_not_found(client: httpx.AsyncClient) -> None:
    await _post(client, {"upsert": [{"id": "kept", "text": "a stored record"}]})
    answer = await _post(client, {"delete": ["kept", "never-stored"]})
    assert answer.status_code == 200
    counts = {key: answer.json()[key] for key in ("deleted", "not_found", "unchanged")}
    assert counts == {"deleted": 1, "not_found": 1, "unchanged": 0}
    again = await _post(client, {"delete": ["kept"]})
    assert (again.json()["deleted"], again.json()["not_found"]) == (0, 1)


async def test_get_and_delete_one_record_with_an_awkward_id(client: httpx.AsyncClient) -> None:
    record_id = "jira:PROJ-123/sub path?x=1"
    await _post(client, {"upsert": [{"id": record_id, "text": "ticket text", "metadata": {}}]})
    quoted = httpx.URL(f"/v1/tenants/acme/records/{record_id.replace('?', '%3F')}")
    got = await client.get(quoted)
    assert got.status_code == 200, got.text
    assert got.json()["text"] == "ticket text" and got.json()["id"] == record_id
    assert (await client.delete(quoted)).status_code == 204
    assert (await client.get(quoted)).status_code == 404


BAD_BODIES = [
    ({"upsert": [{"id": "a", "text": ""}]}, 422),
    ({"upsert": [{"id": "a", "text": "   "}]}, 422),
    ({"upsert": [{"id": "", "text": "x"}]}, 422),
    ({"upsert": [{"id": "x" * 600, "text": "x"}]}, 422),
    ({"upsert": [{"id": "bad\u0000id", "text": "x"}]}, 422),
    ({"upsert": [{"id": "a", "text": "x", "metadata": [1, 2]}]}, 422),
    ({"upsert": [{"id": "a", "text": "x", "extra": 1}]}, 422),
    ({"upsert": [{"id": "a", "text": "x"}, {"id": "a", "text": "y"}]}, 422),
    ({}, 422),
    ([1, 2], 422),
    ({"upsert": [{"id": f"r{i}", "text": "x"} for i in range(1001)]}, 413),
    ({"upsert": [{"id": "a", "text": "x" * (1024 * 1024 + 1)}]}, 413),
    ({"upsert": [{"id": "a", "text": "x", "metadata": {"k": "v" * 20_000}}]}, 413),
]


@pytest.mark.parametrize(("body", "status"), BAD_BODIES)
async def test_bad_input_gets_a_json_error_and_changes_nothing(
    client: httpx.AsyncClient, body: Any, status: int
) -> None:
    response = await _post(client, body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] and error["message"]
    assert (await client.get("/v1/tenants/acme/records/a")).status_code == 404


async def test_malformed_json_and_invalid_utf8(client: httpx.AsyncClient) -> None:
    for raw in (b"{not json", b'{"upsert": [{"id": "a", "text": "\xff\xfe"}]}'):
        response = await client.post(
            "/v1/tenants/acme/records", content=raw, headers={"content-type": "application/json"}
        )
        assert response.status_code in (400, 422), response.text
        assert response.json()["error"]["message"]


async def test_oversized_body_is_refused_before_parsing(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/tenants/acme/records",
        content=b"x" * (16 * 1024 * 1024 + 1),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "limit_exceeded"


async def test_invalid_tenant_id(client: httpx.AsyncClient) -> None:
    response = await _post(client, {"delete": ["a"]}, tenant="bad tenant!")
    assert response.status_code in (404, 422)
    assert "error" in response.json()


async def test_a_full_disk_answers_507_to_writes_and_serves_reads(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Below VECPIPE_MIN_FREE_BYTES (the disk's free space set by the test; the real full
    disk is tests/reliability/test_disk_full.py)."""
    body = {"upsert": [{"id": "a", "text": "alpha"}]}
    assert (await client.post("/v1/tenants/acme/records", json=body)).status_code == 200
    monkeypatch.setattr("vecpipe.diskspace.free_bytes", lambda path: 1024)
    config = {"primary": {"kind": "local", "model": "all-MiniLM-L6-v2"}}
    for response in (
        await client.post("/v1/tenants/acme/records", json={"upsert": [{"id": "b", "text": "b"}]}),
        await client.delete("/v1/tenants/acme/records/a"),
        await client.post("/v1/tenants/acme/jobs", json={"upsert": [{"id": "c", "text": "c"}]}),
        await client.put("/v1/tenants/other/ai-config", json=config),
    ):
        assert response.status_code == 507, response.text
        assert response.headers["retry-after"] == "30"
        error = response.json()["error"]
        assert error["code"] == "insufficient_storage" and "below the floor" in error["message"]
    assert (await client.get("/v1/tenants/acme/records/a")).status_code == 200
    search = await client.post("/v1/tenants/acme/search", json={"query": "alpha"})
    assert search.status_code == 200 and search.json()["results"][0]["id"] == "a"
    ready = await client.get("/readyz")
    assert ready.status_code == 503 and "below the floor" in ready.json()["reason"]
