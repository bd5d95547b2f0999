"""The filter language of searches and of the record routes: JSON in, a condition tree out.

`parse_filter` is the one entry point: search, list, count, delete-by-filter and sync
scopes all go through it, so they all speak the same language. Today that is the
`{key: value | [values]}` shorthand (store/conditions.py `parse_metadata_filter`); the
operators of issue 14 extend it here.
"""

from __future__ import annotations

from typing import Any

from vecpipe.store.conditions import Condition, parse_metadata_filter


def parse_filter(obj: Any) -> Condition | None:
    """The condition a JSON filter stands for; None when it selects everything (no filter,
    or an empty one). Raises ValidationError (LimitExceeded for size limits) naming where
    the filter is wrong."""
    return parse_metadata_filter(obj)
