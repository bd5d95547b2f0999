"""API fuzzing: schemathesis cases from the app's own OpenAPI schema, sent through ASGI.

Every operation gets positive cases (valid by the schema) and negative ones (violating it);
not one may get a 5xx, and every 4xx must be the JSON error shape. The app runs with fake
providers (tests/support/app.py) on one event loop of its own, in a blocking portal that the
module fixture opens and closes; hypothesis drives the cases from the test's thread.

Bounded: EXAMPLES cases per operation and mode and no example database, so the module runs
in well under a minute. The explicit limits (body size, text bytes, records per batch,
metadata size, id length, query length, `limit` range) are tested one by one below.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from anyio.from_thread import BlockingPortal, start_blocking_portal
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, reject, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.result import Ok

from tests.support.app import FAKE_DIMENSION, make_settings
from tests.support.fake_provider import FakeProvider
from vecpipe.api.app import create_app
from vecpipe.models import EmbeddingSpace
from vecpipe.providers.base import EmbeddingProvider
from vecpipe.providers.kind import ProviderConfig
from vecpipe.providers.kinds.openai import OpenAIProviderConfig
from vecpipe.settings import Limits

EXAMPLES = {GenerationMode.POSITIVE: 12, GenerationMode.NEGATIVE: 6}  # per operation
BASE_URL = "http://vecpipe.test"
SKIP_HEADERS = {"x-schemathesis-testcaseid", "user-agent", "connection", "accept-encoding"}


async def any_provider(config: ProviderConfig) -> EmbeddingProvider:
    """A fake for every config: a gateway config behaves as a reachable gateway would."""
    dimension = FAKE_DIMENSION
    if isinstance(config, OpenAIProviderConfig) and config.dimensions:
        dimension = config.dimensions
    return FakeProvider(space=EmbeddingSpace(config.model, dimension))


@dataclass
class Api:
    app: FastAPI
    portal: BlockingPortal
    client: httpx.AsyncClient

    def send(self, case: schemathesis.Case) -> httpx.Response:
        kwargs = case.as_transport_kwargs(base_url=BASE_URL)
        headers = {k: v for k, v in kwargs["headers"].items() if k.lower() not in SKIP_HEADERS}
        if kwargs.get("cookies"):
            headers["cookie"] = "; ".join(f"{k}={v}" for k, v in kwargs["cookies"].items())
        body: dict[str, Any] = {}
        if "json" in kwargs:
            body["json"] = kwargs["json"]
        elif isinstance(kwargs.get("data"), str | bytes):
            body["content"] = kwargs["data"]
        elif kwargs.get("data") is not None:
            body["data"] = kwargs["data"]
        response: httpx.Response = self.portal.call(
            lambda: self.client.request(
                kwargs["method"],
                kwargs["url"],
                params=kwargs.get("params"),
                headers=headers,
                **body,
            )
        )
        return response


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url=BASE_URL
        ) as http,
    ):
        yield http


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    data_dir: Path = tmp_path_factory.mktemp("fuzz") / "data"
    app = create_app(make_settings(data_dir), provider_factory=any_provider)
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(running(app)) as client,
    ):
        yield Api(app, portal, client)


def operations(api: Api) -> list[Any]:
    schema = schemathesis.openapi.from_dict(api.app.openapi())
    found = list(schema.get_all_operations())
    broken = [r for r in found if not isinstance(r, Ok)]
    assert not broken, broken  # every operation of the schema must be usable
    return [r.ok() for r in found if isinstance(r, Ok)]


def check_response(case: schemathesis.Case, response: httpx.Response) -> None:
    where = f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}"
    assert response.status_code < 500, where
    if response.status_code >= 400:
        error = response.json().get("error")
        assert isinstance(error, dict), where
        assert isinstance(error.get("code"), str) and isinstance(error.get("message"), str), where


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_operation_answers_5xx(api: Api, mode: GenerationMode) -> None:
    for operation in operations(api):

        @settings(
            max_examples=EXAMPLES[mode],
            deadline=None,
            database=None,
            phases=[Phase.explicit, Phase.generate, Phase.shrink],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def fuzz(case: schemathesis.Case) -> None:
            try:
                response = api.send(case)
            except httpx.InvalidURL:  # e.g. a query string past httpx's limit: nobody can send it
                reject()
            check_response(case, response)

        try:
            fuzz()
        except Unsatisfiable:  # nothing to violate (no parameters, no body): nothing to send
            assert mode == GenerationMode.NEGATIVE


# ---------------------------------------------------------------------------- explicit limits

LIMITS = Limits(
    max_body_bytes=64 * 1024,
    max_records_per_batch=10,
    max_text_bytes=1000,
    max_id_length=40,
    max_metadata_bytes=200,
    max_query_bytes=100,
    max_search_limit=20,
)


@pytest.fixture
async def limited(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(make_settings(tmp_path / "data", limits=LIMITS), provider_factory=any_provider)
    async with running(app) as http:
        yield http


def upsert(*records: dict[str, Any]) -> dict[str, Any]:
    return {"upsert": list(records)}


def record(i: int = 0, **fields: Any) -> dict[str, Any]:
    return {"id": f"r{i}", "text": f"text {i}", **fields}


def assert_error(response: httpx.Response, status: int, code: str, says: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code and says in error["message"], error


@pytest.mark.parametrize("path", ["records", "jobs"])
async def test_batch_limits(limited: httpx.AsyncClient, path: str) -> None:
    url = f"/v1/tenants/acme/{path}"
    too_many = upsert(*[record(i) for i in range(11)])
    assert_error(await limited.post(url, json=too_many), 413, "limit_exceeded", "limit is 10")
    wide_text = upsert(record(text="é" * 501))  # 501 characters, 1002 bytes
    assert_error(await limited.post(url, json=wide_text), 413, "limit_exceeded", "1000 bytes")
    metadata = upsert(record(metadata={"note": "x" * 200}))
    assert_error(await limited.post(url, json=metadata), 413, "limit_exceeded", "200 bytes")
    long_id = upsert({"id": "x" * 41, "text": "fine"})
    assert_error(await limited.post(url, json=long_id), 422, "invalid_request", "40")
    long_delete = {"delete": ["y" * 41]}
    assert_error(await limited.post(url, json=long_delete), 422, "invalid_request", "40")
    fits = upsert(*[record(i, metadata={"n": i}) for i in range(10)])
    assert (await limited.post(url, json=fits)).status_code in (200, 202)


async def test_body_size_limit_with_and_without_a_length(limited: httpx.AsyncClient) -> None:
    body = json.dumps(upsert(*[record(i, text="y" * 900) for i in range(80)])).encode()
    assert len(body) > LIMITS.max_body_bytes
    url = "/v1/tenants/acme/records"
    headers = {"content-type": "application/json"}
    declared = await limited.post(url, content=body, headers=headers)
    assert_error(declared, 413, "limit_exceeded", "request body larger than 65536 bytes")

    async def chunks() -> AsyncIterator[bytes]:  # no content-length: counted as it arrives
        for start in range(0, len(body), 8192):
            yield body[start : start + 8192]

    streamed = await limited.post(url, content=chunks(), headers=headers)
    assert_error(streamed, 413, "limit_exceeded", "request body larger than")


async def test_query_and_limit_range(limited: httpx.AsyncClient) -> None:
    url = "/v1/tenants/acme/search"
    long_query = {"query": "q" * 101}
    assert_error(await limited.post(url, json=long_query), 413, "limit_exceeded", "100 bytes")
    for limit in (0, -1, 21, 101, 10**12):
        response = await limited.post(url, json={"query": "fine", "limit": limit})
        assert_error(response, 422, "invalid_request", "limit")
    assert (await limited.post(url, json={"query": "fine", "limit": 20})).status_code == 200


async def test_embeddings_limits(limited: httpx.AsyncClient) -> None:
    url = "/v1/embeddings"
    model = "all-MiniLM-L6-v2"
    # OpenAI's statuses and shape there: 400 for an invalid request (api/errors.py)
    wide = {"model": model, "input": ["é" * 501]}
    assert_error(await limited.post(url, json=wide), 400, "limit_exceeded", "1000 bytes")
    many = {"model": model, "input": ["a"] * 2049}
    assert_error(await limited.post(url, json=many), 400, "invalid_request", "1-2048")
