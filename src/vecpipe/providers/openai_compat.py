"""Embeddings from any OpenAI-compatible gateway, through one `openai.AsyncOpenAI` per provider.

The client is created in `open()` (on the running loop, never at import time) and closed in
`aclose()` on the same loop; that pairing is the point of this service (see DESIGN.md).

Requests: inputs go in batches of at most `max_batch_size`, at most `max_concurrency` at a
time per provider, as `encoding_format="base64"` (little-endian float32; plain float lists are
accepted too). The SDK's own retries are off: 429 (honouring Retry-After), 408, 409, 5xx,
timeouts and connection failures are retried here with exponential backoff and full jitter,
bounded by attempts and by total time; then `TransientProviderError` (with `retry_after` when
the server named one) lets the caller back off or requeue. Other 4xx fail at once with
`ProviderError`. Every response is checked (count, indexes, dimension, finite numbers), and a
bad one is a `BadProviderResponse`, never a vector (the wire format: openai_wire.py).

Purposes: a search's query and stored documents go to the gateway alike, unless the config's
`input_type` names the value of an `input_type` request field for each purpose (models that
embed queries and documents differently: NVIDIA NIM's "query"/"passage", Voyage's and
Cohere's through LiteLLM); OpenAI's own models take no such field.

Secrets: the API key is never in `name`, a repr, a log line or an error message, and no
exception from httpx/openai (whose request holds the Authorization header) is chained to ours.
Redirects are not followed (they could lead past the URL policy) and OPENAI_* environment
variables (organisation, project, custom headers) never reach a tenant's gateway.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

import httpx2
import openai
from openai import Omit, RequestOptions

from vecpipe.errors import (
    BadProviderResponse,
    ClosedError,
    ProviderError,
    TransientProviderError,
    VecpipeError,
)
from vecpipe.lifecycle import AsyncResource
from vecpipe.models import EmbeddingSpace
from vecpipe.providers.base import Purpose
from vecpipe.providers.kinds.openai import OpenAIProviderConfig
from vecpipe.providers.openai_wire import decode_embeddings, parse_retry_after, server_message
from vecpipe.providers.url_policy import GatewayUrlPolicy, HostResolutionError
from vecpipe.text.chunking import CharChunker

log = logging.getLogger(__name__)

DEFAULT_OVERLAP_TOKENS = 32
_CHUNK_INLINE_CHARS = 64 * 1024  # more text than this is chunked in a worker thread
_PROBE_TEXT = "dimension probe"
_RETRY_STATUSES = frozenset({408, 409, 429})

Sleep = Callable[[float], Awaitable[None]]

_ssl_context: ssl.SSLContext | None = None


@dataclass(frozen=True)
class RetryPolicy:
    """How hard one batch is retried before the caller hears `TransientProviderError`."""

    max_attempts: int = 5
    total_seconds: float = 60.0
    base_delay: float = 0.5
    max_delay: float = 10.0
    max_retry_after: float = 30.0

    def delay(self, attempt: int, retry_after: float | None, remaining: float) -> float | None:
        """Seconds to wait before attempt `attempt + 1`, or None to give up now."""
        if attempt >= self.max_attempts or remaining <= 0:
            return None
        if retry_after is not None:
            # Waiting less than the server asked is rude; waiting longer than we may is futile.
            return retry_after if retry_after <= min(self.max_retry_after, remaining) else None
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1), remaining)
        return random.uniform(0.0, ceiling)


def provider_name(config: OpenAIProviderConfig) -> str:
    """`openai:<host[:port]>/<model>`: what logs and metrics call a gateway (no secrets)."""
    parts = urlsplit(config.base_url)
    host = parts.hostname or "?"
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"openai:{host}{f':{port}' if port else ''}/{config.model}"


class OpenAICompatibleProvider(AsyncResource):
    """An `EmbeddingProvider` for an OpenAI-compatible `/embeddings` endpoint. Use `open()`."""

    name: str
    space: EmbeddingSpace

    def __init__(
        self,
        config: OpenAIProviderConfig,
        client: openai.AsyncOpenAI,
        *,
        retry: RetryPolicy | None = None,
        sleep: Sleep = asyncio.sleep,
        overlap_tokens: int = DEFAULT_OVERLAP_TOKENS,
    ) -> None:
        self.name = provider_name(config)
        self.space = EmbeddingSpace(config.model, config.dimensions or 0)
        self._client = client
        self._model = config.model
        self._dimensions = config.dimensions
        self._input_types = dict(config.input_type or {})
        self._timeout = config.timeout_seconds
        self._max_batch = config.max_batch_size
        self._semaphore = asyncio.Semaphore(config.max_concurrency)
        self._chunker = CharChunker.for_token_limit(
            config.max_input_tokens, min(overlap_tokens, config.max_input_tokens // 4)
        )
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._secrets = tuple(s for s in [_api_key(config)] if s)
        self._options = _request_options(bool(self._secrets))
        self._closed = False

    @classmethod
    async def open(
        cls,
        config: OpenAIProviderConfig,
        *,
        policy: GatewayUrlPolicy,
        retry: RetryPolicy | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> OpenAICompatibleProvider:
        """Check the URL (resolving the host), create the client, learn the dimension."""
        name = provider_name(config)
        try:
            await policy.check_resolved(config.base_url)
        except HostResolutionError as exc:
            raise TransientProviderError(f"{name}: {exc.message}") from None
        client = _make_client(config, await _shared_ssl_context())
        provider = cls(config, client, retry=retry, sleep=sleep)
        try:
            if config.dimensions is None:
                await provider._probe()
        except BaseException:
            await provider.aclose()
            raise
        log.info("opened embedding provider %s (%d dimensions)", name, provider.space.dimension)
        return provider

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<OpenAICompatibleProvider {self.name} dim={self.space.dimension} {state}>"

    @property
    def closed(self) -> bool:
        return self._closed

    async def aclose(self) -> None:
        """Close the HTTP client (and its connections). Idempotent."""
        if self._closed:
            return
        self._closed = True
        await self._client.close()

    async def chunk(self, texts: Sequence[str]) -> list[list[str]]:
        """Split each text into pieces of about `max_input_tokens` tokens (4 chars a token).

        The gateway's tokenizer is unknown, so this budgets characters; non-ASCII characters
        count as a whole token each, which keeps CJK text within the limit too.
        """
        self._check_open()
        if sum(len(text) for text in texts) <= _CHUNK_INLINE_CHARS:
            return self._chunker.split_many(texts)
        return await asyncio.to_thread(self._chunker.split_many, list(texts))

    async def embed(
        self, texts: Sequence[str], *, purpose: Purpose = "document"
    ) -> list[list[float]]:
        """One checked vector per text, in order; batches run concurrently (bounded).

        `purpose` reaches the gateway only as the config's `input_type` says (see above).
        """
        self._check_open()
        batches = [
            list(texts[i : i + self._max_batch]) for i in range(0, len(texts), self._max_batch)
        ]
        if len(batches) <= 1:
            return await self._embed_batch(batches[0], purpose) if batches else []
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(self._embed_batch(batch, purpose)) for batch in batches]
        except BaseExceptionGroup as failures:
            raise _first_error(failures) from None
        return [vector for task in tasks for vector in task.result()]

    # ------------------------------------------------------------------ one batch, retried

    async def _probe(self) -> None:
        vectors = await self._embed_batch([_PROBE_TEXT], "document")
        self.space = EmbeddingSpace(self._model, len(vectors[0]))

    async def _embed_batch(self, batch: list[str], purpose: Purpose) -> list[list[float]]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._retry.total_seconds
        attempt = 0
        while True:
            attempt += 1
            self._check_open()
            try:
                async with self._semaphore:
                    return await self._request(batch, purpose)
            except TransientProviderError as exc:
                delay = self._retry.delay(attempt, exc.retry_after, deadline - loop.time())
                if delay is None:
                    message = f"{exc.message} (gave up after {attempt} attempt(s))"
                    raise TransientProviderError(message, retry_after=exc.retry_after) from None
                log.warning("%s; retry %d in %.2fs", exc.message, attempt, delay)
            await self._sleep(delay)

    async def _request(self, batch: list[str], purpose: Purpose) -> list[list[float]]:
        """One HTTP attempt. Errors are raised outside `except` so none chains to the SDK's."""
        failure: VecpipeError
        try:
            content = await self._client.post(
                "/embeddings", cast_to=bytes, body=self._body(batch, purpose), options=self._options
            )
        except openai.APIStatusError as exc:
            failure = self._status_failure(exc.status_code, exc.response.headers, exc.body)
        except openai.APITimeoutError:
            failure = TransientProviderError(f"{self.name}: timed out after {self._timeout:g}s")
        except openai.APIConnectionError as exc:
            cause = type(exc.__cause__).__name__ if exc.__cause__ else "unknown"
            failure = TransientProviderError(f"{self.name}: connection failed ({cause})")
        except Exception as exc:  # an SDK surprise, or the client closed under us
            if not self._closed:
                log.warning("%s: unexpected client failure", self.name, exc_info=True)
            failure = ProviderError(f"{self.name}: client failure ({type(exc).__name__})")
        else:
            try:
                return decode_embeddings(content, len(batch), self.space.dimension or None)
            except ValueError as exc:
                failure = BadProviderResponse(f"{self.name}: bad response: {exc}")
        if self._closed:  # whatever went wrong, the reason is that we were closed meanwhile
            failure = ClosedError(f"{self.name} was closed")
        raise failure

    def _body(self, batch: list[str], purpose: Purpose) -> dict[str, Any]:
        """What `embeddings.create` would send, built directly: the SDK's generic transform
        walks every input string through its type machinery (~10 us a text), for nothing."""
        body: dict[str, Any] = {"model": self._model, "input": batch}
        if self._dimensions is not None:
            body["dimensions"] = self._dimensions
        if purpose in self._input_types:
            body["input_type"] = self._input_types[purpose]
        body["encoding_format"] = "base64"
        return body

    def _status_failure(
        self, status: int, headers: Mapping[str, str], body: object
    ) -> ProviderError:
        detail = self._redact(server_message(body))
        if 300 <= status < 400:  # the SDK treats an unfollowed redirect as an error status
            detail = "redirects are not followed; configure the gateway's final URL"
        message = f"{self.name}: HTTP {status}" + (f": {detail}" if detail else "")
        if status in _RETRY_STATUSES or status >= 500:
            return TransientProviderError(message, retry_after=parse_retry_after(headers))
        return ProviderError(message)

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"{self.name} was closed")


