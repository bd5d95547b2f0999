"""The OpenAI `/embeddings` wire format, as the gateway provider reads it: vectors (base64 or
float lists, checked), Retry-After headers and the server's own error message."""

from __future__ import annotations

import base64
import binascii
import email.utils
import json
import time
from collections.abc import Mapping
from typing import cast

import numpy as np

__all__ = ["decode_embeddings", "parse_retry_after", "server_message"]


def decode_embeddings(content: bytes, count: int, dimension: int | None) -> list[list[float]]:
    """The vectors of an `/embeddings` response body, ordered by `index`, checked.

    Raises ValueError (message safe to show) unless there is exactly one embedding per input,
    each of `dimension` (or, when None, one common) length, all finite.
    """
    try:
        payload = json.loads(content)
    except (ValueError, UnicodeDecodeError):
        raise ValueError("body is not JSON") from None
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, list):
        raise ValueError("no 'data' list")
    if len(data) != count:
        raise ValueError(f"{len(data)} embeddings for {count} inputs")
    vectors: list[np.ndarray | None] = [None] * count
    for item in data:
        index = item.get("index") if isinstance(item, dict) else None
        if not isinstance(index, int) or not 0 <= index < count or vectors[index] is not None:
            raise ValueError(f"missing, repeated or out-of-range index {index!r}")
        vectors[index] = _decode_vector(item.get("embedding"))
    checked = [v for v in vectors if v is not None]
    expected = dimension or len(checked[0])
    wrong = next((len(v) for v in checked if len(v) != expected), None)
    if wrong is not None or expected == 0:
        raise ValueError(f"a vector of dimension {wrong}, expected {expected}")
    matrix = np.vstack(checked)  # one finiteness check and one conversion for the batch
    if not np.isfinite(matrix).all():
        raise ValueError("an embedding holds NaN or infinite values")
    return cast(list[list[float]], matrix.tolist())


def _decode_vector(raw: object) -> np.ndarray:
    if isinstance(raw, str):
        try:
            buffer = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("an embedding is not valid base64") from None
        if len(buffer) % 4:
            raise ValueError("a base64 embedding is not a whole number of float32 values")
        return np.frombuffer(buffer, dtype="<f4")
    if isinstance(raw, list) and all(
        isinstance(x, int | float) and not isinstance(x, bool) for x in raw
    ):
        return np.asarray(raw, dtype=np.float64)
    raise ValueError("an embedding is neither base64 nor a list of numbers")


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from `retry-after-ms`, or `retry-after` (seconds or an HTTP date), if valid."""
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return max(0.0, float(millis) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def server_message(body: object, limit: int = 200) -> str:
    """The gateway's own error message (OpenAI's `{"error": {"message"}}`), shortened."""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = body["error"]  # the SDK usually unwraps this level already
    message = body.get("message") if isinstance(body, dict) else body
    if not isinstance(message, str):
        return ""
    message = " ".join(message.split())
    return message[:limit] + ("…" if len(message) > limit else "")
