"""The OpenAPI document tells the truth: one test per case issue 16 found wrong."""

from __future__ import annotations

import httpx

from vecpipe.models import TENANT_ID_PATTERN

ERROR_REF = "#/components/schemas/ErrorBody"


async def test_every_route_documents_its_errors_with_the_real_schema(
    client: httpx.AsyncClient,
) -> None:
    document = (await client.get("/openapi.json")).json()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            if path.startswith("/v1/"):
                assert "401" in responses, (method, path)
            for status, response in responses.items():
                if status.startswith(("4", "5")) and path != "/readyz":
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    want = "OpenAIErrorBody" if path == "/v1/embeddings" else "ErrorBody"
                    assert ref.endswith(want), (method, path, status)
            if "{tenant_id}" in path:
                assert {"404", "422"} <= responses.keys(), (method, path)
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


async def test_ids_have_their_patterns_and_metrics_is_text(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    record = document["paths"]["/v1/tenants/{tenant_id}/records/{record_id}"]["get"]
    params = {p["name"]: p["schema"] for p in record["parameters"]}
    assert params["tenant_id"]["pattern"] == TENANT_ID_PATTERN
    assert params["record_id"]["minLength"] == 1 and params["record_id"]["maxLength"] == 512
    metrics = document["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(metrics) == ["text/plain; version=0.0.4"]
    assert (await client.get("/metrics")).headers["content-type"].startswith("text/plain")


async def test_options_405_allows_every_method_of_the_path(client: httpx.AsyncClient) -> None:
    response = await client.options("/v1/tenants/acme/ai-config")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, PUT, DELETE"


async def test_a_primary_without_fields_is_the_default_as_an_empty_config_is(
    client: httpx.AsyncClient,
) -> None:
    empty = await client.put("/v1/tenants/acme/ai-config", json={})
    bare = await client.put("/v1/tenants/beta/ai-config", json={"primary": {}})
    assert empty.status_code == bare.status_code == 200, bare.text
    assert empty.json()["config"] == bare.json()["config"]


async def test_versions_are_json_integers(client: httpx.AsyncClient) -> None:
    url = "/v1/tenants/acme/records"
    for version in (True, False, "5", 5.5):
        body = {"upsert": [{"id": "r", "text": "t", "version": version}]}
        response = await client.post(url, json=body)
        assert response.status_code == 422, (version, response.text)
    ok = await client.post(url, json={"upsert": [{"id": "r", "text": "t", "version": 5}]})
    assert ok.status_code == 200, ok.text


async def test_filter_values_keep_their_json_types(client: httpx.AsyncClient) -> None:
    await client.post(
        "/v1/tenants/acme/records",
        json={"upsert": [{"id": "z", "text": "t", "metadata": {"k": 0}}]},
    )
    url = "/v1/tenants/acme/search"
    as_list = await client.post(url, json={"query": "t", "filter": {"k": [False]}})
    assert as_list.status_code == 200 and as_list.json()["results"] == []  # never read as [0]
    as_false = await client.post(url, json={"query": "t", "filter": {"k": False}})
    assert as_false.status_code == 200 and as_false.json()["results"] == []
    as_zero = await client.post(url, json={"query": "t", "filter": {"k": [0]}})
    assert [hit["id"] for hit in as_zero.json()["results"]] == ["z"]
