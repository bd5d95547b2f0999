from __future__ import annotations

import httpx


async def test_default_config_then_set_and_delete(client: httpx.AsyncClient) -> None:
    default = await client.get("/v1/tenants/acme/ai-config")
    assert default.status_code == 200 and default.json()["configured"] is False
    put = await client.put(
        "/v1/tenants/acme/ai-config", json={"primary": {"kind": "local", "model": "other-model"}}
    )
    assert put.status_code == 200, put.text
    assert put.json()["space"]["model"] == "other-model"
    shown = await client.get("/v1/tenants/acme/ai-config")
    assert shown.json()["configured"] is True
    assert (await client.delete("/v1/tenants/acme/ai-config")).status_code == 204
    assert (await client.delete("/v1/tenants/acme/ai-config")).status_code == 404


async def test_mixed_space_chain_is_rejected(client: httpx.AsyncClient) -> None:
    body = {
        "primary": {"kind": "local", "model": "m1"},
        "fallbacks": [{"kind": "local", "model": "m2"}],
    }
    response = await client.put("/v1/tenants/acme/ai-config", json=body)
    assert response.status_code == 422
    assert "one embedding space" in response.json()["error"]["message"]


async def test_gateway_url_policy_rejects_internal_addresses(client: httpx.AsyncClient) -> None:
    body = {"primary": {"kind": "openai", "base_url": "http://169.254.169.254/v1", "model": "m"}}
    response = await client.put("/v1/tenants/acme/ai-config", json=body)
    assert response.status_code == 422


async def test_an_unknown_local_backend_is_a_validation_error(client: httpx.AsyncClient) -> None:
    body = {"primary": {"kind": "local", "backend": "cuda"}}
    response = await client.put("/v1/tenants/acme/ai-config", json=body)
    assert response.status_code == 422, response.text
    message = response.text
    assert "backend" in message and "onnx-int8" in message  # what is allowed, by name
