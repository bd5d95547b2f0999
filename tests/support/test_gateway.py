"""The test gateway speaks OpenAI's embeddings API: checked with the official (sync) client."""

from __future__ import annotations

import base64
import math
import socket
import struct
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import openai
import pytest

from tests.support import gateway as gateway_support
from tests.support.gateway import (
    Fault,
    Gateway,
    GatewayControl,
    embed_text,
    encode_base64,
    running_gateway,
)

# The gateway fixtures (tests/conftest.py may instead list tests.support.gateway in pytest_plugins).
gateway_server = gateway_support.gateway_server
gateway = gateway_support.gateway


@pytest.fixture
def client(gateway: Gateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway.base_url, api_key="test-key", max_retries=0) as client:
        yield client


def test_embeds_a_list_with_the_official_client(gateway: Gateway, client: openai.OpenAI) -> None:
    response = client.embeddings.create(
        model="tiny", input=["hello world", "world"], encoding_format="float"
    )
    assert response.object == "list"
    assert response.model == "tiny"
    assert [d.index for d in response.data] == [0, 1]
    assert response.data[0].embedding == pytest.approx(embed_text("hello world", 16, "tiny"))
    assert len(response.data[1].embedding) == 16
    assert response.usage.prompt_tokens == 3
    assert gateway.control.requests == 1
    assert gateway.control.inputs == 2
    assert gateway.control.headers[0]["authorization"] == "Bearer test-key"


def test_a_single_string_and_base64(gateway: Gateway, client: openai.OpenAI) -> None:
    gateway.control.dimensions["wide"] = 32
    # The SDK asks for base64 by default and decodes it back to floats.
    response = client.embeddings.create(model="wide", input="a single text")
    assert gateway.control.bodies[0]["encoding_format"] == "base64"
    assert len(response.data) == 1
    assert response.data[0].embedding == pytest.approx(embed_text("a single text", 32, "wide"))


def test_base64_is_little_endian_float32(gateway: Gateway) -> None:
    raw = httpx.post(
        f"{gateway.base_url}/embeddings",
        json={"model": "m", "input": ["abc"], "encoding_format": "base64"},
    )
    data = base64.b64decode(raw.json()["data"][0]["embedding"])
    values = struct.unpack("<16f", data)
    assert values == pytest.approx(embed_text("abc", 16, "m"), abs=1e-6)
    assert encode_base64([1.0]) == base64.b64encode(struct.pack("<f", 1.0)).decode()


def test_embeddings_are_deterministic_unit_vectors() -> None:
    first = embed_text("The quick brown fox", 64, "m")
    assert first == embed_text("the QUICK brown fox!", 64, "m")
    assert math.isclose(sum(x * x for x in first), 1.0)
    assert embed_text("fox", 64, "m") != embed_text("fox", 64, "other-model")
    assert embed_text("...", 8) == [1.0] + [0.0] * 7


def test_dimensions_parameter(gateway: Gateway, client: openai.OpenAI) -> None:
    gateway.control.dimensions["big"] = 64
    response = client.embeddings.create(
        model="big", input=["x"], dimensions=8, encoding_format="float"
    )
    assert len(response.data[0].embedding) == 8
    with pytest.raises(openai.BadRequestError, match="at most 64"):
        client.embeddings.create(model="big", input=["x"], dimensions=65)


