"""A secured vecpipe with two tenants, their tokens and data, and a secret scan on teardown.

`world` runs the app (fake local provider, the real loopback `gateway` for tenant acme)
with an admin token, a metrics token, a secret key and a gateway key set. Every response
the test receives and every log record is kept; when the test ends and the app has closed,
all of them and every file under the data dir are scanned for those secrets and for the
tenant tokens issued (a token may appear only in the one response that issued it).
"""

from __future__ import annotations

import json
import logging
import os
import unicodedata
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from tests.support.app import FakeFactory, make_settings
from tests.support.gateway import Gateway
from vecpipe.api.app import create_app
from vecpipe.providers.base import EmbeddingProvider
from vecpipe.providers.kind import ProviderConfig
from vecpipe.providers.kinds.openai import OpenAIProviderConfig
from vecpipe.providers.url_policy import GatewayUrlPolicy
from vecpipe.resources import default_provider_factory
from vecpipe.settings import Settings

ADMIN_TOKEN = "ADMIN-7f3c1e9a-secret-admin-token"
METRICS_TOKEN = "METRICS-2b8d4f6a-secret-metrics-token"
SECRET_KEY = "SECRETKEY-5e1a9c3b-operator-secret"
GATEWAY_KEY = "sk-GATEWAY-0d4e8f2a6c1b"
SECRETS = (ADMIN_TOKEN, METRICS_TOKEN, SECRET_KEY, GATEWAY_KEY)
A, B = "acme", "beta"
GATEWAY_MODEL = "gw-embed"


@dataclass
class HybridFactory:
    """Fake providers for local configs, the real gateway provider for openai ones."""

    settings: Settings
    fake: FakeFactory = field(default_factory=FakeFactory)

    async def __call__(self, config: ProviderConfig) -> EmbeddingProvider:
        if isinstance(config, OpenAIProviderConfig):
            policy = GatewayUrlPolicy(self.settings.allowlisted_gateway_hosts)
            return await default_provider_factory(self.settings, policy)(config)
        return await self.fake(config)


def gateway_config(gateway: Gateway) -> dict[str, Any]:
    primary = {
        "kind": "openai",
        "base_url": gateway.base_url,
        "model": GATEWAY_MODEL,
        "api_key": GATEWAY_KEY,
        "dimensions": 16,
    }
    return {"primary": primary}


