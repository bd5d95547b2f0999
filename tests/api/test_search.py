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


async def put_basket(client: httpx.AsyncClient) -> None:
    upserts = [
        {"id": f"r{i}", "text": f"fruit basket {i} number{i}", "metadata": {"n": i}}
        for i in range(10)
    ]
    response = await client.post("/v1/tenants/acme/records", json={"upsert": upserts})
    assert response.status_code == 200, response.text


async def test_search_options(client: httpx.AsyncClient) -> None:
    await put_basket(client)
    url = "/v1/tenants/acme/search"
    body = {"query": "fruit basket", "limit": 4, "filter": {"n": {"$gte": 2, "$lt": 8}}}
    first = (await client.post(url, json=body)).json()["results"]
    second = (await client.post(url, json={**body, "offset": 4})).json()["results"]
    ids = [hit["id"] for hit in first + second]
    assert sorted(ids) == [f"r{i}" for i in range(2, 8)]  # two pages, no record twice
    assert {(hit["mode"], hit["chunk_index"]) for hit in first} == {("dense", 0)}
    bare = await client.post(url, json={**body, "fields": ["chunk"]})
    assert set(bare.json()["results"][0]) == {"id", "score", "chunk_index", "mode", "chunk"}
    like = await client.post(url, json={"like": {"record_id": "r3"}, "limit": 20})
    assert like.status_code == 200, like.text
    assert "r3" not in [hit["id"] for hit in like.json()["results"]]
    assert len(like.json()["results"]) == 9
    missing = await client.post(url, json={"like": {"record_id": "nope"}})
    assert missing.status_code == 404, missing.text
    threshold = await client.post(url, json={**body, "score_threshold": 2.0})
    assert threshold.json()["results"] == []


async def test_a_query_vector_is_checked(client: httpx.AsyncClient) -> None:
    await put_basket(client)
    url = "/v1/tenants/acme/search"
    ok = await client.post(url, json={"vector": [0.1] * 32, "limit": 3})
    assert ok.status_code == 200 and len(ok.json()["results"]) == 3
    for body, message in (
        ({"vector": [0.1] * 31}, "dimension"),
        ({"vector": [0.1] * 32, "query": "x"}, ""),
        ({"limit": 3}, ""),
        ({"vector": [0.0] * 32}, ""),
        ({"vector": [1e308] * 32}, "overflows"),
    ):
        response = await client.post(url, json=body)
        assert response.status_code == 422, (body, response.text)
        assert message in response.text
    nan = await client.post(
        url,
        content=b'{"vector": [NaN' + b", 0.1" * 31 + b"]}",
        headers={"content-type": "application/json"},
    )
    assert nan.status_code == 422, nan.text


async def test_bad_filters_are_4xx_naming_where(client: httpx.AsyncClient) -> None:
    await put_basket(client)
    url = "/v1/tenants/acme/search"
    deep: dict[str, object] = {"n": 1}
    for _ in range(200):
        deep = {"$not": deep}
    for flt, status, where in (
        ({"n": {"$regex": "x"}}, 422, "filter.n.$regex"),
        ({"n": {"$gt": 1, "$lt": "2024-01-01"}}, 422, "filter.n"),
        ({"$or": [{"k": i} for i in range(10_000)]}, 413, "filter.$or: at most"),
        ({"$or": [{"k": [i, -i]} for i in range(64)] * 2}, 413, "at most"),
        ({"$or": [{"$or": [{"k": j} for j in range(60)]}] * 5}, 413, "clauses"),
        (deep, 413, "nest"),
    ):
        response = await client.post(url, json={"query": "fruit", "filter": flt})
        assert response.status_code == status, (response.status_code, response.text[:300])
        assert where in response.json()["error"]["message"]


async def test_keyword_and_hybrid_modes(client: httpx.AsyncClient) -> None:
    await put_basket(client)
    rare = {"id": "rare", "text": "the pump failed with code XQZ-7731 twice"}
    await client.post("/v1/tenants/acme/records", json={"upsert": [rare]})
    url = "/v1/tenants/acme/search"
    for mode in ("keyword", "hybrid"):
        response = await client.post(url, json={"query": "XQZ-7731", "mode": mode})
        assert response.status_code == 200, response.text
        hits = response.json()["results"]
        assert (hits[0]["id"], hits[0]["mode"]) == ("rare", mode)
    small_k = await client.post(url, json={"query": "XQZ-7731", "mode": "hybrid", "fusion_k": 1})
    assert small_k.json()["results"][0]["score"] >= 1.0  # 1 / (k + rank 0) per list it heads
    for body in (
        {"query": "x", "mode": "fuzzy"},
        {"vector": [0.1] * 32, "mode": "keyword"},
        {"like": {"record_id": "rare"}, "mode": "hybrid"},
        {"query": "x", "mode": "hybrid", "fusion_k": 0},
    ):
        response = await client.post(url, json=body)
        assert response.status_code == 422, (body, response.text)


async def test_diversity_and_facets(client: httpx.AsyncClient) -> None:
    upserts = [
        {"id": f"r{i}", "text": f"fruit basket {i}", "metadata": {"lang": ["en", "de"][i % 2]}}
        for i in range(9)
    ]
    await client.post("/v1/tenants/acme/records", json={"upsert": upserts})
    url = "/v1/tenants/acme/search"
    body = {"query": "fruit", "facets": ["lang", "none"], "filter": {"id": {"$ne": "r0"}}}
    answer = (await client.post(url, json={**body, "diversity": 0.7})).json()
    assert len({hit["id"] for hit in answer["results"]}) == len(answer["results"]) == 8
    assert answer["facets"] == {
        "lang": [{"value": "de", "count": 4}, {"value": "en", "count": 4}],
        "none": [],
    }
    for bad in ({"facets": ["a b"]}, {"diversity": 2}, {"diversity": 0.5, "mode": "keyword"}):
        response = await client.post(url, json={**body, **bad})
        assert response.status_code == 422, (bad, response.text)
