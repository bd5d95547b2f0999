"""What every command shares: settings with logging set up, and running a coroutine."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console

from vecpipe.errors import VecpipeError
from vecpipe.settings import Settings

T = TypeVar("T")
console = Console(stderr=True)


def load_settings() -> Settings:
    settings = Settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    return settings


def run(coro: Coroutine[Any, Any, T]) -> T:
    """One event loop for the whole command; errors become a message and exit code 2."""
    try:
        return asyncio.run(coro)
    except VecpipeError as exc:
        fail(exc)


def fail(exc: VecpipeError) -> NoReturn:
    console.print(f"[red]error:[/red] {exc.message}")
    raise typer.Exit(2) from None
