"""Records the engine could not read back are refused at the HTTP edge (records and jobs
routes alike), and metadata at the depth limit is stored and read back in every way.

Bodies are sent as raw JSON: `NaN` and `Infinity` are not JSON, yet Python's parser (and so
FastAPI's) takes them. Before these checks, metadata nested 127 levels was stored with a 200
and bricked the tenant (search 503, filtered search 500), and a NaN got a 200 whose `failed`
entry showed Edge internals, or through a job was stored as null.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from asgi_lifespan import LifespanManager

from tests.support.app import FakeFactory, edge_store, lifespan_state
from vecpipe.api.app import create_app
from vecpipe.resources import Resources
from vecpipe.settings import Settings

TENANT = "acme"
DEPTH = 32  # the default VECPIPE_LIMIT_MAX_METADATA_DEPTH


def objects(levels: int, leaf: str = "1") -> str:
    """A JSON value of `levels` nested objects."""
    return '{"a":' * levels + leaf + "}" * levels


def lists(levels: int, leaf: str = "1") -> str:
    return "[" * levels + leaf + "]" * levels


def metadata(depth: int, shape: Callable[..., str] = objects, leaf: str = "1") -> str:
    """JSON metadata nested `depth` levels, the metadata object itself the first."""
    return '{"k": "v", "deep": ' + shape(depth - 1, leaf) + "}"


def body(metadata: str, record_id: str = "bad", text: str = "a bad record") -> bytes:
    good = '{"id": "good", "text": "a good record", "metadata": {"k": "v"}}'
    bad = f'{{"id": "{record_id}", "text": "{text}", "metadata": {metadata}}}'
    return f'{{"upsert": [{good}, {bad}]}}'.encode()


REFUSED = {
    "objects one level too deep": (body(metadata(DEPTH + 1)), 422, "nested deeper than 32"),
    "lists one level too deep": (body(metadata(DEPTH + 1, lists)), 422, "nested deeper than 32"),
    "the issue's 127 levels": (body(metadata(127)), 422, "nested deeper than 32 levels"),
    "NaN": (body('{"x": NaN}'), 422, "NaN is not allowed (JSON numbers are finite) at"),
    "Infinity in a list": (body('{"x": [1, Infinity]}'), 422, "Infinity is not allowed"),
    "-Infinity deep down": (body('{"a": {"b": -Infinity}}'), 422, "-Infinity is not allowed"),
    "1e999 (parses to inf)": (body('{"x": 1e999}'), 422, "Infinity is not allowed"),
    "an integer past 64 bits": (body('{"x": 18446744073709551616}'), 422, "64-bit range"),
    "oversized text": (body("{}", text="x" * (1024 * 1024 + 1)), 413, "1048576 bytes"),
    "oversized metadata": (body('{"k": "' + "v" * 20_000 + '"}'), 413, "metadata larger than"),
    "an id too long": (body("{}", record_id="i" * 513), 422, "at most 512 characters"),
    "too deep for the parser": (body(metadata(5_000)), 422, "deeper than the JSON parser"),
}


@pytest.fixture
async def served(
    settings: Settings, fake_factory: FakeFactory
) -> AsyncIterator[tuple[httpx.AsyncClient, Resources]]:
    app = create_app(settings, provider_factory=fake_factory)
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://vecpipe.test"
        ) as http,
    ):
        yield http, lifespan_state(manager).resources


async def optimize(resources: Resources) -> None:
    """The space's maintenance: Edge's online optimize, which reloads a copy of the shard."""
    await edge_store(resources).optimize(await resources.pipeline.space_of(TENANT))


async def post(http: httpx.AsyncClient, route: str, raw: bytes) -> httpx.Response:
    headers = {"content-type": "application/json"}
    return await http.post(f"/v1/tenants/{TENANT}/{route}", content=raw, headers=headers)


async def search(http: httpx.AsyncClient, filter: dict[str, str] | None = None) -> list[str]:
    request = {"query": "a record", "limit": 10, "filter": filter}
    response = await http.post(f"/v1/tenants/{TENANT}/search", json=request)
    assert response.status_code == 200, response.text
    return sorted(hit["id"] for hit in response.json()["results"])


async def test_each_unreadable_record_is_refused_and_nothing_is_stored(
    served: tuple[httpx.AsyncClient, Resources],
) -> None:
    http, resources = served
    await post(http, "records", b'{"upsert": [{"id": "before", "text": "a record before"}]}')
    for name, (raw, status, message) in REFUSED.items():
        for route in ("records", "jobs"):
            response = await post(http, route, raw)
            assert response.status_code == status, (name, route, response.text)
            error = response.json()["error"]
            assert message in error["message"], (name, route, error)
            assert "Helper" not in error["message"]  # no store internals
    assert (await http.get(f"/v1/tenants/{TENANT}/records/good")).status_code == 404
    assert (await http.get(f"/v1/tenants/{TENANT}/records/bad")).status_code == 404
    assert await resources.queue.depth() == 0  # no job published a message
    assert (await http.get(f"/v1/tenants/{TENANT}/jobs")).json() == []
    # the tenant and its space work as before
    assert await search(http) == ["before"]
    assert await search(http, {"k": "v"}) == []
    await optimize(resources)
    assert await search(http) == ["before"]


@pytest.mark.parametrize("shape", [objects, lists])
async def test_metadata_at_the_depth_limit_is_stored_and_read_back(
    served: tuple[httpx.AsyncClient, Resources], shape: Callable[..., str]
) -> None:
    http, resources = served
    deep = metadata(DEPTH, shape, leaf='"bottom"')
    raw = f'{{"upsert": [{{"id": "deep", "text": "a deep record", "metadata": {deep}}}]}}'
    response = await post(http, "records", raw.encode())
    assert response.status_code == 200 and response.json()["upserted"] == 1, response.text
    sent = json.loads(deep)
    for when in ("before", "after an optimize"):
        if when != "before":
            await optimize(resources)
        got = await http.get(f"/v1/tenants/{TENANT}/records/deep")
        assert got.status_code == 200 and got.json()["metadata"] == sent, when
        assert await search(http) == ["deep"]
        assert await search(http, {"k": "v"}) == ["deep"]
