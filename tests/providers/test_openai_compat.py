"""OpenAICompatibleProvider against a real OpenAI-compatible gateway on the loopback interface."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import time
import traceback
import warnings
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from pydantic import SecretStr

from tests.support import gateway as gateway_support
from tests.support.gateway import Fault, Gateway, embed_text
from vecpipe.errors import (
    BadProviderResponse,
    ClosedError,
    ProviderError,
    TransientProviderError,
    ValidationError,
)
from vecpipe.lifecycle import AsyncResource
from vecpipe.models import EmbeddingSpace
from vecpipe.providers.kinds.openai import OpenAIProviderConfig
from vecpipe.providers.openai_compat import (
    OpenAICompatibleProvider,
    RetryPolicy,
    provider_name,
)
from vecpipe.providers.url_policy import GatewayUrlPolicy

LOOPBACK = GatewayUrlPolicy(frozenset({"127.0.0.1"}))
API_KEY = "sk-test-DO-NOT-LEAK-4f1c2a9b"
FAST = RetryPolicy(max_attempts=5, total_seconds=30.0, base_delay=0.001, max_delay=0.01)

# The gateway fixtures (tests/conftest.py may instead list tests.support.gateway in pytest_plugins).
gateway_server = gateway_support.gateway_server
gateway = gateway_support.gateway


class RecordingSleep:
    """Stands in for asyncio.sleep: records the delays, waits only a loop turn."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await asyncio.sleep(0)


OpenProvider = Callable[..., Any]


@pytest.fixture
async def open_provider(gateway: Gateway) -> AsyncIterator[OpenProvider]:
    """Opens providers on the test gateway; closes them all at the end."""
    opened: list[OpenAICompatibleProvider] = []

    async def factory(
        *, retry: RetryPolicy = FAST, sleep: Any = None, **overrides: Any
    ) -> OpenAICompatibleProvider:
        fields: dict[str, Any] = {"base_url": gateway.base_url, "model": "m", **overrides}
        config = OpenAIProviderConfig(**fields)
        provider = await OpenAICompatibleProvider.open(
            config, policy=LOOPBACK, retry=retry, sleep=sleep or RecordingSleep()
        )
        opened.append(provider)
        return provider

    yield factory
    for provider in opened:
        await provider.aclose()


def expected(text: str, dimension: int = 16, model: str = "m") -> Any:
    return pytest.approx(embed_text(text, dimension, model), rel=1e-6, abs=1e-7)


# ------------------------------------------------------------------------------ happy paths


async def test_open_probes_the_dimension(gateway: Gateway, open_provider: OpenProvider) -> None:
    gateway.control.dimensions["wide"] = 48
    provider = await open_provider(model="wide")
    assert provider.space == EmbeddingSpace("wide", 48)
    assert gateway.control.requests == 1
    port = gateway.base_url.split(":")[2].split("/")[0]
    assert provider.name == f"openai:127.0.0.1:{port}/wide"


async def test_configured_dimensions_skip_the_probe_and_are_sent(
    gateway: Gateway,
    open_provider: OpenProvider,
) -> None:
    provider = await open_provider(dimensions=8)
    assert provider.space == EmbeddingSpace("m", 8)
    assert gateway.control.requests == 0
    vectors = await provider.embed(["hello world"])
    assert vectors == [expected("hello world", 8)]
    assert gateway.control.bodies[0]["dimensions"] == 8


async def test_the_purpose_reaches_the_gateway_only_where_the_config_maps_it(
    gateway: Gateway, open_provider: OpenProvider
) -> None:
    plain = await open_provider(dimensions=8)
    mapped = await open_provider(dimensions=8, input_type={"query": "query", "document": "passage"})
    query_only = await open_provider(dimensions=8, input_type={"query": "search_query"})
    await plain.embed(["a"], purpose="query")
    await mapped.embed(["a"], purpose="query")
    await mapped.embed(["a", "b"])  # documents, unless told otherwise
    await query_only.embed(["a"], purpose="document")
    await query_only.embed(["a"], purpose="query")
    bodies = gateway.control.bodies
    assert [b.get("input_type") for b in bodies] == [None, "query", "passage", None, "search_query"]


