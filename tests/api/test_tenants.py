"""DELETE /v1/tenants/{t} over HTTP: after it, no route finds anything of the tenant."""

from __future__ import annotations

import httpx

A, B = "acme", "globex"
BODY = {"upsert": [{"id": f"r{i}", "text": f"private note {i}"} for i in range(5)]}


async def test_after_offboarding_no_route_finds_anything_of_the_tenant(
    client: httpx.AsyncClient,
) -> None:
    for tenant in (A, B):
        assert (await client.post(f"/v1/tenants/{tenant}/records", json=BODY)).status_code == 200
        job = await client.post(f"/v1/tenants/{tenant}/jobs", json=BODY)
        assert job.status_code == 202
    removed = await client.delete(f"/v1/tenants/{A}")
    assert removed.status_code == 200, removed.text
    assert removed.json()["records"] == 5 and removed.json()["jobs"] == 1

    base = f"/v1/tenants/{A}"
    assert (await client.get(f"{base}/records")).json() == {"records": [], "next_cursor": None}
    assert (await client.post(f"{base}/records/count")).json() == {"records": 0}
    assert (await client.get(f"{base}/records/r1")).status_code == 404
    search = await client.post(f"{base}/search", json={"query": "private note"})
    assert search.json()["results"] == []
    assert (await client.get(f"{base}/jobs")).json() == []
    assert (await client.get(f"{base}/ai-config")).json()["configured"] is False
    assert (await client.get(f"/v1/jobs?tenant={A}")).json() == []

    assert (await client.post(f"/v1/tenants/{B}/records/count")).json()["records"] >= 5
    again = await client.delete(f"/v1/tenants/{A}")
    assert again.status_code == 200 and again.json()["records"] == 0
    assert (await client.delete("/v1/tenants/bad id!")).status_code in (404, 422)
