"""Logging: structlog renders every record, vecpipe's and the stdlib's, one line each.

JSON lines when the stream is not a terminal (for log collectors), structlog's console
renderer when it is. vecpipe's modules log through the stdlib (`logging.getLogger(__name__)`)
and pass fields with `extra={...}`, which become keys of the event; so a library user who
never calls `configure_logging` gets plain stdlib logging and no surprise output.

Before anything is rendered, `Redactor` masks what looks like a secret: values of keys named
like one (api_key, token, password, authorization, ...), bearer tokens, `sk-...` style keys,
passwords in URLs, `key=value` pairs naming a secret, and the configured secrets themselves
(the admin token, the secret key) wherever they appear, tracebacks included.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

import structlog
from pydantic import SecretStr
from structlog.typing import EventDict, Processor, WrappedLogger

REDACTED = "[redacted]"
_SECRET_KEY = re.compile(
    r"(?i)(^|[_-])(api[_-]?key|apikey|token|secret|password|passwd|pwd|authorization|"
    r"cookie|credentials?|private[_-]?key)s?$"
)
_VALUE_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{4,}"), rf"\1 {REDACTED}"),
    (re.compile(r"\b(sk|pk|rk)-[A-Za-z0-9_-]{8,}"), rf"\1-{REDACTED}"),
    (re.compile(r"([a-z][a-z0-9+.-]*://[^/\s:@]*):[^@\s/]+@", re.I), rf"\1:{REDACTED}@"),
    (
        re.compile(
            r"(?i)\b(api[_-]?key|apikey|access[_-]?token|token|secret|password|passwd)"
            r"(\"?'?\s*[:=]\s*\"?'?)([^\s\"'&,;}]+)"
        ),
        rf"\1\2{REDACTED}",
    ),
)
# Loggers that say too much at INFO for an operator (migrations plumbing, one line per
# HTTP call of a client library, which would also carry gateway URLs).
_QUIET = ("alembic", "httpx", "httpcore", "aio_pika", "aiormq", "urllib3", "filelock")


class Redactor:
    """A structlog processor masking secret-looking keys and values, recursively."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # short strings would mask ordinary words; real tokens and keys are longer
        self.secrets = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)

    def __call__(self, logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
        for key, value in list(event.items()):
            event[key] = REDACTED if _is_secret_key(key, value) else self.value(value)
        return event

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, MutableMapping):
            return {
                k: REDACTED if _is_secret_key(k, v) else self.value(v) for k, v in value.items()
            }
        if isinstance(value, list | tuple | set | frozenset):
            return [self.value(v) for v in value]
        return value

    def text(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        for pattern, replacement in _VALUE_PATTERNS:
            text = pattern.sub(replacement, text)
        return text


def _tidy(logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
    """Drop what stdlib records carry twice: uvicorn's ANSI copy of the message, and the
    `message` another handler's formatter left on the record."""
    event.pop("color_message", None)
    if event.get("message") == event.get("event"):
        event.pop("message")
    return event


def _is_secret_key(key: Any, value: Any) -> bool:
    return isinstance(key, str) and value is not None and bool(_SECRET_KEY.search(key))


def configure_logging(
    level: str | int = "INFO",
    *,
    stream: TextIO | None = None,
    json: bool | None = None,
    secrets: Iterable[str] = (),
) -> None:
    """Route the stdlib's root logger and structlog through one redacting renderer.

    `json=None` picks JSON unless `stream` is a terminal. Without `stream`, records go to
    whatever `sys.stderr` is when each is written (so a test runner swapping it, or closing
    its replacement, does not leave the handler writing to a dead stream). Calling it again
    replaces the handler it installed; handlers others installed are left alone.
    """
    use_json = not _isatty(stream or sys.stderr) if json is None else json
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Processor = (
        structlog.processors.JSONRenderer(default=str)
        if use_json
        else structlog.dev.ConsoleRenderer(
            colors=_isatty(stream or sys.stderr), exception_formatter=structlog.dev.plain_traceback
        )
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder(), _tidy],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            Redactor(secrets),
            renderer,
        ],
    )
    _install_handler(stream, formatter, level)
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


class _VecpipeHandler(logging.StreamHandler[TextIO]):
    """Marks the handler `configure_logging` owns, so a second call replaces it."""


class _StderrHandler(_VecpipeHandler):
    """Writes to the current `sys.stderr`, looked up at each record."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        """`setStream` and StreamHandler's __init__ would pin a stream: ignored."""


def _install_handler(stream: TextIO | None, formatter: logging.Formatter, level: str | int) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, _VecpipeHandler):
            root.removeHandler(handler)
    handler = _StderrHandler() if stream is None else _VecpipeHandler(stream)
    handler.setFormatter(formatter)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    for name in _QUIET:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))


def reset_logging() -> None:
    """Undo `configure_logging` (tests; a host application taking logging back)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, _VecpipeHandler):
            root.removeHandler(handler)
    for name in _QUIET:
        logging.getLogger(name).setLevel(logging.NOTSET)
    structlog.reset_defaults()


def secrets_of(settings: Any) -> list[str]:
    """Every SecretStr value of a settings object (tokens, keys): masked wherever logged."""
    found: list[str] = []
    for value in vars(settings).values():
        if isinstance(value, SecretStr):
            found.extend(v.strip() for v in value.get_secret_value().split(","))
    return [s for s in found if s]


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False