@pytest.mark.parametrize("dimensions", [None, 8])
async def test_requests_are_what_the_sdks_create_would_send(
    gateway: Gateway, open_provider: OpenProvider, dimensions: int | None
) -> None:
    """The provider posts its request body directly; it must not drift from the SDK's."""
    import openai

    provider = await open_provider(dimensions=dimensions, api_key=API_KEY)
    gateway.control.reset()
    await provider.embed(["alpha", "beta"])
    extra: dict[str, Any] = {} if dimensions is None else {"dimensions": dimensions}
    async with openai.AsyncOpenAI(base_url=gateway.base_url, api_key=API_KEY) as client:
        await client.embeddings.create(
            input=["alpha", "beta"], model="m", encoding_format="base64", **extra
        )
    ours, sdks = gateway.control.bodies
    assert json.dumps(ours) == json.dumps(sdks)  # same keys, same order
    ours_headers, sdk_headers = gateway.control.headers
    for name in ("authorization", "content-type", "accept"):
        assert ours_headers[name] == sdk_headers[name]


async def test_embed_decodes_base64_in_order(gateway: Gateway, open_provider: OpenProvider) -> None:
    provider = await open_provider()
    texts = ["alpha beta", "gamma", "alpha beta gamma delta"]
    vectors = await provider.embed(texts)
    assert vectors == [expected(t) for t in texts]
    assert all(isinstance(x, float) for v in vectors for x in v)
    assert [b["encoding_format"] for b in gateway.control.bodies] == ["base64", "base64"]
    assert await provider.embed([]) == []
    assert gateway.control.requests == 2


async def test_float_lists_are_accepted_too(gateway: Gateway, open_provider: OpenProvider) -> None:
    gateway.control.always_float = True
    provider = await open_provider()
    assert await provider.embed(["plain floats"]) == [expected("plain floats")]


async def test_batches_respect_max_batch_size(
    gateway: Gateway, open_provider: OpenProvider
) -> None:
    provider = await open_provider(dimensions=16, max_batch_size=3)
    texts = [f"text number {i}" for i in range(10)]
    vectors = await provider.embed(texts)
    assert vectors == [expected(t) for t in texts]
    assert gateway.control.requests == 4
    assert sorted(len(b["input"]) for b in gateway.control.bodies) == [1, 3, 3, 3]
    assert gateway.control.inputs == 10


@pytest.mark.parametrize("limit", [1, 3])
async def test_concurrency_is_bounded(
    gateway: Gateway,
    open_provider: OpenProvider,
    limit: int,
) -> None:
    gateway.control.latency_seconds = 0.05
    provider = await open_provider(dimensions=16, max_batch_size=1, max_concurrency=limit)
    texts = [f"t{i}" for i in range(8)]
    assert await provider.embed(texts) == [expected(t) for t in texts]
    assert gateway.control.requests == 8
    assert 1 <= gateway.control.max_in_flight <= limit


async def test_concurrency_bound_is_per_provider_across_calls(
    gateway: Gateway,
    open_provider: OpenProvider,
) -> None:
    gateway.control.latency_seconds = 0.05
    provider = await open_provider(dimensions=16, max_batch_size=2, max_concurrency=2)
    calls = [provider.embed([f"a{i}", f"b{i}", f"c{i}"]) for i in range(4)]
    results = await asyncio.gather(*calls)
    assert [len(r) for r in results] == [3, 3, 3, 3]
    assert gateway.control.max_in_flight <= 2


async def test_chunk_splits_long_text_only(open_provider: OpenProvider) -> None:
    provider = await open_provider(dimensions=16, max_input_tokens=16)  # ~64 characters
    long_text = " ".join(f"word{i}" for i in range(100))
    short, long = await provider.chunk(["short text", long_text])
    assert short == ["short text"]
    assert len(long) > 1
    assert all(len(piece) <= 64 for piece in long)
    assert all(piece in long_text for piece in long)
    big = await provider.chunk(["x " * 50_000])  # large input goes through a worker thread
    assert all(len(piece) <= 64 for piece in big[0])


# ------------------------------------------------------------------------------ retries


