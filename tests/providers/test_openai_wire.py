"""The wire format: decoding `/embeddings` bodies, Retry-After, the server's message."""

from __future__ import annotations

import base64
import json
import struct
import time
from typing import Any

import pytest

from vecpipe.providers.openai_wire import decode_embeddings, parse_retry_after, server_message


def _b64(values: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()


def _body(*items: dict[str, Any]) -> bytes:
    return json.dumps({"object": "list", "data": list(items)}).encode()


def test_decode_orders_by_index_and_accepts_both_encodings() -> None:
    body = _body(
        {"index": 1, "embedding": [0.5, 0.25]},
        {"index": 0, "embedding": _b64([1.0, -2.0])},
    )
    assert decode_embeddings(body, 2, 2) == [[1.0, -2.0], [0.5, 0.25]]
    assert decode_embeddings(body, 2, None) == [[1.0, -2.0], [0.5, 0.25]]


def _with_first(embedding: object) -> bytes:
    return _body({"index": 0, "embedding": embedding}, {"index": 1, "embedding": [1.0, 2.0]})


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[]", "no 'data' list"),
        (b"\xff\xfe", "not JSON"),
        (b'{"data": [3, 4]}', "index"),
        (_body({"index": 0, "embedding": [1.0]}, {"index": 0, "embedding": [1.0]}), "index"),
        (_body({"index": 0, "embedding": [1.0]}, {"index": 5, "embedding": [1.0]}), "index"),
        (_body({"embedding": [1.0]}, {"index": 1, "embedding": [1.0]}), "index"),
        (_body({"index": 0, "embedding": [1.0]}), "1 embeddings for 2 inputs"),
        (_with_first([1.0]), "dimension 2, expected 1"),
        (_with_first("!!"), "base64"),
        (_with_first("AAA="), "float32"),
        (_with_first(["1"]), "numbers"),
        (_with_first([True, False]), "numbers"),
        (_with_first(None), "numbers"),
        (_body({"index": 0, "embedding": []}, {"index": 1, "embedding": []}), "dimension"),
        (
            b'{"data": [{"index": 0, "embedding": [Infinity, 1]},'
            b' {"index": 1, "embedding": [1, 1]}]}',
            "NaN or infinite",
        ),
        (_with_first(_b64([float("inf"), 1.0])), "NaN or infinite"),
        (_with_first(_b64([float("nan"), 1.0])), "NaN or infinite"),
    ],
)
def test_decode_rejects(body: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decode_embeddings(body, 2, None)


def test_decode_checks_the_expected_dimension() -> None:
    with pytest.raises(ValueError, match="expected 3"):
        decode_embeddings(_body({"index": 0, "embedding": [1.0, 2.0]}), 1, 3)


def test_parse_retry_after() -> None:
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after": "0.5"}) == 0.5
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert parse_retry_after({"retry-after": "-4"}) == 0.0
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None
    later = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 100))
    assert 90.0 < (parse_retry_after({"retry-after": later}) or 0.0) <= 100.0


def test_server_message() -> None:
    assert server_message({"error": {"message": "too   long\ninput"}}) == "too long input"
    assert server_message({"message": "unwrapped"}) == "unwrapped"
    assert server_message("<html>bad gateway</html>") == "<html>bad gateway</html>"
    assert server_message(None) == ""
    assert server_message({"error": {"message": "x" * 500}}).endswith("…")
