"""QdrantStore: the VectorStore contract on qdrant-client's local mode, plus adapter specifics.

Local mode has no payload indexes and no HTTP, so what a server sees (the is_tenant index, the
api-key header, a create race, error bodies) is checked against `FakeQdrant`, an httpx
MockTransport speaking the few REST calls that set up a collection.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from qdrant_client import AsyncQdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from tests.store.contract import (
    SPACE,
    VectorStoreContract,
    VersionedPrimitivesContract,
    delete_records,
    put,
    query,
    record_points,
    vec,
)
from vecpipe.errors import ClosedError, ConfigError, StoreError
from vecpipe.settings import Settings
from vecpipe.store.base import VectorStore
from vecpipe.store.point_ids import point_id
from vecpipe.store.qdrant import QdrantStore
from vecpipe.store.qdrant.errors import describe_error

pytestmark = pytest.mark.filterwarnings("ignore:Payload indexes have no effect:UserWarning")

API_KEY = "qk-secret-7f3a9c"
COLLECTION = "vecpipe_" + SPACE.key


class TestQdrantStoreContract(VectorStoreContract, VersionedPrimitivesContract):
    @pytest.fixture
    async def store(self) -> AsyncIterator[VectorStore]:
        async with QdrantStore(location=":memory:") as store:
            yield store


@pytest.fixture
async def client() -> AsyncIterator[AsyncQdrantClient]:
    """A local-mode client; a store it is handed to owns it (closing twice is harmless)."""
    local = AsyncQdrantClient(location=":memory:")
    yield local
    await local.close()


# ---------------------------------------------------------------------------- local mode


async def test_points_have_the_shared_payload_layout(client: AsyncQdrantClient) -> None:
    async with QdrantStore(client) as store:
        await put(store, record_points("t1", "r1", [vec(a=1), vec(b=1)], {"k": 1}))
        ids = [point_id("t1", "r1", 0), point_id("t1", "r1", 1)]
        points = await client.retrieve(COLLECTION, ids, with_payload=True)
    payloads = {str(p.id): p.payload for p in points}
    assert payloads[ids[0]] == {
        "tenant_id": "t1",
        "record_id": "r1",
        "chunk_index": 0,
        "chunk_count": 2,
        "content_hash": "hash-1",
        "metadata": {"k": 1},
        "chunk_text": "r1#0",
        "text": "r1#0 r1#1",
        "version": 0,
    }
    assert "text" not in (payloads[ids[1]] or {})


async def test_data_survives_close_and_reopen(tmp_path: Path) -> None:
    async with QdrantStore(location=tmp_path / "qdrant") as store:
        await put(store, record_points("t1", "r1", [vec(a=1), vec(b=1)], {"k": "v"}))
    async with QdrantStore(location=tmp_path / "qdrant") as store:
        assert await store.count(SPACE, "t1") == 2
        assert (await store.stored_records(SPACE, "t1", ["r1"]))["r1"].metadata == {"k": "v"}
        assert [h.chunk for h in await store.search(SPACE, query("t1", vec(b=1), 3))] == ["r1#1"]


async def test_the_store_owns_and_closes_its_client(client: AsyncQdrantClient) -> None:
    store = QdrantStore(client)
    await store.ensure_space(SPACE)
    await store.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await client.get_collections()
    with pytest.raises(ClosedError):
        await store.flush(SPACE)


async def test_the_client_is_made_on_first_use() -> None:
    made: list[AsyncQdrantClient] = []

    def factory() -> AsyncQdrantClient:
        made.append(AsyncQdrantClient(location=":memory:"))
        return made[-1]

    async with QdrantStore(factory):
        pass
    assert made == []
    async with QdrantStore(factory) as store:
        await store.ensure_space(SPACE)
        await store.check_ready()
    assert len(made) == 1


async def test_upserts_go_in_batches(
    client: AsyncQdrantClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes: list[int] = []
    upsert = client.upsert

    async def counting_upsert(name: str, points: models.Batch, **kwargs: Any) -> Any:
        sizes.append(len(points.ids))
        assert kwargs["wait"] is True  # durable before any acknowledgement
        return await upsert(name, points, **kwargs)

    monkeypatch.setattr(client, "upsert", counting_upsert)
    async with QdrantStore(client) as store:
        points = [p for i in range(300) for p in record_points("t1", f"r{i}", [vec(a=1, b=i)])]
        await store.upsert_chunks(SPACE, points)
        assert sizes == [256, 44]
        assert len(await store.stored_records(SPACE, "t1", [f"r{i}" for i in range(300)])) == 300
        await delete_records(store, "t1", [f"r{i}" for i in range(280)])
        assert await store.count(SPACE, "t1") == 20


async def test_a_collection_of_another_shape_is_refused(client: AsyncQdrantClient) -> None:
    params = models.VectorParams(size=4, distance=models.Distance.COSINE)
    await client.create_collection(COLLECTION, vectors_config=params)
    async with QdrantStore(client) as store:
        with pytest.raises(ConfigError, match="4-d Cosine"):
            await store.ensure_space(SPACE)


async def test_a_collection_deleted_behind_the_store_is_recreated(
    client: AsyncQdrantClient,
) -> None:
    async with QdrantStore(client) as store:
        await put(store, record_points("t1", "r1", [vec(a=1)]))
        await client.delete_collection(COLLECTION)
        with pytest.raises(StoreError, match="not found"):
            await store.count(SPACE)
        await put(store, record_points("t1", "r2", [vec(a=1)]))  # a retry finds it again
        assert await store.count(SPACE) == 1


async def test_close_waits_for_calls_in_flight() -> None:
    store = QdrantStore(location=":memory:")
    await put(store, *(record_points("t1", f"r{i}", [vec(a=1, b=i)]) for i in range(20)))
    calls = [asyncio.create_task(store.search(SPACE, query("t1", vec(a=1), 5))) for _ in range(10)]
    await asyncio.sleep(0)
    await store.aclose()
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(r, list | ClosedError) for r in results), results


# ---------------------------------------------------------------------------- construction


def test_arguments_are_checked() -> None:
    with pytest.raises(ConfigError, match="exactly one"):
        QdrantStore()
    with pytest.raises(ConfigError, match="exactly one"):
        QdrantStore(url="http://q:6333", location=":memory:")
    with pytest.raises(ConfigError, match="go with url"):
        QdrantStore(location=":memory:", api_key="k")
    with pytest.raises(ConfigError, match="collection_prefix"):
        QdrantStore(location=":memory:", collection_prefix="a/b")


async def test_from_settings_keeps_the_key_out_of_sight() -> None:
    with pytest.raises(ConfigError, match="VECPIPE_QDRANT_URL"):
        QdrantStore.from_settings(Settings(store="qdrant", qdrant_url=None))
    settings = Settings(
        store="qdrant",
        qdrant_url="https://user:pw@qdrant.example:6333",
        qdrant_api_key=API_KEY,  # type: ignore[arg-type]
    )
    async with QdrantStore.from_settings(settings) as store:
        assert repr(store) == (
            "QdrantStore('https://qdrant.example:6333', prefix='vecpipe_', collections=[])"
        )


# ---------------------------------------------------------------------------- a dead server


async def test_a_dead_endpoint_raises_store_errors() -> None:
    async with QdrantStore(url="https://127.0.0.1:1", api_key=API_KEY) as store:
        with pytest.raises(StoreError, match=r"^qdrant unreachable: ") as ready:
            await store.check_ready()
        with pytest.raises(StoreError) as write:
            await store.upsert_chunks(SPACE, record_points("t1", "r1", [vec(a=1)]))
        with pytest.raises(StoreError):
            await store.search(SPACE, query("t1", vec(a=1), 3))
        assert ready.value.retryable and write.value.retryable
        for text in (str(ready.value), str(write.value), repr(store)):
            assert API_KEY not in text
    with pytest.raises(ClosedError):
        await store.check_ready()


# ---------------------------------------------------------------------------- a fake server


@dataclass
class FakeQdrant:
    """Answers the REST calls of collection setup; records every request it sees."""

    info: dict[str, Any]
    exists: list[bool] = field(default_factory=lambda: [False])
    create_status: int = 200
    error_body: bytes = b""
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path, method = request.url.path, request.method
        if self.error_body:
            return httpx.Response(500, content=self.error_body)
        if path.endswith("/exists"):
            found = self.exists.pop(0) if len(self.exists) > 1 else self.exists[0]
            return ok({"exists": found})
        if method == "PUT" and path == f"/collections/{COLLECTION}":
            if self.create_status != 200:
                error = f"Wrong input: Collection `{COLLECTION}` already exists!"
                return httpx.Response(self.create_status, json={"status": {"error": error}})
            return ok(True)
        if method == "GET" and path == f"/collections/{COLLECTION}":
            return ok(self.info)
        if method == "PUT" and path.endswith("/index"):
            return ok({"operation_id": 1, "status": "completed"})
        if method == "GET" and path == "/collections":
            return ok({"collections": []})
        return httpx.Response(404, json={"status": {"error": f"no fake for {method} {path}"}})

    def store(self) -> QdrantStore:
        options = {"transport": httpx.MockTransport(self)}
        return QdrantStore(url="https://q.example:6333", api_key=API_KEY, client_options=options)

    def bodies(self, suffix: str) -> list[Any]:
        sent = [r for r in self.requests if r.method == "PUT" and r.url.path.endswith(suffix)]
        return [json.loads(r.content) for r in sent]


def ok(result: Any) -> httpx.Response:
    return httpx.Response(200, json={"result": result, "status": "ok", "time": 0.0})


@pytest.fixture
async def collection_info(client: AsyncQdrantClient) -> dict[str, Any]:
    """A real CollectionInfo of an 8-d cosine collection, as the server would send it."""
    params = models.VectorParams(size=SPACE.dimension, distance=models.Distance.COSINE)
    await client.create_collection("probe", vectors_config=params)
    info = await client.get_collection("probe")
    return info.model_dump(mode="json", exclude_none=True)


@pytest.fixture
def fake(collection_info: dict[str, Any]) -> FakeQdrant:
    return FakeQdrant(info=collection_info)


async def test_the_server_gets_the_collection_and_a_tenant_index(fake: FakeQdrant) -> None:
    async with fake.store() as store:
        await asyncio.gather(*(store.ensure_space(SPACE) for _ in range(3)))
        await store.check_ready()
    assert fake.bodies(COLLECTION) == [
        {
            "vectors": {"size": 8, "distance": "Cosine"},
            "sparse_vectors": {"bm25": {"modifier": "idf"}},
        }
    ]
    assert fake.bodies("/index") == [
        {"field_name": "tenant_id", "field_schema": {"type": "keyword", "is_tenant": True}},
        {"field_name": "record_id", "field_schema": {"type": "keyword"}},
        {
            "field_name": "chunk_index",
            "field_schema": {"type": "integer", "lookup": True, "range": True},
        },
        {"field_name": "expires_at", "field_schema": {"type": "float"}},
    ]
    assert all(r.headers["api-key"] == API_KEY for r in fake.requests)
    assert all(r.url.params.get("wait") == "true" for r in fake.requests if "/index" in r.url.path)


async def test_existing_indexes_are_kept(fake: FakeQdrant) -> None:
    keyword = {"data_type": "keyword", "points": 0}
    fake.exists = [True]
    fake.info["payload_schema"] = {
        "tenant_id": {**keyword, "params": {"type": "keyword", "is_tenant": True}},
        "record_id": keyword,
        "chunk_index": {"data_type": "integer", "points": 0},
        "expires_at": {"data_type": "float", "points": 0},
    }
    async with fake.store() as store:
        await store.ensure_space(SPACE)
    assert fake.bodies(COLLECTION) == []
    assert fake.bodies("/index") == []


async def test_a_collection_created_by_another_process_meanwhile(fake: FakeQdrant) -> None:
    fake.exists, fake.create_status = [False, True], 409
    async with fake.store() as store:
        await store.ensure_space(SPACE)
    assert len(fake.bodies("/index")) == 4  # tenant, record, chunk, expiry


async def test_a_failed_create_is_a_store_error(fake: FakeQdrant) -> None:
    fake.create_status = 409  # but the collection still does not exist afterwards
    async with fake.store() as store:
        with pytest.raises(StoreError, match="HTTP 409 Wrong input: Collection"):
            await store.ensure_space(SPACE)


@pytest.mark.parametrize(
    "body",
    [
        json.dumps({"status": {"error": f"bad api-key {API_KEY}"}}).encode(),
        f"<html>proxy error for key {API_KEY}</html>".encode(),
    ],
)
async def test_server_errors_never_carry_the_key(fake: FakeQdrant, body: bytes) -> None:
    fake.error_body = body
    async with fake.store() as store:
        failures: list[Callable[[], Any]] = [
            store.check_ready,
            lambda: store.ensure_space(SPACE),
            lambda: store.count(SPACE),
        ]
        for failure in failures:
            with pytest.raises(StoreError) as caught:
                await failure()
            assert "HTTP 500" in caught.value.message
            assert API_KEY not in caught.value.message
            if body.startswith(b"{"):  # the server's message is kept, the key scrubbed
                assert "bad api-key ***" in caught.value.message


def test_the_key_is_scrubbed_before_a_reason_is_cut() -> None:
    body = json.dumps({"status": {"error": "x" * 190 + API_KEY}}).encode()
    reason = describe_error(UnexpectedResponse(500, "Internal", body, httpx.Headers()), API_KEY)
    assert reason.startswith("HTTP 500 xxx") and reason.endswith("*")
    assert API_KEY[:4] not in reason
    wrapped = ResponseHandlingException(httpx.ConnectError(f"refused\nheader {API_KEY}"))
    assert describe_error(wrapped, API_KEY) == "ConnectError: refused"