@pytest.mark.parametrize(
    "fault",
    [
        Fault.rate_limited("0"),
        Fault.rate_limited(None),
        Fault.http_status(500),
        Fault.http_status(502),
        Fault.http_status(503),
        Fault.http_status(408),
        Fault.sleep(5.0),
        Fault.reset(),
    ],
    ids=["429", "429-no-header", "500", "502", "503", "408", "timeout", "reset"],
)
async def test_transient_failures_are_retried(
    gateway: Gateway,
    open_provider: OpenProvider,
    fault: Fault,
) -> None:
    sleep = RecordingSleep()
    timeout = 0.3 if fault.kind == "sleep" else 30.0  # short only where it must expire
    provider = await open_provider(dimensions=16, timeout_seconds=timeout, sleep=sleep)
    gateway.control.inject(fault, fault)
    assert await provider.embed(["retry me"]) == [expected("retry me")]
    assert gateway.control.requests == 3
    assert len(sleep.delays) == 2


async def test_retry_after_is_honoured(gateway: Gateway, open_provider: OpenProvider) -> None:
    sleep = RecordingSleep()
    provider = await open_provider(dimensions=16, sleep=sleep)
    gateway.control.inject(Fault.rate_limited("0.25"), Fault.rate_limited("1"))
    await provider.embed(["x"])
    assert sleep.delays == [0.25, 1.0]


async def test_backoff_grows_with_full_jitter(
    gateway: Gateway, open_provider: OpenProvider
) -> None:
    sleep = RecordingSleep()
    retry = RetryPolicy(max_attempts=5, base_delay=1.0, max_delay=3.0)
    provider = await open_provider(dimensions=16, retry=retry, sleep=sleep)
    gateway.control.inject(*[Fault.http_status(503)] * 4)
    await provider.embed(["x"])
    ceilings = [1.0, 2.0, 3.0, 3.0]
    assert len(sleep.delays) == 4
    assert all(0.0 <= d <= c for d, c in zip(sleep.delays, ceilings, strict=True))


async def test_long_retry_after_is_handed_to_the_caller(
    gateway: Gateway,
    open_provider: OpenProvider,
) -> None:
    sleep = RecordingSleep()
    retry = RetryPolicy(max_retry_after=5.0)
    provider = await open_provider(dimensions=16, retry=retry, sleep=sleep)
    gateway.control.inject(Fault.rate_limited("120"))
    with pytest.raises(TransientProviderError) as info:
        await provider.embed(["x"])
    assert info.value.retry_after == 120.0
    assert info.value.retryable
    assert sleep.delays == []
    assert gateway.control.requests == 1


async def test_retries_stop_after_max_attempts(
    gateway: Gateway, open_provider: OpenProvider
) -> None:
    retry = RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.001)
    provider = await open_provider(dimensions=16, retry=retry)
    gateway.control.inject(*[Fault.http_status(503)] * 5)
    with pytest.raises(TransientProviderError, match="gave up after 3") as info:
        await provider.embed(["x"])
    assert "503" in str(info.value)
    assert gateway.control.requests == 3


async def test_retries_stop_when_the_time_budget_is_spent(
    gateway: Gateway,
    open_provider: OpenProvider,
) -> None:
    provider = await open_provider(dimensions=16, retry=RetryPolicy(total_seconds=0.0))
    gateway.control.inject(Fault.rate_limited("0"))
    with pytest.raises(TransientProviderError, match="gave up after 1") as info:
        await provider.embed(["x"])
    assert info.value.retry_after == 0.0
    assert gateway.control.requests == 1


@pytest.mark.parametrize("status", [400, 404, 413, 422])
async def test_other_client_errors_fail_at_once(
    gateway: Gateway,
    open_provider: OpenProvider,
    status: int,
) -> None:
    provider = await open_provider(dimensions=16)
    gateway.control.inject(Fault.http_status(status, message="input too long"))
    with pytest.raises(ProviderError, match=f"HTTP {status}: input too long") as info:
        await provider.embed(["x"])
    assert not isinstance(info.value, TransientProviderError)
    assert gateway.control.requests == 1


@pytest.mark.parametrize("status", [301, 307, 308])
async def test_redirects_are_not_followed(
    gateway: Gateway, open_provider: OpenProvider, status: int
) -> None:
    provider = await open_provider(dimensions=16)
    location = (("location", f"{gateway.base_url}/embeddings"),)
    gateway.control.inject(Fault.http_status(status, headers=location))
    with pytest.raises(ProviderError, match="redirects are not followed") as info:
        await provider.embed(["x"])
    assert not isinstance(info.value, TransientProviderError)
    assert gateway.control.requests == 1


