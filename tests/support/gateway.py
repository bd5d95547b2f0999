"""A real OpenAI-compatible embeddings server on the loopback interface, for tests.

`POST /v1/embeddings` speaks OpenAI's request and response shapes (input as a string or a
list of strings, `model`, `encoding_format` float|base64, `dimensions`, `usage`) and answers
with deterministic embeddings: a hashed bag of words, L2-normalised, so equal texts give
equal vectors and texts sharing words are close.

A `GatewayControl` shared with the test steers it: `latency_seconds`, a queue of `Fault`s
applied to the next requests (one fault per request), an optional required API key, and
counters (requests, inputs, in-flight and its maximum) that the test reads.

The server is uvicorn in a background thread with its own event loop (it is test support,
not part of the service; the service's rule of one loop per process is about the code under
test). `running_gateway(control)` starts it on 127.0.0.1 with an ephemeral port and stops it
cleanly. Fixtures: `gateway_server` (one server per session) and `gateway` (a per-test handle
whose control was reset).

Use in a test module: `from tests.support.gateway import gateway, gateway_server  # noqa: F401`,
or `pytest_plugins = ["tests.support.gateway"]` in the root conftest.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import math
import re
import struct
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest
import uvicorn

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

FaultKind = Literal[
    "status", "sleep", "malformed_json", "wrong_count", "wrong_dimension", "nan", "reset"
]
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Fault:
    """What goes wrong with one request. Build with the class methods."""

    kind: FaultKind
    status: int = 500
    retry_after: str | None = None
    seconds: float = 0.0
    message: str | None = None
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def rate_limited(cls, retry_after: str | None = "0") -> Fault:
        """429, with `Retry-After: <retry_after>` unless None."""
        return cls("status", status=429, retry_after=retry_after)

    @classmethod
    def http_status(
        cls,
        status: int,
        retry_after: str | None = None,
        message: str | None = None,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> Fault:
        """`status` with an OpenAI-shaped error body (`message` or a default) and `headers`."""
        return cls(
            "status", status=status, retry_after=retry_after, message=message, headers=headers
        )

    @classmethod
    def sleep(cls, seconds: float) -> Fault:
        """Answer normally after `seconds`, or not at all if the client hangs up first."""
        return cls("sleep", seconds=seconds)

    @classmethod
    def malformed_json(cls) -> Fault:
        return cls("malformed_json")

    @classmethod
    def wrong_count(cls) -> Fault:
        """One embedding fewer than inputs."""
        return cls("wrong_count")

    @classmethod
    def wrong_dimension(cls) -> Fault:
        """Every vector one number short."""
        return cls("wrong_dimension")

    @classmethod
    def nan(cls) -> Fault:
        """A NaN in the first vector."""
        return cls("nan")

    @classmethod
    def reset(cls) -> Fault:
        """The connection closes halfway through the response body."""
        return cls("reset")


@dataclass
class GatewayControl:
    """Shared between the test (any thread) and the server thread.

    `dimensions` maps model names to their native dimension (else `default_dimension`);
    `api_key`, when set, is required as a Bearer token; `always_float` answers float lists
    even when base64 was asked for (as some gateways do). `bodies` and `headers` record
    every request; counters count them.
    """

    default_dimension: int = 16
    dimensions: dict[str, int] = field(default_factory=dict)
    latency_seconds: float = 0.0
    api_key: str | None = None
    always_float: bool = False
    faults: deque[Fault] = field(default_factory=deque)
    requests: int = 0
    inputs: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    bodies: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def inject(self, *faults: Fault) -> None:
        """Apply `faults` to the next requests, one each, in order."""
        with self._lock:
            self.faults.extend(faults)

    def reset(self) -> None:
        """Back to defaults (in-flight requests keep counting themselves out)."""
        with self._lock:
            self.default_dimension = 16
            self.dimensions = {}
            self.latency_seconds = 0.0
            self.api_key = None
            self.always_float = False
            self.faults.clear()
            self.requests = self.inputs = 0
            self.max_in_flight = self.in_flight
            self.bodies = []
            self.headers = []

    def dimension_for(self, model: str) -> int:
        return self.dimensions.get(model, self.default_dimension)

    def _begin(self, body: dict[str, Any], headers: dict[str, str], inputs: int) -> Fault | None:
        with self._lock:
            self.requests += 1
            self.inputs += inputs
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.bodies.append(body)
            self.headers.append(headers)
            return self.faults.popleft() if self.faults else None

    def _end(self) -> None:
        with self._lock:
            self.in_flight -= 1


def embed_text(text: str, dimension: int, model: str = "") -> list[float]:
    """The deterministic embedding the gateway returns: hashed bag of words, unit length."""
    vector = [0.0] * dimension
    for word in _WORD.findall(text.lower()):
        digest = hashlib.blake2b(f"{model}\0{word}".encode(), digest_size=8).digest()
        value = int.from_bytes(digest, "little")
        vector[value % dimension] += 1.0 if value & (1 << 63) else -1.0
    norm = math.sqrt(sum(x * x for x in vector))
    if norm == 0.0:
        vector[0] = 1.0
        return vector
    return [x / norm for x in vector]


def encode_base64(vector: list[float]) -> str:
    """OpenAI's base64 encoding: little-endian float32."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


