"""JSON-lines request bodies (`Content-Type: application/x-ndjson`), read as they stream.

Only POST /v1/tenants/{t}/sync takes one (`is_streamed_body`): a set too large for one JSON
body. The body limit middleware (body_limit.py) bounds it by its own limit
(VECPIPE_LIMIT_MAX_SYNC_STREAM_BYTES) instead of the JSON bodies' one, and reserves none of
the in-flight budget for it: it is never held whole. `read_records` splits the chunks into
lines as they arrive and hands each record to a sink (core/full_sync.py: SyncSet, which
spools it to disk), so the memory a body takes is one chunk plus one line, a line being at
most VECPIPE_LIMIT_MAX_BODY_BYTES (one record can be no larger than a JSON body may be).

A bad line refuses the whole body, naming the line (1-based, blank lines counted): not
UTF-8, not JSON, not a record (or a record that may not be stored), an id seen before.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import pydantic
from starlette.types import Scope

from vecpipe.errors import LimitExceeded, ValidationError
from vecpipe.models import Record

MEDIA_TYPES = frozenset({"application/x-ndjson", "application/jsonl", "application/json-lines"})
STREAMED_PATHS = re.compile(r"^/v1/tenants/[^/]+/sync/?$")
_SURROGATE = re.compile(r"[\ud800-\udfff]")

Sink = Callable[[Record, str], None]  # (record, "line N"): raises ValidationError to refuse


def media_type(headers: Mapping[str, str] | None) -> str:
    value = (headers or {}).get("content-type", "")
    return value.split(";", 1)[0].strip().lower()


def is_ndjson(headers: Mapping[str, str] | None) -> bool:
    return media_type(headers) in MEDIA_TYPES


def is_streamed_body(scope: Scope) -> bool:
    """A JSON-lines body on a route that streams it (ASGI scope, before any routing)."""
    if scope.get("method") != "POST" or not STREAMED_PATHS.match(scope.get("path", "")):
        return False
    for name, value in scope.get("headers") or ():
        if name == b"content-type":
            return value.split(b";", 1)[0].strip().lower().decode("latin-1") in MEDIA_TYPES
    return False


async def read_records(chunks: AsyncIterator[bytes], sink: Sink, max_line: int) -> int:
    """Feed each line's record to `sink`; the number of lines read."""
    pending = bytearray()
    number = 0
    async for chunk in chunks:
        scan_from = len(pending)  # the bytes before hold no newline: look at new ones only
        pending += chunk
        start = 0
        while (end := pending.find(b"\n", scan_from)) >= 0:
            number += 1
            _line(bytes(pending[start:end]), number, sink, max_line)
            start = scan_from = end + 1
        del pending[:start]
        if len(pending) > max_line:
            raise LimitExceeded(f"line {number + 1}: longer than {max_line} bytes")
    if pending:
        number += 1
        _line(bytes(pending), number, sink, max_line)
    return number


def _line(raw: bytes, number: int, sink: Sink, max_line: int) -> None:
    where = f"line {number}"
    if len(raw) > max_line:
        raise LimitExceeded(f"{where}: longer than {max_line} bytes")
    if len(raw) and raw[-1:] == b"\r":
        raw = raw[:-1]
    if not raw.strip():
        return
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationError(f"{where}: not valid UTF-8 (byte {exc.start + 1})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(f"{where}: not valid JSON: {exc.msg} at column {exc.colno}") from None
    except (ValueError, RecursionError) as exc:
        raise ValidationError(f"{where}: not valid JSON: {_short(exc)}") from None
    if not isinstance(data, dict):
        raise ValidationError(f"{where}: a record is a JSON object {{id, text, metadata?}}")
    if has_lone_surrogate(data):
        raise ValidationError(f"{where}: holds a lone UTF-16 surrogate: not valid Unicode text")
    try:
        record = Record.model_validate(data)
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'record'}: {e['msg']}"
            for e in exc.errors()[:3]
        )
        raise ValidationError(f"{where}: not a valid record: {problems}") from None
    sink(record, where)


def _short(exc: Exception) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


def has_lone_surrogate(value: Any) -> bool:
    """Whether a parsed JSON value holds a lone UTF-16 surrogate (JSON allows `\\ud800`)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False