@pytest.mark.parametrize(
    "body",
    [
        {"model": "m", "input": ""},
        {"model": "m", "input": []},
        {"model": "m", "input": [1, 2]},
        {"input": ["x"]},
        {"model": "m", "input": ["x"], "encoding_format": "int8"},
        {"model": "m", "input": ["x"], "dimensions": 0},
    ],
)
def test_invalid_requests_get_openai_shaped_400s(gateway: Gateway, body: dict[str, object]) -> None:
    response = httpx.post(f"{gateway.base_url}/embeddings", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_unknown_paths_and_methods(gateway: Gateway) -> None:
    assert httpx.post(f"{gateway.base_url}/chat/completions", json={}).status_code == 404
    assert httpx.get(f"{gateway.base_url}/embeddings").status_code == 405


def test_status_faults(gateway: Gateway, client: openai.OpenAI) -> None:
    gateway.control.inject(Fault.rate_limited("7"), Fault.http_status(500), Fault.http_status(503))
    with pytest.raises(openai.RateLimitError) as info:
        client.embeddings.create(model="m", input=["x"])
    assert info.value.response.headers["retry-after"] == "7"
    with pytest.raises(openai.InternalServerError):
        client.embeddings.create(model="m", input=["x"])
    with pytest.raises(openai.InternalServerError) as info503:
        client.embeddings.create(model="m", input=["x"])
    assert info503.value.status_code == 503
    client.embeddings.create(model="m", input=["x"])  # the queue is empty again
    assert gateway.control.requests == 4


def test_response_faults(gateway: Gateway) -> None:
    url = f"{gateway.base_url}/embeddings"
    body = {"model": "m", "input": ["a b", "c d"], "encoding_format": "float"}
    gateway.control.inject(Fault.wrong_count(), Fault.wrong_dimension(), Fault.nan())
    assert len(httpx.post(url, json=body).json()["data"]) == 1
    assert {len(d["embedding"]) for d in httpx.post(url, json=body).json()["data"]} == {15}
    assert "NaN" in httpx.post(url, json=body).text
    gateway.control.inject(Fault.malformed_json())
    with pytest.raises(ValueError):
        httpx.post(url, json=body).json()


def test_reset_and_timeout_faults(gateway: Gateway, client: openai.OpenAI) -> None:
    gateway.control.inject(Fault.reset(), Fault.sleep(5.0))
    with pytest.raises(openai.APIConnectionError):
        client.embeddings.create(model="m", input=["x"])
    with pytest.raises(openai.APITimeoutError):
        client.embeddings.create(model="m", input=["x"], timeout=0.2)
    # The sleeping handler notices the hang-up and leaves: nothing stays in flight.
    response = client.embeddings.create(model="m", input=["x"])
    assert len(response.data) == 1


def test_api_key_is_enforced_when_configured(gateway: Gateway, client: openai.OpenAI) -> None:
    gateway.control.api_key = "right-key"
    with pytest.raises(openai.AuthenticationError):
        client.embeddings.create(model="m", input=["x"])
    with openai.OpenAI(base_url=gateway.base_url, api_key="right-key", max_retries=0) as ok:
        assert ok.embeddings.create(model="m", input=["x"]).data


def test_counts_in_flight_requests(gateway: Gateway) -> None:
    import concurrent.futures

    gateway.control.latency_seconds = 0.2
    url = f"{gateway.base_url}/embeddings"
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        body = {"model": "m", "input": "x"}
        futures = [pool.submit(httpx.post, url, json=body) for _ in range(4)]
        assert all(f.result().status_code == 200 for f in futures)
    assert gateway.control.requests == 4
    assert 1 <= gateway.control.max_in_flight <= 4
    # A request leaves the count after its response is sent: the client can be a moment ahead.
    deadline = time.monotonic() + 10
    while gateway.control.in_flight and time.monotonic() < deadline:
        time.sleep(0.01)
    assert gateway.control.in_flight == 0


def test_reset_restores_defaults() -> None:
    control = GatewayControl(default_dimension=8, latency_seconds=1.0, api_key="k")
    control.inject(Fault.nan())
    control.requests = 3
    control.reset()
    assert (control.default_dimension, control.latency_seconds, control.api_key) == (16, 0.0, None)
    assert not control.faults
    assert control.requests == 0


def test_running_gateway_stops_and_releases_its_port() -> None:
    control = GatewayControl()
    with running_gateway(control) as base_url:
        with openai.OpenAI(base_url=base_url, api_key="k", max_retries=0) as client:
            assert client.embeddings.create(model="m", input="x").data
        port = urlsplit(base_url).port
    assert port is not None
    with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
        probe.connect(("127.0.0.1", port))
