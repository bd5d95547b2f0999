"""What every command shares: settings with logging set up, and running a coroutine.

A startup error (a setting out of range, an unusable data dir, a port in use, a store that
will not open) is one line on stderr, `error: <what and what to do>`, and exit code 2;
never a traceback. With VECPIPE_LOG_LEVEL=DEBUG an OSError's traceback is logged as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine, Iterator
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.text import Text

from vecpipe.errors import ConfigError, StoreLocked, VecpipeError
from vecpipe.logs import configure_logging, secrets_of
from vecpipe.settings import Settings, read_settings

log = logging.getLogger(__name__)
T = TypeVar("T")
console = Console(stderr=True)
STORE_LOCKED_HINT = (
    "hint: status, jobs, search, ingest and dlq take --url (or VECPIPE_URL) with "
    "VECPIPE_ADMIN_TOKEN to ask the running server"
)


def load_settings(flags: dict[str, tuple[str, object]] | None = None) -> Settings:
    """The settings, `flags` ({field: (option, value)}) over the environment; one line and
    exit 2 when one is out of range."""
    try:
        settings = read_settings(flags)
    except ConfigError as exc:
        fail(exc)
    configure_logging(settings.log_level, secrets=secrets_of(settings))
    return settings


def run(coro: Coroutine[Any, Any, T]) -> T:
    """One event loop for the whole command; errors become a message and exit code 2."""
    with one_line_errors():
        return asyncio.run(coro)
    raise AssertionError("unreachable")  # for mypy: one_line_errors exits or re-raises


@contextlib.contextmanager
def one_line_errors() -> Iterator[None]:
    """VecpipeErrors and OSErrors (a file or socket the system refused) end the command with
    one line and exit code 2."""
    try:
        yield
    except VecpipeError as exc:
        fail(exc)
    except OSError as exc:
        log.debug("startup failed", exc_info=True)
        where = f": {exc.filename}" if exc.filename else ""
        fail(ConfigError(f"{exc.strerror or exc}{where}"))


def fail(exc: VecpipeError) -> NoReturn:
    line = Text("error: ", style="red") + Text(exc.message)
    console.print(line, soft_wrap=True)  # one line, however long: no wrapping at 80 columns
    if isinstance(exc, StoreLocked):
        console.print(STORE_LOCKED_HINT, markup=False)
    raise typer.Exit(2) from None
