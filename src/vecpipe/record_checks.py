"""The checks a record passes before it may reach a store: the same ones, with the same
limits, at every entry (the HTTP records and jobs routes, the library's `Pipeline.apply`
and `submit_job`, and queue messages that applications publish themselves).

Sizes (text, id, metadata) answer LimitExceeded (HTTP 413); anything else ValidationError
(HTTP 422); the worker dead-letters a message with the same message as its reason.

Why metadata is checked value by value: what Qdrant Edge (qdrant-edge-py 0.9.0) does with
payloads it cannot take (measured with one bad point beside a good one; the metadata
object is level 1 of its nesting, so `{"a": {"b": 1}}` is 2):

- nested 122-126 levels (objects or arrays alike): written, flushed and readable, but the
  upsert's WAL entry cannot be read back ("RecursionLimitExceeded"): after a restart the
  shard no longer opens, and the online optimize (which loads a copy) fails, for every
  tenant of the space;
- nested 127 or more: besides, every read that meets the point fails at once: retrieve,
  search and scroll with "Failed to deserialize payload: recursion limit exceeded", a
  filtered search or count with a PanicException ("Payload storage is corrupted");
- NaN, Infinity (also `1e999` in JSON, which parses to it), integers past 64 bits as
  Python floats do not hold them (from 10^309: refused; 2^64 and beyond, or below -2^63:
  stored as a lossy float) and lone UTF-16 surrogates in strings or keys: the whole upsert
  call is refused ("failed to extract enum Helper"), failing every record of its batch.

Empty, long, dotted and non-ASCII keys, NUL characters and floats up to 1.8e308 are stored
and read back as sent (a dotted key cannot be reached by a filter: `a.b` means nesting).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from vecpipe.errors import LimitExceeded, ValidationError
from vecpipe.models import Record, is_valid_tenant_id
from vecpipe.models import check_record_id as _check_id_text
from vecpipe.settings import Limits

INT64 = (-(2**63), 2**63 - 1)
"""Integers a metadata value may hold: what Qdrant's integer index and filters take."""

_SURROGATE = re.compile(r"[\ud800-\udfff]")
_WHERE_CHARS = 80  # a path in an error message is cut to this many characters
_ESCAPED = 6  # the most bytes JSON turns one byte of text into (`\u0001`)
_ENVELOPE_BYTES = 4096  # a message's fields besides the record text, metadata and id


def check_record(record: Record, limits: Limits) -> None:
    """Raise LimitExceeded or ValidationError, naming the record, if it may not be stored.

    (Record's own fields refuse lone surrogates in its id and text; its metadata is Any.)
    """
    check_record_id(record.id, limits)
    where = f"record {record.id!r}"
    if not record.text.strip():
        raise ValidationError(f"{where}: text must not be blank")
    if len(record.text.encode("utf-8", "surrogatepass")) > limits.max_text_bytes:
        raise LimitExceeded(f"{where}: text larger than {limits.max_text_bytes} bytes")
    check_metadata(record.metadata, limits, where)


def check_record_id(record_id: str, limits: Limits) -> None:
    try:
        _check_id_text(record_id, limits.max_id_length)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


def check_metadata(metadata: Mapping[str, Any], limits: Limits, where: str = "record") -> None:
    """Its size first (whatever its shape), then every key and value.

    Plain JSON metadata (nearly all of it) is checked on its JSON text, at C speed: a walk
    in Python costs ~3.6 ms for 16 KiB of small items, seconds for a request of 1,000. The
    walk runs only when the text shows a problem or cannot stand for the metadata, and says
    where the problem is.
    """
    if type(metadata) is dict and not metadata and limits.max_metadata_bytes >= 2:
        return  # `{}`, most records' (two JSON round trips saved per record)
    text = _json_text(metadata)
    size = len(text) if text is not None else _size_anyway(metadata)
    if size > limits.max_metadata_bytes:
        raise LimitExceeded(f"{where}: metadata larger than {limits.max_metadata_bytes} bytes")
    if text is not None and not _text_may_have_problem(text, limits.max_metadata_depth):
        return
    problem = _metadata_problem(metadata, limits.max_metadata_depth)
    if problem is not None:
        raise ValidationError(f"{where}: {problem}")


