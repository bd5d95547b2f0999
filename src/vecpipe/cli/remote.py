"""Operator commands over HTTP: `--url` (or VECPIPE_URL) asks a running server.

The process that owns a data dir (datadir.py) is the only one that opens its store, queue
and database, so beside a running `vecpipe serve` the CLI talks to it instead, with
VECPIPE_ADMIN_TOKEN as the bearer token. A command given `--url` never opens a data dir.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import httpx
import typer

from vecpipe.errors import VecpipeError
from vecpipe.settings import Settings

UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        envvar="VECPIPE_URL",
        help="ask a running server (http://host:port) instead of opening the data dir",
    ),
]


@asynccontextmanager
async def remote_client(url: str, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    token = settings.admin_token.get_secret_value() if settings.admin_token else None
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(base_url=url.rstrip("/"), headers=headers, timeout=60) as client:
        yield client


async def remote_get(client: httpx.AsyncClient, path: str, **params: Any) -> Any:
    """The JSON body of a 200; anything else is a VecpipeError naming the server's reason."""
    query = {k: v for k, v in params.items() if v is not None}
    return await _answer(client, client.build_request("GET", path, params=query))


async def remote_post(client: httpx.AsyncClient, path: str, body: Any) -> Any:
    """POST `body` as JSON; the JSON answer of a 200 or 202, else a VecpipeError."""
    return await _answer(client, client.build_request("POST", path, json=body))


async def remote_put(client: httpx.AsyncClient, path: str, body: Any) -> Any:
    return await _answer(client, client.build_request("PUT", path, json=body))


async def remote_delete(client: httpx.AsyncClient, path: str) -> Any:
    """The JSON answer of a 200 (None for a 204), else a VecpipeError."""
    return await _answer(client, client.build_request("DELETE", path))


async def _answer(client: httpx.AsyncClient, request: httpx.Request) -> Any:
    try:
        response = await client.send(request)
    except httpx.HTTPError as exc:
        raise VecpipeError(f"cannot reach {client.base_url}: {type(exc).__name__}") from None
    if response.status_code not in (200, 201, 202, 204):
        raise VecpipeError(
            f"{client.base_url} answered {response.status_code}: {_reason(response)}"
        )
    return None if response.status_code == 204 else response.json()


def _reason(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.reason_phrase or "error"