async def _shared_ssl_context() -> ssl.SSLContext:
    """One TLS context for every gateway client, built off the loop once.

    Loading the CA bundle takes ~20 ms; with a shared context a client costs well under one.
    """
    global _ssl_context
    if _ssl_context is None:
        _ssl_context = await asyncio.to_thread(httpx2.create_ssl_context)
    return _ssl_context


def _make_client(config: OpenAIProviderConfig, ssl_context: ssl.SSLContext) -> openai.AsyncOpenAI:
    """The SDK client, shielded from OPENAI_* environment variables meant for other uses.

    Organisation, project and an `OPENAI_CUSTOM_HEADERS` Authorization must not travel to a
    tenant's gateway; without a key no Authorization header is sent at all.
    """
    key = _api_key(config)
    auth: str | Omit = f"Bearer {key}" if key else Omit()
    headers = {"Authorization": auth, "OpenAI-Organization": Omit(), "OpenAI-Project": Omit()}
    return openai.AsyncOpenAI(
        base_url=config.base_url,
        api_key=key or "unused",
        timeout=config.timeout_seconds,
        max_retries=0,
        default_headers=cast(Mapping[str, str], headers),
        # A redirect could lead past the URL policy (to 169.254.169.254, say): not followed.
        http_client=openai.DefaultAsyncHttpx2Client(verify=ssl_context, follow_redirects=False),
    )


def _api_key(config: OpenAIProviderConfig) -> str:
    """The key in clear ("" for none): for the Authorization header and redaction only."""
    return config.api_key.get_secret_value() if config.api_key is not None else ""


def _request_options(has_key: bool) -> RequestOptions:
    """Per-request options as `embeddings.create` sets them; without a key, no Authorization
    header at all (the SDK wants that said on the request too)."""
    options: RequestOptions = {"security": {"bearer_auth": True}}
    if not has_key:
        options["headers"] = {"Authorization": Omit()}
    return options


def _first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error to surface from a failed TaskGroup: a provider error if there is one."""
    leaves: list[BaseException] = []
    stack: list[BaseException] = [group]
    while stack:
        item = stack.pop()
        if isinstance(item, BaseExceptionGroup):
            stack.extend(reversed(item.exceptions))
        else:
            leaves.append(item)
    return next((e for e in leaves if isinstance(e, VecpipeError)), leaves[0])
