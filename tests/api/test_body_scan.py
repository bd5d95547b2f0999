"""The streaming scan for over-long JSON strings: never wrong when it refuses, early when
it can tell, and cheap on bodies built to make it slow."""

from __future__ import annotations

import json
import random
import time

import pytest

from vecpipe.api.body_scan import LongStringScan

LIMIT = 1000


def scan(body: bytes, chunk_sizes: list[int] | None = None, limit: int = LIMIT) -> int | None:
    """How many bytes were fed when the scan refused (None: it never did)."""
    scanner = LongStringScan(limit)
    sizes = iter(chunk_sizes or [])
    fed = 0
    while fed < len(body):
        size = next(sizes, 64 * 1024)
        chunk = body[fed : fed + size]
        fed += len(chunk)
        if scanner.feed(chunk):
            return fed
    return None


def longest_string(value: object) -> int:
    """UTF-8 bytes of the longest string (key or value) in a parsed JSON value."""
    if isinstance(value, str):
        return len(value.encode("utf-8", "surrogatepass"))
    if isinstance(value, dict):
        return max([0, *map(longest_string, value), *map(longest_string, value.values())])
    if isinstance(value, list):
        return max([0, *map(longest_string, value)])
    return 0


def record_body(text: str, **extra: object) -> bytes:
    return json.dumps({"upsert": [{"id": "r1", "text": text, "metadata": extra}]}).encode()


@pytest.mark.parametrize("chunk", [1, 7, 100, 64 * 1024])
def test_a_long_plain_text_is_refused_soon_after_the_limit(chunk: int) -> None:
    body = record_body("x" * (20 * LIMIT))

    refused_after = scan(body, [chunk] * len(body))

    assert refused_after is not None
    assert refused_after <= 60 + LIMIT + chunk  # the JSON before the text, the limit, a chunk


def test_one_big_message_is_scanned_too() -> None:
    """An ASGI test transport hands the whole body over at once."""
    assert scan(record_body("y" * (3 * LIMIT)), [10**9]) is not None
    assert scan(record_body("y" * LIMIT), [10**9]) is None


def test_a_text_at_the_limit_passes() -> None:
    assert scan(record_body("x" * LIMIT), [13] * 1000) is None
    assert scan(record_body("é" * (LIMIT // 2)), [5] * 1000) is None  # 2 bytes each


def test_escaped_quotes_do_not_hide_a_long_text() -> None:
    text = ("x" * 98 + '"') * (30 * LIMIT // 99)
    body = record_body(text)

    assert scan(body, [4096] * len(body)) is not None
    assert scan(body, [3] * len(body)) is not None  # an escape split across chunks


def test_frequent_escapes_do_not_hide_a_long_text() -> None:
    """A newline every three characters, or non-ASCII text as `\\u` escapes: still found."""
    for text in ("ab\n" * (3 * LIMIT), "é" * (4 * LIMIT)):
        body = record_body(text)
        assert scan(body, [1000] * len(body)) is not None


def test_a_string_ending_in_backslashes_still_ends() -> None:
    """`"a\\\\"` ends at its last quote: the quote after an even run of backslashes."""
    many = [{"id": f"r{i}", "text": "x" * 300 + "\\\\", "metadata": {}} for i in range(50)]
    body = json.dumps({"upsert": many}).encode()

    for size in (1, 2, 3, 301, 4096):
        assert scan(body, [size] * len(body)) is None, size


def test_escapes_never_make_a_refusal_wrong() -> None:
    """Random bodies of escape-heavy strings, random chunking: the scan refuses only bodies
    whose longest decoded string is over the limit."""
    rng = random.Random(12)
    special = ['"', "\\", "\n", "é", "\u2028", "\U0001f600", "\x01"]

    def text() -> str:
        density = rng.choice([0.005, 0.05, 0.5])
        length = rng.randint(0, 3 * LIMIT // 2)
        return "".join(
            rng.choice(special) if rng.random() < density else "a" for _ in range(length)
        )

    refused = 0
    for _ in range(400):
        texts = [text() for _ in range(rng.randint(1, 4))]
        value = {"upsert": [{"id": str(i), "text": t} for i, t in enumerate(texts)]}
        body = json.dumps(value, ensure_ascii=rng.random() < 0.5).encode()
        sizes = [rng.randint(1, 300) for _ in range(len(body))]
        if scan(body, sizes) is not None:
            refused += 1
            assert longest_string(value) > LIMIT, body[:200]
    assert refused > 0  # the bound is tight enough to refuse some


def test_utf16_json_is_left_alone() -> None:
    body = json.dumps({"upsert": [{"id": "r", "text": "x" * (LIMIT - 10)}]}).encode("utf-16")

    assert scan(body) is None


@pytest.mark.serial  # compares two timings of this process
def test_adversarial_bodies_cost_little() -> None:
    """Bodies of escaped quotes, or of millions of tiny strings: far below a parse's cost."""
    many_escapes = b'{"upsert": [{"id": "r", "text": "' + b'\\"' * (4 * 1024 * 1024) + b'"}]}'
    tiny_strings = b"[" + b'"",' * (4 * 1024 * 1024) + b'""]'
    for body in (many_escapes, tiny_strings):
        started = time.perf_counter()
        scan(body, limit=1024 * 1024)
        scanned = time.perf_counter() - started
        started = time.perf_counter()
        json.loads(body)
        parsed = time.perf_counter() - started
        assert scanned < max(parsed, 0.05), (scanned, parsed)