def max_message_bytes(limits: Limits) -> int:
    """The largest queue message a record within the limits can take, however its JSON
    escapes the text: a larger message is refused before it is parsed."""
    fields = limits.max_text_bytes + limits.max_metadata_bytes + 4 * limits.max_id_length
    return _ESCAPED * fields + _ENVELOPE_BYTES


def _json_text(metadata: Mapping[str, Any]) -> bytes | None:
    """The metadata as JSON (UTF-8), or None if JSON cannot stand for it exactly: a NaN or
    an infinity, a lone surrogate, a type JSON lacks, a non-string key or a tuple (JSON
    would turn them into something else), or nesting too deep for the encoder."""
    try:
        text = json.dumps(metadata, ensure_ascii=False, allow_nan=False)
        encoded = text.encode()  # a lone surrogate raises UnicodeEncodeError (a ValueError)
    except (TypeError, ValueError, RecursionError):
        return None
    return encoded if json.loads(text) == metadata else None


def _size_anyway(metadata: Mapping[str, Any]) -> int:
    try:
        return len(json.dumps(metadata, ensure_ascii=False).encode("utf-8", "surrogatepass"))
    except (TypeError, ValueError, RecursionError):
        return 0  # not JSON at all: the walk says why


_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_INNERMOST = re.compile(rb"\[[^\[\]{}]*\]|\{[^\[\]{}]*\}")  # a container holding none
_NINETEEN_DIGITS = re.compile(rb"\d{19}")
_LONG_INTEGER = re.compile(rb"(?<![\w.+-])-?\d{19,}(?![\w.])")  # floats print as 1e+19


def _text_may_have_problem(text: bytes, max_depth: int) -> bool:
    """Whether JSON text (of plain JSON metadata) nests too deep or holds a long integer.

    Depth: each pass replaces the containers that hold no container; what is left after
    `max_depth` passes nests deeper. Regular expressions, so every pass runs at C speed.
    """
    bare = _STRING.sub(b'""', text)
    if _NINETEEN_DIGITS.search(bare) and any(
        not INT64[0] <= int(number.group()) <= INT64[1] for number in _LONG_INTEGER.finditer(bare)
    ):
        return True
    for _ in range(max_depth):
        bare = _INNERMOST.sub(b"0", bare)
        if b"[" not in bare and b"{" not in bare:
            return False
    return True


def _metadata_problem(metadata: Mapping[str, Any], max_depth: int) -> str | None:
    """What makes metadata unstorable, or None. Iterative: depth never costs the stack."""
    stack: list[tuple[object, int, tuple[str | int, ...]]] = [(metadata, 1, ())]
    while stack:
        value, depth, path = stack.pop()
        if isinstance(value, dict | list):
            if depth > max_depth:
                return (
                    f"metadata nested deeper than {max_depth} levels "
                    f"(VECPIPE_LIMIT_MAX_METADATA_DEPTH) at {_path(path)}"
                )
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if isinstance(value, dict) and (problem := _key_problem(key, path)):
                    return problem
                stack.append((item, depth + 1, (*path, key)))
        elif (problem := _scalar_problem(value)) is not None:
            return f"{problem} at {_path(path)}"
    return None


def _key_problem(key: object, path: tuple[str | int, ...]) -> str | None:
    if not isinstance(key, str):
        return f"metadata keys are strings, not {type(key).__name__}, at {_path(path)}"
    if _SURROGATE.search(key):
        return f"a metadata key holds a lone UTF-16 surrogate at {_path(path)}"
    return None


def _scalar_problem(value: object) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        return "a lone UTF-16 surrogate (not valid Unicode)" if _SURROGATE.search(value) else None
    if isinstance(value, int):
        if INT64[0] <= value <= INT64[1]:
            return None
        return "an integer outside the 64-bit range"
    if isinstance(value, float):
        if math.isfinite(value):
            return None
        name = "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"
        return f"{name} is not allowed (JSON numbers are finite)"
    return f"a {type(value).__name__} (metadata is JSON: objects, arrays, strings, numbers)"


def _path(path: tuple[str | int, ...]) -> str:
    text = "metadata" + "".join(
        f"[{part}]" if isinstance(part, int) else f".{part}" for part in path
    )
    return text if len(text) <= _WHERE_CHARS else text[: _WHERE_CHARS - 1] + "…"


def check_tenant_id(tenant_id: str) -> str:
    if not is_valid_tenant_id(tenant_id):
        raise ValidationError(
            "tenant ids are 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return tenant_id