class _BadRequest(Exception):
    def __init__(self, message: str, param: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.message, self.param, self.status = message, param, status


class _DeliberateReset(Exception):
    """Raised after a partial body so that uvicorn drops the connection."""


class GatewayApp:
    """The ASGI application (plain ASGI: partial bodies and hang-ups need the raw protocol)."""

    def __init__(self, control: GatewayControl) -> None:
        self.control = control

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"].rstrip("/") != "/v1/embeddings":
            await _send_json(send, 404, _error_body("not found", None, "not_found"))
            return
        if scope["method"] != "POST":
            await _send_json(send, 405, _error_body("method not allowed", None, "bad_method"))
            return
        raw = await _read_body(receive)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        await self._embeddings(raw, headers, receive, send)

    async def _embeddings(
        self, raw: bytes, headers: dict[str, str], receive: Receive, send: Send
    ) -> None:
        control = self.control
        try:
            body = _parse_request(raw)
        except _BadRequest as exc:
            control._begin({}, headers, 0)
            control._end()
            await _send_json(send, exc.status, _error_body(exc.message, exc.param))
            return
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        fault = control._begin(body, headers, len(texts))
        try:
            if control.latency_seconds:
                await asyncio.sleep(control.latency_seconds)
            await self._respond(body, texts, headers, fault, receive, send)
        finally:
            control._end()

    async def _respond(
        self,
        body: dict[str, Any],
        texts: list[str],
        headers: dict[str, str],
        fault: Fault | None,
        receive: Receive,
        send: Send,
    ) -> None:
        if self.control.api_key is not None and (
            headers.get("authorization") != f"Bearer {self.control.api_key}"
        ):
            await _send_json(send, 401, _error_body("invalid api key", None, "invalid_api_key"))
            return
        if fault is not None and fault.kind == "status":
            extra = [(k.encode(), v.encode()) for k, v in fault.headers]
            if fault.retry_after:
                extra.append((b"retry-after", fault.retry_after.encode()))
            message = fault.message or f"injected status {fault.status}"
            await _send_json(send, fault.status, _error_body(message, None), extra)
            return
        if fault is not None and fault.kind == "sleep" and await _client_left(receive, fault):
            return
        try:
            payload = self._payload(body, texts, fault)
        except _BadRequest as exc:
            await _send_json(send, exc.status, _error_body(exc.message, exc.param))
            return
        if fault is not None and fault.kind == "malformed_json":
            await _send_raw(send, 200, b'{"object": "list", "data": [{"embedding": ')
            return
        encoded = json.dumps(payload).encode()
        if fault is not None and fault.kind == "reset":
            await _send_partial_then_reset(send, encoded)
        await _send_raw(send, 200, encoded)

    def _payload(
        self, body: dict[str, Any], texts: list[str], fault: Fault | None
    ) -> dict[str, Any]:
        model = body["model"]
        native = self.control.dimension_for(model)
        dimension = body.get("dimensions") or native
        if dimension > native:
            raise _BadRequest(f"dimensions must be at most {native} for {model}", "dimensions")
        vectors = [embed_text(text, dimension, model) for text in texts]
        if fault is not None and fault.kind == "wrong_count":
            vectors = vectors[:-1]
        if fault is not None and fault.kind == "wrong_dimension":
            vectors = [v[:-1] for v in vectors]
        if fault is not None and fault.kind == "nan" and vectors:
            vectors[0][0] = math.nan
        as_base64 = body.get("encoding_format") == "base64" and not self.control.always_float
        data = [
            {"object": "embedding", "index": i, "embedding": encode_base64(v) if as_base64 else v}
            for i, v in enumerate(vectors)
        ]
        tokens = sum(len(_WORD.findall(t)) for t in texts)
        return {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }


def _parse_request(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except ValueError:
        raise _BadRequest("request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise _BadRequest("request body must be a JSON object")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise _BadRequest("model is required", "model")
    texts = body.get("input")
    items = texts if isinstance(texts, list) else [texts]
    if not items or not all(isinstance(t, str) for t in items):
        raise _BadRequest("input must be a string or a non-empty list of strings", "input")
    if any(t == "" for t in items):
        raise _BadRequest("input cannot be an empty string", "input")
    if body.get("encoding_format", "float") not in ("float", "base64"):
        raise _BadRequest("encoding_format must be float or base64", "encoding_format")
    dims = body.get("dimensions")
    if dims is not None and (not isinstance(dims, int) or isinstance(dims, bool) or dims < 1):
        raise _BadRequest("dimensions must be a positive integer", "dimensions")
    return body


def _error_body(message: str, param: str | None, code: str | None = None) -> dict[str, Any]:
    return {
        "error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}
    }


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _client_left(receive: Receive, fault: Fault) -> bool:
    """Sleep `fault.seconds`; True if the client hung up meanwhile (then skip the answer)."""
    try:
        async with asyncio.timeout(fault.seconds):
            while (await receive())["type"] != "http.disconnect":
                pass
    except TimeoutError:
        return False
    return True


async def _send_json(
    send: Send, status: int, body: dict[str, Any], headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    await _send_raw(send, status, json.dumps(body).encode(), headers)


async def _send_raw(
    send: Send, status: int, body: bytes, headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _send_partial_then_reset(send: Send, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
    raise _DeliberateReset


class _DropDeliberateResets(logging.Filter):
    """uvicorn logs an app exception at ERROR; the deliberate reset is not news."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, _DeliberateReset)


@contextlib.contextmanager
def running_gateway(control: GatewayControl, *, start_timeout: float = 10.0) -> Iterator[str]:
    """Serve `control`'s gateway on 127.0.0.1:<ephemeral>; yields the base URL (…/v1)."""
    config = uvicorn.Config(
        GatewayApp(control),
        host="127.0.0.1",
        port=0,
        loop="asyncio",
        http="h11",
        lifespan="off",
        log_config=None,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    quiet = _DropDeliberateResets()
    logging.getLogger("uvicorn.error").addFilter(quiet)
    thread = threading.Thread(target=server.run, name="test-gateway", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + start_timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test gateway did not start")
            time.sleep(0.005)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=start_timeout)
        logging.getLogger("uvicorn.error").removeFilter(quiet)
        if thread.is_alive():
            raise RuntimeError("the test gateway did not stop")


@dataclass
class Gateway:
    """What the `gateway` fixture hands a test."""

    base_url: str
    control: GatewayControl


@pytest.fixture(scope="session")
def gateway_server() -> Iterator[Gateway]:
    """One gateway for the session; tests use `gateway`, which resets its control."""
    control = GatewayControl()
    with running_gateway(control) as base_url:
        yield Gateway(base_url, control)


@pytest.fixture
def gateway(gateway_server: Gateway) -> Iterator[Gateway]:
    """The session's gateway with a freshly reset control (waits for stragglers first)."""
    _wait_idle(gateway_server.control)
    gateway_server.control.reset()
    yield gateway_server
    _wait_idle(gateway_server.control)


def _wait_idle(control: GatewayControl, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while control.in_flight and time.monotonic() < deadline:
        time.sleep(0.01)
