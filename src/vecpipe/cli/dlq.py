"""`vecpipe dlq …`: dead letters, on either queue backend, in-process or `--url` over HTTP.

In-process only the queue is opened: the SQLite queue lives in the data dir, so that takes
the data dir's lock (datadir.py) and fails at once beside a running `vecpipe serve`; RabbitMQ
needs no lock. With `--url` (or VECPIPE_URL) the running server lists and requeues them
(`GET /v1/dead-letters`, `POST /v1/dead-letters/replay`, admin token).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, Any, Protocol

import httpx
import typer

from vecpipe.cli.common import load_settings, run
from vecpipe.cli.remote import UrlOption, remote_client, remote_get, remote_post
from vecpipe.queue.base import DeadLetter, MessageQueue
from vecpipe.settings import Settings

app = typer.Typer(help="Dead letters, on either queue backend.", no_args_is_help=True)
SHOWN_BODY_CHARS = 200


class DeadLetters(Protocol):
    async def list(self, limit: int) -> list[dict[str, Any]]: ...
    async def replay(self, ids: Sequence[str] | None) -> int: ...


class _QueueLetters:
    def __init__(self, queue: MessageQueue) -> None:
        self._queue = queue

    async def list(self, limit: int) -> list[dict[str, Any]]:
        return [_shown(letter) for letter in await self._queue.list_dead_letters(limit)]

    async def replay(self, ids: Sequence[str] | None) -> int:
        return await self._queue.replay_dead_letters(ids)


class _HttpLetters:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def list(self, limit: int) -> list[dict[str, Any]]:
        letters = await remote_get(self._client, "/v1/dead-letters", limit=limit)
        keys = ("id", "reason", "attempts", "failed_at")
        return [
            {key: letter[key] for key in keys} | {"body": letter["body"][:SHOWN_BODY_CHARS]}
            for letter in letters
        ]

    async def replay(self, ids: Sequence[str] | None) -> int:
        body = {"ids": list(ids) if ids is not None else None}
        return int((await remote_post(self._client, "/v1/dead-letters/replay", body))["replayed"])


def _shown(letter: DeadLetter) -> dict[str, Any]:
    return {
        "id": letter.id,
        "reason": letter.reason,
        "attempts": letter.attempts,
        "failed_at": letter.failed_at.isoformat() if letter.failed_at else None,
        "body": letter.body.decode("utf-8", "replace")[:SHOWN_BODY_CHARS],
    }


@asynccontextmanager
async def open_letters(settings: Settings, url: str | None) -> AsyncIterator[DeadLetters]:
    if url:
        async with remote_client(url, settings) as client:
            yield _HttpLetters(client)
        return
    from vecpipe import datadir
    from vecpipe.resources import open_queue

    if settings.queue == "sqlite":
        with datadir.held(settings.data_dir):
            async with open_queue(settings) as queue:
                yield _QueueLetters(queue)
        return
    async with open_queue(settings) as queue:
        yield _QueueLetters(queue)


@app.command("list")
def list_letters(limit: int = 100, url: UrlOption = None) -> None:
    """Show dead letters with their reasons, one JSON object per line."""
    settings = load_settings()

    async def main() -> None:
        async with open_letters(settings, url) as letters:
            shown = await letters.list(limit)
        for letter in shown:
            typer.echo(json.dumps(letter))

    run(main())


@app.command("replay")
def replay(
    ids: Annotated[list[str] | None, typer.Argument()] = None, url: UrlOption = None
) -> None:
    """Requeue dead letters (all, or the given ids)."""
    settings = load_settings()

    async def main() -> None:
        async with open_letters(settings, url) as letters:
            count = await letters.replay(ids or None)
        typer.echo(json.dumps({"replayed": count}))

    run(main())
