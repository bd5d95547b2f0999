"""Expected outputs of documentation examples (tests/test_docs_examples.py has the rules).

Run as a script by the examples' shell, `python doc_examples.py expect OUT` with the
expected text on stdin: it imports nothing of the project, so it starts fast.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any


def _matches_json(expected: Any, actual: Any) -> bool:
    if expected == "...":
        return True
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            key in actual and _matches_json(value, actual[key]) for key, value in expected.items()
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(expected) == len(actual)
            and all(_matches_json(e, a) for e, a in zip(expected, actual, strict=True))
        )
    return bool(expected == actual and type(expected) is type(actual))


def _matches_text(expected: str, actual: str) -> bool:
    pattern = r"\s+".join(
        ".*".join(re.escape(piece) for piece in word.split("...")) for word in expected.split()
    )
    return re.fullmatch(pattern, actual.strip()) is not None


def line_matches(expected: str, actual: str) -> bool:
    try:
        wanted = json.loads(expected)
    except ValueError:
        return _matches_text(expected, actual)
    try:
        got = json.loads(actual)
    except ValueError:
        return False
    return _matches_json(wanted, got)


def check_expectation(out_path: Path, expected: str) -> bool:
    """Whether a line printed since the last check matches; the check moves past it."""
    offset_path = out_path.with_suffix(".offset")
    offset = int(offset_path.read_text()) if offset_path.exists() else 0
    data = out_path.read_bytes()
    position = offset
    for raw in data[offset:].splitlines(keepends=True):
        position += len(raw)
        if line_matches(expected, raw.decode("utf-8", "replace")):
            offset_path.write_text(str(position))
            return True
    sys.stderr.write(
        f"expected: {expected}\nprinted since the last check:\n"
        + data[offset:].decode("utf-8", "replace")[-3000:]
    )
    return False


def main(argv: list[str]) -> int:
    """`python tests/test_docs_examples.py expect OUT` (expected text on stdin)."""
    if len(argv) == 3 and argv[1] == "expect":
        return 0 if check_expectation(Path(argv[2]), sys.stdin.read().strip()) else 1
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