async def test_wrong_key_fails_at_once(gateway: Gateway, open_provider: OpenProvider) -> None:
    gateway.control.api_key = "the-right-key"
    with pytest.raises(ProviderError, match="HTTP 401") as info:
        await open_provider(api_key=API_KEY)
    assert not isinstance(info.value, TransientProviderError)


# ------------------------------------------------------------------------------ bad responses


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (Fault.wrong_count(), "1 embeddings for 2 inputs"),
        (Fault.wrong_dimension(), "dimension 15, expected 16"),
        (Fault.nan(), "NaN"),
        (Fault.malformed_json(), "not JSON"),
    ],
)
async def test_bad_responses_are_errors_never_vectors(
    gateway: Gateway,
    open_provider: OpenProvider,
    fault: Fault,
    message: str,
) -> None:
    provider = await open_provider(dimensions=16)
    gateway.control.inject(fault)
    with pytest.raises(BadProviderResponse, match=message):
        await provider.embed(["one text", "two texts"])
    assert gateway.control.requests == 1


async def test_one_bad_batch_fails_the_call_and_cancels_the_rest(
    gateway: Gateway,
    open_provider: OpenProvider,
) -> None:
    provider = await open_provider(dimensions=16, max_batch_size=1, max_concurrency=1)
    gateway.control.inject(Fault.nan())
    with pytest.raises(BadProviderResponse):
        await provider.embed(["a", "b", "c", "d"])
    assert gateway.control.requests < 4
    assert await provider.embed(["still usable"]) == [expected("still usable")]


async def test_probe_detects_a_bad_gateway_and_closes(
    gateway: Gateway,
    open_provider: OpenProvider,
) -> None:
    gateway.control.inject(Fault.nan())
    with pytest.raises(BadProviderResponse):
        await open_provider()


def test_retry_policy_delay() -> None:
    policy = RetryPolicy(max_attempts=3, base_delay=1.0, max_delay=10.0, max_retry_after=5.0)
    assert policy.delay(3, None, 100.0) is None
    assert policy.delay(1, None, 0.0) is None
    assert policy.delay(1, 2.0, 100.0) == 2.0
    assert policy.delay(1, 6.0, 100.0) is None
    assert policy.delay(1, 2.0, 1.0) is None
    assert all(0.0 <= (policy.delay(2, None, 100.0) or 0.0) <= 2.0 for _ in range(50))
    assert all(0.0 <= (policy.delay(2, None, 0.5) or 0.0) <= 0.5 for _ in range(50))


# ------------------------------------------------------------------------------ secrets


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    item: BaseException | None = exc
    while item is not None and item not in seen:
        seen.append(item)
        item = item.__cause__ or item.__context__
    return seen


