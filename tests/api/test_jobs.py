from __future__ import annotations

import httpx


async def test_job_is_queued_and_unknown_job_is_404(client: httpx.AsyncClient) -> None:
    body = {"upsert": [{"id": f"r{i}", "text": f"text {i}"} for i in range(3)], "delete": ["z"]}
    accepted = await client.post("/v1/tenants/acme/jobs", json=body)
    assert accepted.status_code == 202
    job_id = accepted.json()["job_id"]
    status = await client.get(f"/v1/tenants/acme/jobs/{job_id}")
    assert status.json()["status"] == "queued" and status.json()["total"] == 4
    assert (await client.get(f"/v1/tenants/other/jobs/{job_id}")).status_code == 404
    assert (await client.get("/v1/tenants/acme/jobs/nope")).status_code == 404