@dataclass
class World:
    http: httpx.AsyncClient
    data_dir: Path
    gateway: Gateway
    responses: list[httpx.Response] = field(default_factory=list)
    tokens: dict[str, str] = field(default_factory=dict)
    token_ids: dict[str, str] = field(default_factory=dict)
    job_ids: dict[str, str] = field(default_factory=dict)
    issued: dict[str, httpx.Response] = field(default_factory=dict)

    @staticmethod
    def auth(token: str | None) -> dict[str, str]:
        return {} if token is None else {"Authorization": f"Bearer {token}"}

    async def call(
        self,
        method: str,
        url: str,
        token: str | None,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        headers = {**self.auth(token), **(headers or {})}
        if body is None:
            return await self.http.request(method, httpx.URL(url), headers=headers)
        # json.dumps escapes non-ASCII, so lone surrogates travel as \ud800 like any client's
        headers["content-type"] = "application/json"
        content = json.dumps(body).encode()
        return await self.http.request(method, httpx.URL(url), content=content, headers=headers)

    async def admin(self, method: str, url: str, body: Any = None) -> httpx.Response:
        response = await self.call(method, url, ADMIN_TOKEN, body)
        assert response.status_code < 300, (method, url, response.text)
        return response

    async def issue_token(self, tenant_id: str) -> tuple[str, str]:
        response = await self.admin("POST", f"/v1/tenants/{tenant_id}/tokens")
        data = response.json()
        self.issued[data["token"]] = response
        return data["token"], data["token_id"]

    async def populate(self) -> None:
        """Both tenants on the gateway, in one embedding space: one shard, kept apart only by
        the tenant filter, which is what isolation has to rest on."""
        for tenant_id in (A, B):
            await self.admin(
                "PUT", f"/v1/tenants/{tenant_id}/ai-config", gateway_config(self.gateway)
            )
            self.tokens[tenant_id], self.token_ids[tenant_id] = await self.issue_token(tenant_id)
            upserts = [
                {"id": f"{tenant_id[0]}{i}", "text": f"{tenant_id} private note {i}", "metadata": m}
                for i, m in enumerate([{"tenant_id": tenant_id, "k": "v"}, {"k": "w"}], start=1)
            ]
            await self.admin("POST", f"/v1/tenants/{tenant_id}/records", {"upsert": upserts})
            job = await self.admin("POST", f"/v1/tenants/{tenant_id}/jobs", {"delete": ["nope"]})
            self.job_ids[tenant_id] = job.json()["job_id"]


class _Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@asynccontextmanager
async def open_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app on fake providers, like the `client` fixture, with the settings given."""
    app = create_app(settings, provider_factory=FakeFactory())
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://vecpipe.test") as http:
            yield http


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def secured_settings(tmp_path: Path) -> Settings:
    return make_settings(
        tmp_path / "data",
        admin_token=ADMIN_TOKEN,
        metrics_token=METRICS_TOKEN,
        secret_key=SECRET_KEY,
        gateway_allowlist="127.0.0.1",
    )


@pytest.fixture
async def world(secured_settings: Settings, gateway: Gateway) -> AsyncIterator[World]:
    gateway.control.api_key = GATEWAY_KEY
    app = create_app(secured_settings, provider_factory=HybridFactory(secured_settings))
    kept: list[httpx.Response] = []

    async def keep(response: httpx.Response) -> None:
        await response.aread()
        kept.append(response)

    logs, root = _Keep(), logging.getLogger()
    level, root.level = root.level, logging.DEBUG
    root.addHandler(logs)
    try:
        async with LifespanManager(app) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            hooks = {"response": [keep]}
            async with httpx.AsyncClient(
                transport=transport, base_url="http://vecpipe.test", event_hooks=hooks
            ) as http:
                world = World(http, secured_settings.data_dir, gateway, responses=kept)
                await world.populate()
                yield world
    finally:
        root.removeHandler(logs)
        root.setLevel(level)
    scan_for_secrets(world, logs.records)


def scan_for_secrets(world: World, records: list[logging.LogRecord]) -> None:
    """No secret in any response, log record or data file; a tenant token only in the one
    response that issued it."""
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    log_text = "\n".join(formatter.format(r) for r in records)
    responses = [(r, r.text + "\n" + "\n".join(r.headers.values())) for r in world.responses]
    files = {str(p): data_bytes(p) for p in world.data_dir.rglob("*") if p.is_file()}
    assert records and responses, "the suite left nothing to scan"
    # a positive control: the records' own text is in the files, so the scan reads real data
    assert any(b"acme private note" in blob for blob in files.values())
    for secret in (*SECRETS, *world.issued):
        issuer = world.issued.get(secret)
        leaks = [str(r.request.url) for r, text in responses if secret in text and r is not issuer]
        leaks += [name for name, blob in files.items() if secret.encode() in blob]
        leaks += ["logs"] if secret in log_text else []
        assert not leaks, (secret, leaks)
    for record in records:
        message = record.getMessage()
        odd = [c for c in message if c != "\n" and unicodedata.category(c) in ("Cc", "Cs")]
        assert not odd, f"unescaped control characters in a log record: {message!r}"


def data_bytes(path: Path) -> bytes:
    """The file's contents without its holes: Edge preallocates sparse 32 MiB files, and a
    hole reads as zeros, which hold no secret."""
    chunks = []
    with path.open("rb") as f:
        fd, position = f.fileno(), 0
        size = os.fstat(fd).st_size
        while position < size:
            try:
                start = os.lseek(fd, position, os.SEEK_DATA)
            except OSError:  # ENXIO: only a hole is left
                break
            position = os.lseek(fd, start, os.SEEK_HOLE)
            f.seek(start)
            chunks.append(f.read(position - start))
    return b"".join(chunks)
