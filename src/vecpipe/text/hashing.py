"""Content fingerprints: what decides whether a record needs embedding again."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def content_hash(text: str) -> str:
    """Hash of the text alone: a metadata-only change must not trigger embedding."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def fingerprint(value: Any) -> str:
    """A stable hash of a JSON-able value (provider configs, cache keys)."""
    encoded = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()[:32]