async def test_the_key_never_leaks(
    gateway: Gateway,
    open_provider: OpenProvider,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    gateway.control.api_key = API_KEY
    provider = await open_provider(api_key=API_KEY, timeout_seconds=0.3)
    assert gateway.control.headers[0]["authorization"] == f"Bearer {API_KEY}"
    failures: list[BaseException] = []
    for faults in (
        [Fault.http_status(400, message=f"bad key {API_KEY} echoed")],
        [Fault.http_status(503, message=f"echo {API_KEY}")] * 5,
        [Fault.reset()] * 5,
        [Fault.sleep(5.0)] * 5,
        [Fault.malformed_json()],
    ):
        gateway.control.inject(*faults)
        with pytest.raises(ProviderError) as info:
            await provider.embed(["x"])
        failures.append(info.value)
    gateway.control.api_key = "another key"
    with pytest.raises(ProviderError) as info:
        await provider.embed(["x"])
    failures.append(info.value)
    texts = [repr(provider), provider.name, caplog.text]
    for failure in failures:
        texts += [str(failure), repr(failure), "".join(traceback.format_exception(failure))]
        assert all(type(e).__module__.startswith("vecpipe") for e in _chain(failure))
    assert "***" in str(failures[0])
    assert not [t for t in texts if API_KEY in t]


async def test_openai_environment_does_not_reach_the_gateway(
    gateway: Gateway,
    open_provider: OpenProvider,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_ORG_ID", "org-env")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-env")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    monkeypatch.setenv("OPENAI_CUSTOM_HEADERS", "Authorization: Bearer sk-env-custom")
    keyless = await open_provider()
    keyed = await open_provider(api_key=API_KEY)
    await keyless.embed(["x"])
    await keyed.embed(["x"])
    keyless_headers, keyed_headers = gateway.control.headers[-2:]
    assert "authorization" not in keyless_headers
    assert keyed_headers["authorization"] == f"Bearer {API_KEY}"
    for headers in (keyless_headers, keyed_headers):
        assert "openai-organization" not in headers
        assert "openai-project" not in headers


# ------------------------------------------------------------------ policy and lifecycle


async def test_open_enforces_the_url_policy(gateway: Gateway) -> None:
    config = OpenAIProviderConfig(base_url=gateway.base_url, model="m", api_key=SecretStr(API_KEY))
    with pytest.raises(ValidationError, match="loopback") as info:
        await OpenAICompatibleProvider.open(config, policy=GatewayUrlPolicy(frozenset()))
    assert API_KEY not in str(info.value)
    assert gateway.control.requests == 0


async def test_unresolvable_host_is_transient(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    async def no_dns(*args: object, **kwargs: object) -> list[object]:
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", no_dns)
    config = OpenAIProviderConfig(base_url="https://gateway.example/v1", model="m")
    with pytest.raises(TransientProviderError, match=r"gateway\.example"):
        await OpenAICompatibleProvider.open(config, policy=GatewayUrlPolicy(frozenset()))


def test_provider_name_has_no_secrets() -> None:
    config = OpenAIProviderConfig(
        base_url="https://[2001:db8::1]:8443/v1?api-key=secret",
        model="emb",
        api_key=SecretStr(API_KEY),
    )
    assert provider_name(config) == "openai:[2001:db8::1]:8443/emb"


async def test_close_is_idempotent_and_final(open_provider: OpenProvider) -> None:
    provider = await open_provider(dimensions=16)
    async with provider:
        assert await provider.embed(["x"])
    assert "closed" in repr(provider)
    await provider.aclose()
    with pytest.raises(ClosedError):
        await provider.embed(["x"])
    with pytest.raises(ClosedError):
        await provider.chunk(["x"])


async def test_the_provider_is_an_async_resource_refused_after_close(
    open_provider: OpenProvider,
) -> None:
    provider: OpenAICompatibleProvider = await open_provider(dimensions=16)
    assert isinstance(provider, AsyncResource)
    assert not provider.closed
    async with provider as entered:
        assert entered is provider
    assert provider.closed
    with pytest.raises(ClosedError):
        async with provider:
            pass


async def test_close_during_a_call(gateway: Gateway, open_provider: OpenProvider) -> None:
    gateway.control.latency_seconds = 0.3
    provider = await open_provider(dimensions=16)
    call = asyncio.create_task(provider.embed(["slow"]))
    await _until(lambda: gateway.control.in_flight > 0)
    await provider.aclose()
    with pytest.raises(ClosedError):
        await call


async def _until(condition: Callable[[], bool], limit: float = 5.0) -> None:
    """Wait (a bounded while) for something another thread does; never asserts on time."""
    deadline = time.monotonic() + limit
    while not condition() and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.01)


def _open_sockets() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    return count


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
async def test_open_and_close_many_providers_leaks_nothing(
    gateway: Gateway,
) -> None:
    config = OpenAIProviderConfig(base_url=gateway.base_url, model="m", api_key=SecretStr(API_KEY))
    warmup = await OpenAICompatibleProvider.open(config, policy=LOOPBACK)
    await warmup.aclose()
    baseline = _open_sockets()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        for i in range(50):
            provider = await OpenAICompatibleProvider.open(config, policy=LOOPBACK)
            assert await provider.embed([f"text {i}"]) == [expected(f"text {i}")]
            await provider.aclose()
        gateway.control.inject(Fault.http_status(400))
        with pytest.raises(ProviderError):
            await OpenAICompatibleProvider.open(config, policy=LOOPBACK)  # closes on failure
        # Counted before any garbage collection, which would close leaked sockets for us.
        await _until(lambda: _open_sockets() <= baseline)  # the gateway thread closes its ends
        assert _open_sockets() <= baseline
        del provider
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert gateway.control.requests == 1 + 50 * 2 + 1
