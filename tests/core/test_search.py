"""The payload indexes a space learns from searches' filters (core/search.py IndexLearner);
search itself is exercised through Pipeline in tests/core/test_pipeline.py and tests/api."""

from __future__ import annotations

from typing import Any, cast

from vecpipe.core.filters import parse_filter
from vecpipe.core.search import MAX_LEARNED_INDEXES, IndexLearner
from vecpipe.models import EmbeddingSpace
from vecpipe.store.base import VectorStore

SPACE = EmbeddingSpace("m", 8)
OTHER = EmbeddingSpace("n", 8)


class IndexCalls:
    def __init__(self) -> None:
        self.made: list[tuple[str, str, str]] = []

    async def ensure_payload_index(self, space: EmbeddingSpace, key: str, kind: str) -> None:
        self.made.append((space.key, key, kind))


def learner() -> tuple[IndexLearner, IndexCalls]:
    calls = IndexCalls()
    return IndexLearner(cast(VectorStore, calls)), calls


async def test_equalities_get_keyword_indexes_ranges_float_each_key_once_per_space() -> None:
    indexes, calls = learner()
    where: Any = parse_filter({"source": "jira", "year": {"$gte": 2024}})
    await indexes.learn(SPACE, where)
    await indexes.learn(SPACE, where)
    await indexes.learn(OTHER, parse_filter({"year": "2020"}))  # a string: keyword
    assert calls.made == [
        (SPACE.key, "source", "keyword"),
        (SPACE.key, "year", "float"),
        (OTHER.key, "year", "keyword"),
    ]


async def test_a_space_learns_at_most_the_cap() -> None:
    indexes, calls = learner()
    for n in range(MAX_LEARNED_INDEXES + 5):
        await indexes.learn(SPACE, parse_filter({f"k{n}": "v"}))
    assert len(calls.made) == MAX_LEARNED_INDEXES
    await indexes.learn(SPACE, None)  # no filter, nothing to learn
    assert len(calls.made) == MAX_LEARNED_INDEXES
