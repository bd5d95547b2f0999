"""Facet counts over metadata keys: the loop both stores share. Each store brings its own
index lookup and its engine's count call."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence

from vecpipe.store.conditions import meta

# (key, its payload path) -> whether the key has a keyword index (created when missing)
KeywordIndexed = Callable[[str, str], Awaitable[bool]]
# payload path -> (value, count) pairs, the engine's top values
CountValues = Callable[[str], Awaitable[Iterable[tuple[str, int]]]]


async def facet_counts(
    keys: Sequence[str], keyword_indexed: KeywordIndexed, count_values: CountValues
) -> dict[str, list[tuple[str, int]]]:
    """Each key's values by count (most first, then by value)."""
    paths = [meta(key).path for key in keys]  # every key checked before an index is made
    found: dict[str, list[tuple[str, int]]] = {}
    for key, path in zip(keys, paths, strict=True):
        if not await keyword_indexed(key, path):
            found[key] = []  # a float index: its key holds numbers, and facets count strings
            continue
        counts = await count_values(path)
        found[key] = sorted(counts, key=lambda item: (-item[1], item[0]))
    return found
