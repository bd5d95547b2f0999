"""What every command shares: settings with logging set up, and running a coroutine."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console

from vecpipe.errors import StoreLocked, VecpipeError
from vecpipe.logs import configure_logging, secrets_of
from vecpipe.settings import Settings

T = TypeVar("T")
console = Console(stderr=True)
STORE_LOCKED_HINT = (
    "hint: status, jobs, search, ingest and dlq take --url (or VECPIPE_URL) with "
    "VECPIPE_ADMIN_TOKEN to ask the running server"
)


def load_settings() -> Settings:
    settings = Settings()
    configure_logging(settings.log_level, secrets=secrets_of(settings))
    return settings


def run(coro: Coroutine[Any, Any, T]) -> T:
    """One event loop for the whole command; errors become a message and exit code 2."""
    try:
        return asyncio.run(coro)
    except VecpipeError as exc:
        fail(exc)


def fail(exc: VecpipeError) -> NoReturn:
    console.print(f"[red]error:[/red] {exc.message}")
    if isinstance(exc, StoreLocked):
        console.print(STORE_LOCKED_HINT, markup=False)
    raise typer.Exit(2) from None
