"""The facet loop both stores share (store/facets.py); the stores' own facet tests are in
tests/store/contract.py."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from vecpipe.errors import ValidationError
from vecpipe.store.facets import facet_counts


async def test_values_by_count_then_value_and_a_number_index_counts_nothing() -> None:
    indexed: list[str] = []

    async def keyword_indexed(key: str, path: str) -> bool:
        indexed.append(key)
        return key != "year"

    async def count_values(path: str) -> Iterable[tuple[str, int]]:
        return [("b", 2), ("c", 5), ("a", 2)]

    found = await facet_counts(["source", "year"], keyword_indexed, count_values)
    assert found == {"source": [("c", 5), ("a", 2), ("b", 2)], "year": []}
    assert indexed == ["source", "year"]


async def test_every_key_is_checked_before_an_index_is_made() -> None:
    async def keyword_indexed(key: str, path: str) -> bool:
        raise AssertionError("an index was made for a request that fails")

    async def count_values(path: str) -> Iterable[tuple[str, int]]:
        return []

    with pytest.raises(ValidationError):
        await facet_counts(["source", ""], keyword_indexed, count_values)
