from __future__ import annotations

import httpx


async def test_search_returns_one_hit_per_record(client: httpx.AsyncClient) -> None:
    upserts = [{"id": f"r{i}", "text": f"fruit basket {i} number{i}"} for i in range(10)]
    await client.post("/v1/tenants/acme/records", json={"upsert": upserts})
    response = await client.post(
        "/v1/tenants/acme/search", json={"query": "fruit basket 3 number3", "limit": 5}
    )
    assert response.status_code == 200
    results = response.json()["results"]
    assert results[0]["id"] == "r3"
    assert {"id", "score", "text", "metadata"} <= set(results[0])
    assert len({r["id"] for r in results}) == len(results) == 5


async def test_search_limits(client: httpx.AsyncClient) -> None:
    for body in (
        {"query": ""},
        {"query": "x", "limit": 0},
        {"query": "x", "limit": 101},
        {"query": "x" * 9000},
        {"query": "x", "filter": {"k": {"nested": 1}}},
    ):
        response = await client.post("/v1/tenants/acme/search", json=body)
        assert 400 <= response.status_code < 500, body
        assert "error" in response.json()
