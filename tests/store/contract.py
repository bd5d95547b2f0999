"""The contract every `VectorStore` keeps, as a test class to subclass.

A backend's test module runs the whole suite by subclassing and providing one fixture that
yields an open, empty store and closes it afterwards (closing twice must be harmless):

    class TestEdgeStoreContract(VectorStoreContract):
        @pytest.fixture
        async def store(self, tmp_path) -> AsyncIterator[VectorStore]:
            async with EdgeStore(tmp_path / "data") as store:
                yield store

Vectors are 8-d and built from the axes (`vec(x=...)`), so which chunk is nearest to a query
is plain to see. `VectorStoreContract` uses only the protocol in vecpipe.store.base;
`VersionedPrimitivesContract` holds a Qdrant-family adapter to the primitives versioned.py
builds its writes on (the conditional upsert, deletes and payload updates by condition).
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any, Protocol

import pytest

from vecpipe.core.filters import parse_filter
from vecpipe.errors import ClosedError, LimitExceeded, NotFound, ValidationError
from vecpipe.models import ChunkPoint, EmbeddingSpace
from vecpipe.store import versioned
from vecpipe.store.base import VectorStore
from vecpipe.store.conditions import (
    CHUNK,
    RECORD,
    TENANT,
    And,
    Condition,
    Eq,
    In,
    IsEmpty,
    Not,
    Or,
    Range,
    chunks_from,
    expired,
    meta,
    parse_metadata_filter,
)
from vecpipe.store.query import Mode, SearchQuery
from vecpipe.store.versioned import VersionedPrimitives
from vecpipe.store.writes import DeleteRecord, UpdateMetadata, WriteBatch

SPACE = EmbeddingSpace(model="contract/test-Model", dimension=8)
AXES = "abcdefgh"


def vec(**weights: float) -> list[float]:
    """An 8-d vector from named axes: vec(a=1, b=0.2)."""
    return [float(weights.get(axis, 0.0)) for axis in AXES]


def record_points(
    tenant_id: str,
    record_id: str,
    vectors: Sequence[list[float]],
    metadata: dict[str, Any] | None = None,
    content_hash: str = "hash-1",
    chunks: Sequence[str] | None = None,
    version: int = 0,
) -> list[ChunkPoint]:
    """The chunk points of one record, one per vector; chunk texts default to `<id>#<i>`."""
    texts = (
        list(chunks) if chunks is not None else [f"{record_id}#{i}" for i in range(len(vectors))]
    )
    return [
        ChunkPoint(
            tenant_id=tenant_id,
            record_id=record_id,
            chunk_index=index,
            chunk_count=len(vectors),
            chunk_text=texts[index],
            record_text=" ".join(texts),
            content_hash=content_hash,
            metadata=dict(metadata or {}),
            vector=vector,
            version=version,
        )
        for index, vector in enumerate(vectors)
    ]


def query(
    tenant_id: str,
    vector: list[float],
    limit: int,
    metadata_filter: dict[str, Any] | None = None,
    *,
    where: Condition | None = None,
    offset: int = 0,
) -> SearchQuery:
    """A search query; `metadata_filter` is the API's `{key: value}` filter, parsed."""
    if metadata_filter is not None:
        where = parse_filter(metadata_filter)
    return SearchQuery(tenant_id, vector, where=where, limit=limit, offset=offset)


def upserts(*records: list[ChunkPoint]) -> WriteBatch:
    return WriteBatch.of_points([point for points in records for point in points])


async def put(store: VectorStore, *records: list[ChunkPoint]) -> None:
    """Write the records as the pipeline does (store.write), then flush."""
    await store.write(SPACE, upserts(*records))
    await store.flush(SPACE)


async def update_metadata(
    store: VectorStore, tenant_id: str, record_id: str, metadata: dict[str, Any], version: int
) -> None:
    await store.write(SPACE, WriteBatch([UpdateMetadata(tenant_id, record_id, metadata, version)]))


async def delete_records(store: VectorStore, tenant_id: str, record_ids: list[str]) -> None:
    await store.write(SPACE, WriteBatch.deletes(tenant_id, record_ids))


class PrimitivesStore(VectorStore, VersionedPrimitives, Protocol):
    """A Qdrant-family adapter: the store protocol and versioned.py's primitives."""


async def upsert_raw(store: PrimitivesStore, *records: list[ChunkPoint]) -> None:
    """The primitive conditional upsert alone (no re-read, no cleanup), then flush."""
    await store.upsert_chunks(SPACE, [point for points in records for point in points])
    await store.flush(SPACE)


class VectorStoreContract:
    """Subclass and provide a `store` fixture: an open, empty VectorStore."""

    # ------------------------------------------------------------------------ spaces

    async def test_ensure_space_is_idempotent_and_concurrent(self, store: VectorStore) -> None:
        await asyncio.gather(*(store.ensure_space(SPACE) for _ in range(5)))
        await store.ensure_space(SPACE)
        assert await store.count(SPACE) == 0

    async def test_spaces_are_separate(self, store: VectorStore) -> None:
        other = EmbeddingSpace(model="contract/other-model", dimension=4)
        await put(store, record_points("t1", "r1", [vec(a=1)]))
        await store.write(other, upserts(record_points("t1", "r1", [[1.0, 0, 0, 0]])))
        assert await store.count(SPACE) == 1
        assert await store.count(other) == 1
        await store.write(other, WriteBatch.deletes("t1", ["r1"]))
        assert await store.count(SPACE) == 1

    # ------------------------------------------------------------------------ writes, reads

    async def test_stored_records_read_chunk_zero(self, store: VectorStore) -> None:
        meta = {"lang": "en", "n": 3, "tags": ["x", "y"], "nested": {"k": True}}
        await put(store, record_points("t1", "r1", [vec(a=1), vec(b=1)], meta, "h-r1"))
        got = await store.stored_records(SPACE, "t1", ["r1", "missing"])
        assert set(got) == {"r1"}
        stored = got["r1"]
        assert (stored.tenant_id, stored.record_id) == ("t1", "r1")
        assert stored.text == "r1#0 r1#1"
        assert stored.metadata == meta
        assert (stored.content_hash, stored.chunk_count) == ("h-r1", 2)

    async def test_stored_records_of_nothing(self, store: VectorStore) -> None:
        assert await store.stored_records(SPACE, "t1", []) == {}
        assert await store.stored_records(SPACE, "t1", ["nope"]) == {}

    async def test_rewrite_overwrites_the_same_points(self, store: VectorStore) -> None:
        await put(store, record_points("t1", "r1", [vec(a=1), vec(b=1)], content_hash="old"))
        await put(store, record_points("t1", "r1", [vec(a=1), vec(c=1)], content_hash="new"))
        assert await store.count(SPACE, "t1") == 2
        assert (await store.stored_records(SPACE, "t1", ["r1"]))["r1"].content_hash == "new"

    async def test_wrong_dimension_is_refused(self, store: VectorStore) -> None:
        with pytest.raises(ValidationError):
            await store.write(SPACE, upserts(record_points("t1", "r1", [[1.0, 0.0]])))
        with pytest.raises(ValidationError):
            await store.search(SPACE, query("t1", [1.0, 0.0], 3))
        assert await store.count(SPACE) == 0

    # ------------------------------------------------------------------------ search

    async def test_search_of_an_empty_space(self, store: VectorStore) -> None:
        assert await store.search(SPACE, query("t1", vec(a=1), 5)) == []

    async def test_one_hit_per_record_with_its_best_chunk(self, store: VectorStore) -> None:
        await put(
            store,
            record_points("t1", "near", [vec(b=1), vec(a=1, b=0.1), vec(a=1, b=0.5)], {"k": 1}),
            record_points("t1", "far", [vec(a=0.2, c=1)], {"k": 2}),
        )
        hits = await store.search(SPACE, query("t1", vec(a=1), 10))
        assert [hit.id for hit in hits] == ["near", "far"]
        best = hits[0]
        assert best.chunk == "near#1"
        assert best.text == "near#0 near#1 near#2"  # full text, from chunk 0
        assert best.metadata == {"k": 1}
        assert best.score == pytest.approx(1 / (1 + 0.1**2) ** 0.5, rel=1e-4)
        assert hits[0].score > hits[1].score
        assert (hits[1].chunk, hits[1].text) == ("far#0", "far#0")

    async def test_search_limit_keeps_the_best(self, store: VectorStore) -> None:
        await put(store, *(record_points("t1", f"r{i}", [vec(a=1, b=i)]) for i in range(6)))
        hits = await store.search(SPACE, query("t1", vec(a=1), 3))
        assert [hit.id for hit in hits] == ["r0", "r1", "r2"]
        assert await store.search(SPACE, query("t1", vec(a=1), 0)) == []

    async def test_search_reaches_past_a_record_with_many_chunks(self, store: VectorStore) -> None:
        flood = record_points("t1", "flood", [vec(a=1, b=0.01 * i) for i in range(40)])
        others = [record_points("t1", f"o{i}", [vec(a=1, c=1 + i)]) for i in range(3)]
        await put(store, flood, *others)
        hits = await store.search(SPACE, query("t1", vec(a=1), 3))
        assert [hit.id for hit in hits] == ["flood", "o0", "o1"]
        assert hits[0].chunk == "flood#0"

    async def test_filter_on_exact_values(self, store: VectorStore) -> None:
        await put(
            store,
            record_points("t1", "r1", [vec(a=1)], {"lang": "en", "n": 1, "ok": True}),
            record_points("t1", "r2", [vec(a=1, b=0.1)], {"lang": "de", "n": 2, "ok": False}),
            record_points(
                "t1", "r3", [vec(a=1, b=0.2)], {"lang": "en", "n": 3, "deep": {"x": "y"}}
            ),
        )

        async def ids(flt: dict[str, Any]) -> list[str]:
            return [hit.id for hit in await store.search(SPACE, query("t1", vec(a=1), 10, flt))]

        assert await ids({"lang": "en"}) == ["r1", "r3"]
        assert await ids({"n": 2}) == ["r2"]
        assert await ids({"ok": True}) == ["r1"]
        assert await ids({"ok": False}) == ["r2"]
        assert await ids({"lang": "en", "n": 3}) == ["r3"]
        assert await ids({"deep.x": "y"}) == ["r3"]
        assert await ids({"lang": "fr"}) == []
        assert await ids({"n": "1"}) == []  # no type coercion
        assert await ids({}) == ["r1", "r2", "r3"]

    async def test_filter_with_a_list_matches_any(self, store: VectorStore) -> None:
        await put(
            store,
            record_points("t1", "r1", [vec(a=1)], {"lang": "en", "n": 1, "ok": True}),
            record_points("t1", "r2", [vec(a=1, b=0.1)], {"lang": "de", "n": 2, "ok": False}),
            record_points("t1", "r3", [vec(a=1, b=0.2)], {"lang": "fr", "n": 3, "tags": ["x"]}),
        )

        async def ids(flt: dict[str, Any]) -> list[str]:
            return [hit.id for hit in await store.search(SPACE, query("t1", vec(a=1), 10, flt))]

        assert await ids({"lang": ["en", "fr"]}) == ["r1", "r3"]
        assert await ids({"n": [2, 3, 99]}) == ["r2", "r3"]
        assert await ids({"ok": [True, False]}) == ["r1", "r2"]
        assert await ids({"lang": ["de", 3]}) == ["r2"]
        assert await ids({"tags": "x"}) == ["r3"]  # a stored list matches by any item

    @pytest.mark.parametrize("key", ["", "a b", "a..b", ".a", "a.", "x/y", "$k", "é", "a*"])
    async def test_filter_keys_are_checked(self, store: VectorStore, key: str) -> None:
        with pytest.raises(ValidationError):
            await store.search(SPACE, query("t1", vec(a=1), 3, {key: "v"}))

    @pytest.mark.parametrize("value", [1.5, None, {"a": 1}, [], [1.5], [None], 2**70])
    async def test_filter_values_are_checked(self, store: VectorStore, value: Any) -> None:
        with pytest.raises(ValidationError):
            await store.search(SPACE, query("t1", vec(a=1), 3, {"k": value}))

    # ------------------------------------------------------------------------ conditions

    async def put_condition_corpus(self, store: VectorStore) -> None:
        """r1..r5 rank in that order for vec(a=1); t2 holds an r1 of its own."""
        corpus: list[dict[str, Any]] = [
            {"n": 1, "lang": "en", "ok": True, "tags": ["x", "y"], "deep": {"g": "a"}},
            {"n": 2.5, "lang": "de", "ok": False, "tags": []},
            {"n": 3, "lang": "fr", "flag": None},
            {"n": -4, "k": 0, "tags": ["y"]},
            {"lang": "en", "k": False, "deep": {"g": "b"}},
        ]
        await put(
            store,
            *(
                record_points("t1", f"r{i}", [vec(a=1, b=0.1 * i)], meta)
                for i, meta in enumerate(corpus, 1)
            ),
            record_points("t2", "r1", [vec(a=1)], {"n": 1, "lang": "en"}),
        )

    async def test_conditions_select_alike_on_every_backend(self, store: VectorStore) -> None:
        await self.put_condition_corpus(store)

        async def ids(where: Condition) -> list[str]:
            hits = await store.search(SPACE, query("t1", vec(a=1), 10, where=where))
            return [hit.id for hit in hits]

        n, lang, ok, tags, k = meta("n"), meta("lang"), meta("ok"), meta("tags"), meta("k")
        assert await ids(Range(n, gte=1, lt=3)) == ["r1", "r2"]  # integers and floats
        assert await ids(Range(n, gt=2)) == ["r2", "r3"]
        assert await ids(Range(n, lte=-4)) == ["r4"]
        assert await ids(In(lang, ["en", "fr"])) == ["r1", "r3", "r5"]
        assert await ids(In(n, [1, 3, 99])) == ["r1", "r3"]
        assert await ids(In(k, [False, "x"])) == ["r5"]  # a boolean is not the integer 0
        assert await ids(Eq(k, 0)) == ["r4"]
        assert await ids(Eq(k, False)) == ["r5"]
        assert await ids(Not(Eq(lang, "en"))) == ["r2", "r3", "r4"]  # r4 has no lang at all
        assert await ids(IsEmpty(tags)) == ["r2", "r3", "r5"]  # [], missing
        assert await ids(IsEmpty(meta("flag"))) == ["r1", "r2", "r3", "r4", "r5"]  # null too
        assert await ids(Not(IsEmpty(tags))) == ["r1", "r4"]
        assert await ids(Eq(tags, "y")) == ["r1", "r4"]  # a stored list matches by any item
        assert await ids(Eq(meta("deep.g"), "b")) == ["r5"]
        nested = Or(
            And(Eq(lang, "en"), Not(Eq(ok, True))), And(Range(n, gte=3), Not(IsEmpty(lang)))
        )
        assert await ids(nested) == ["r3", "r5"]
        assert await ids(And(In(RECORD, ["r1", "r2", "r4"]), Not(Eq(RECORD, "r2")))) == ["r1", "r4"]
        assert await ids(Range(CHUNK, gte=1)) == []

    # ------------------------------------------------------------------------ filter language

    async def put_language_corpus(self, store: VectorStore) -> None:
        """r1..r6 rank in that order for vec(a=1); t2 holds look-alikes that must never show."""
        corpus: list[dict[str, Any]] = [
            {"year": 2023, "at": "2023-06-01T12:00:00Z", "title": "Connection reset by peer"},
            {"year": 2024, "at": "2024-01-01T00:30:00+01:00", "title": "ERR_CONN_RESET again"},
            {"year": 2024.5, "at": "2024-05-01", "title": "all good", "archived": True},
            {"year": 2025, "at": "2025-12-31T23:59:59Z", "tags": ["red", "blue"]},
            {"at": "not a date", "title": ["reset", "other"], "archived": False},
            {"year": "2024", "tags": []},
        ]
        await put(
            store,
            *(
                record_points("t1", f"r{i}", [vec(a=1, b=0.1 * i)], meta)
                for i, meta in enumerate(corpus, 1)
            ),
            record_points("t2", "r1", [vec(a=1)], {"year": 2024, "title": "reset"}),
        )

    async def test_the_filter_language_on_every_backend(self, store: VectorStore) -> None:
        await self.put_language_corpus(store)

        async def ids(flt: dict[str, Any]) -> list[str]:
            return [hit.id for hit in await store.search(SPACE, query("t1", vec(a=1), 10, flt))]

        cases: list[tuple[dict[str, Any], list[str]]] = [
            ({"year": {"$eq": 2024}}, ["r2"]),
            ({"year": {"$ne": 2024}}, ["r1", "r3", "r4", "r5", "r6"]),  # missing counts as "not"
            ({"year": {"$in": [2023, 2025]}}, ["r1", "r4"]),
            ({"year": {"$nin": [2023, 2025, "2024"]}}, ["r2", "r3", "r5"]),
            ({"year": {"$gt": 2024}}, ["r3", "r4"]),
            ({"year": {"$gte": 2024, "$lt": 2025}}, ["r2", "r3"]),  # a string "2024" is no number
            ({"year": {"$lte": 2023.5}}, ["r1"]),
            ({"archived": {"$exists": True}}, ["r3", "r5"]),
            ({"tags": {"$exists": False}}, ["r1", "r2", "r3", "r5", "r6"]),  # [] is empty
            ({"title": {"$text": "reset"}}, ["r1", "r2", "r5"]),  # words ("_" splits), any case
            ({"title": {"$text": "err_conn_reset"}}, ["r2"]),
            ({"at": {"$gte": "2024-01-01T00:00:00Z"}}, ["r3", "r4"]),  # r2 is 23:30 UTC, 2023
            ({"at": {"$lt": "2024-01-01"}}, ["r1", "r2"]),  # "not a date" never matches
            ({"at": {"$gt": "2024-04-30T23:00:00-02:00", "$lte": "2025-12-31T23:59:59Z"}}, ["r4"]),
            ({"$or": [{"year": 2023}, {"tags": "red"}]}, ["r1", "r4"]),
            ({"$and": [{"year": {"$gte": 2024}}, {"$not": {"archived": True}}]}, ["r2", "r4"]),
            (
                {"$not": {"$or": [{"year": {"$lt": 2025}}, {"title": {"$exists": True}}]}},
                ["r4", "r6"],
            ),
            ({"id": "r3"}, ["r3"]),
            ({"id": {"$in": ["r1", "r4", "zz"]}, "year": {"$gt": 2000}}, ["r1", "r4"]),
            ({"id": {"$nin": ["r1", "r2", "r3"]}}, ["r4", "r5", "r6"]),
            ({"tags": {"$in": ["blue"]}, "year": 2025}, ["r4"]),  # keys of one object all hold
        ]
        for flt, expected in cases:
            got = await ids(flt)
            assert got == expected, (flt, got)
        await store.ensure_payload_index(SPACE, "year", "float")  # indexes change nothing
        for key in ("at", "title", "tags", "archived", "year"):  # year: indexed already
            await store.ensure_payload_index(SPACE, key, "keyword")
        for flt, expected in cases:
            got = await ids(flt)
            assert got == expected, ("indexed", flt, got)

    @pytest.mark.parametrize(
        ("flt", "where"),
        [
            ({"year": {"$regex": "x"}}, "filter.year.$regex: unknown operator"),
            ({"$nor": []}, "filter.$nor: unknown operator"),
            ({"year": {"$gt": 1, "$lt": "2024-01-01"}}, "filter.year: bounds mix"),
            ({"year": {"$gt": "soon"}}, "filter.year.$gt: not an ISO-8601"),
            ({"year": {"$gt": True}}, "filter.year.$gt: bounds are numbers"),
            ({"year": {"$eq": 1, "x": 2}}, "filter.year.x: operators and values cannot mix"),
            ({"$or": [{"a": 1}, {"b": {"$in": "x"}}]}, "filter.$or[1].b.$in: takes a list"),
            ({"$not": []}, "filter.$not: a filter is an object"),
            ({"id": 5}, "filter.id: record ids are strings"),
            ({"id": {"$gt": "a"}}, "filter.id.$gt: unknown operator"),
            ({"a": {"$exists": 1}}, "filter.a.$exists: takes true or false"),
            ({"a": {"$text": "  "}}, "filter.a.$text: takes a string of at least one word"),
        ],
    )
    async def test_a_bad_filter_says_where(
        self, store: VectorStore, flt: dict[str, Any], where: str
    ) -> None:
        with pytest.raises(ValidationError, match=re.escape(where)):
            await store.search(SPACE, query("t1", vec(a=1), 3, flt))

    async def test_filters_are_bounded(self, store: VectorStore) -> None:
        wide = {"$or": [{"$and": [{f"k{j}": j for j in range(16)}] * 16}] * 16}
        deep: dict[str, Any] = {"a": 1}
        for _ in range(40):
            deep = {"$not": deep}
        many = {"$or": [{"k": i} for i in range(10_000)]}
        for flt in (wide, deep, many):
            with pytest.raises(LimitExceeded):
                await store.search(SPACE, query("t1", vec(a=1), 3, flt))

    # ------------------------------------------------------------------------ result options

    async def test_pages_cover_the_ranking_once(self, store: VectorStore) -> None:
        records = [
            record_points("t1", f"r{i}", [vec(a=1, b=0.05 * i), vec(c=1, b=0.05 * i)][: 1 + i % 2])
            for i in range(23)
        ]
        await put(store, *records)
        whole = await store.search(SPACE, query("t1", vec(a=1), 23))
        pages = [
            await store.search(SPACE, query("t1", vec(a=1), 5, offset=offset))
            for offset in range(0, 25, 5)
        ]
        paged = [hit.id for page in pages for hit in page]
        assert paged == [hit.id for hit in whole]  # no record twice, none skipped
        assert len(set(paged)) == 23

    async def test_score_threshold_leaves_out_weaker_hits(self, store: VectorStore) -> None:
        await put(store, *(record_points("t1", f"r{i}", [vec(a=1, b=0.5 * i)]) for i in range(5)))
        everything = await store.search(SPACE, query("t1", vec(a=1), 10))
        cut = everything[2].score - 1e-6
        ask = SearchQuery("t1", vec(a=1), limit=10, score_threshold=cut)
        assert [hit.id for hit in await store.search(SPACE, ask)] == ["r0", "r1", "r2"]

    async def test_hits_say_their_chunk_and_mode(self, store: VectorStore) -> None:
        await put(store, record_points("t1", "r1", [vec(b=1), vec(a=1)]))
        [hit] = await store.search(SPACE, query("t1", vec(a=1), 3))
        assert (hit.chunk, hit.chunk_index, hit.mode) == ("r1#1", 1, "dense")

    async def test_like_a_record_finds_its_neighbours_not_itself(self, store: VectorStore) -> None:
        await put(
            store,
            record_points("t1", "seed", [vec(a=1, b=0.1), vec(h=1)], {"k": 1}),
            record_points("t1", "near", [vec(a=1, b=0.2)], {"k": 1}),
            record_points("t1", "far", [vec(c=1)], {"k": 2}),
            record_points("t1", "nearer", [vec(a=1, b=0.12)], {"k": 2}),
            record_points("t2", "seed", [vec(a=1, b=0.1)]),
            record_points("t2", "other", [vec(a=1, b=0.1)]),
        )
        like = SearchQuery("t1", like="seed", limit=10)
        assert [hit.id for hit in await store.search(SPACE, like)] == ["nearer", "near", "far"]
        where = parse_filter({"k": 1})
        filtered = SearchQuery("t1", like="seed", limit=10, where=where)
        assert [hit.id for hit in await store.search(SPACE, filtered)] == ["near"]
        with pytest.raises(NotFound):  # t2's "other" is not t1's
            await store.search(SPACE, SearchQuery("t1", like="other"))
        with pytest.raises(ValidationError):
            SearchQuery("t1", vec(a=1), like="seed")

    # ------------------------------------------------------------------------ modes

    async def put_text_corpus(self, store: VectorStore) -> None:
        texts = {
            "manual": ["the connection failed with ERR_CONN_RESET", "retry the ERR_CONN_RESET"],
            "faq": ["how to reset a connection", "connection basics"],
            "novel": ["a long story about the sea"],
            "notes": ["sea shanties and connection songs"],
        }
        vectors = {
            "manual": vec(c=1),
            "faq": vec(a=1, b=0.3),
            "novel": vec(a=1),
            "notes": vec(a=0.2, b=1),
        }
        await put(
            store,
            *(
                record_points("t1", rid, [vectors[rid]] * len(chunks), {"k": rid}, chunks=chunks)
                for rid, chunks in texts.items()
            ),
            record_points("t2", "manual", [vec(a=1)], chunks=["ERR_CONN_RESET ERR_CONN_RESET"]),
        )

    async def test_keyword_mode_ranks_by_bm25(self, store: VectorStore) -> None:
        await self.put_text_corpus(store)

        async def ids(mode: Mode, text: str, **options: Any) -> list[str]:
            ask = SearchQuery("t1", vec(a=1), mode=mode, text=text, limit=10, **options)
            hits = await store.search(SPACE, ask)
            assert {hit.mode for hit in hits} <= {mode}
            return [hit.id for hit in hits]

        assert await ids("keyword", "ERR_CONN_RESET") == ["manual", "faq"]  # err, conn, reset
        assert (await ids("keyword", "sea"))[:2] == ["novel", "notes"]
        assert await ids("keyword", "nothing matches this") == []
        assert await ids("keyword", "sea", where=parse_filter({"k": "notes"})) == ["notes"]
        # dense alone puts the manual last (its vector is orthogonal); hybrid lifts it
        assert (await ids("dense", "ERR_CONN_RESET"))[-1] == "manual"
        hybrid = await ids("hybrid", "ERR_CONN_RESET")
        assert sorted(hybrid) == ["faq", "manual", "notes", "novel"]  # one hit per record
        assert hybrid.index("manual") < 2
        with pytest.raises(ValidationError, match="query text"):
            SearchQuery("t1", vec(a=1), mode="keyword")
        with pytest.raises(ValidationError, match="mode"):
            SearchQuery("t1", vec(a=1), mode="fuzzy", text="x")  # type: ignore[arg-type]

    async def test_hybrid_fusion_k_is_exposed(self, store: VectorStore) -> None:
        await self.put_text_corpus(store)
        scores = []
        for k in (1, 60):
            ask = SearchQuery("t1", vec(a=1), mode="hybrid", text="connection", fusion_k=k)
            scores.append((await store.search(SPACE, ask))[0].score)
        assert scores[0] > scores[1]  # 1/(k + rank): a small k weighs the heads more

    async def test_diversity_spreads_the_top_k_beyond_near_duplicates(
        self, store: VectorStore
    ) -> None:
        dups = [record_points("t1", f"dup{i}", [vec(a=1, b=0.01 * i)]) for i in range(6)]
        others = [
            record_points("t1", f"other-{axis}", [vec(a=1, **{axis: 0.6})]) for axis in "cdef"
        ]
        await put(store, *dups, *others, record_points("t2", "x", [vec(a=1, g=0.5)]))

        async def near_duplicates(diversity: float) -> int:
            ask = SearchQuery("t1", vec(a=1), limit=5, diversity=diversity)
            hits = await store.search(SPACE, ask)
            assert len(hits) == 5 and len({hit.id for hit in hits}) == 5
            return sum(hit.id.startswith("dup") for hit in hits)

        assert await near_duplicates(0.0) == 5
        assert await near_duplicates(0.5) < 3
        with pytest.raises(ValidationError, match="dense"):
            SearchQuery("t1", vec(a=1), mode="keyword", text="x", diversity=0.5)
        with pytest.raises(ValidationError, match="diversity"):
            SearchQuery("t1", vec(a=1), diversity=1.5)

    async def test_facets_count_records_per_value(self, store: VectorStore) -> None:
        langs = ["en", "de", "en", "fr", "en", "de", "xx"]
        await put(
            store,
            *(
                record_points(
                    "t1",
                    f"r{i}",
                    [vec(a=1, b=0.1 * i)] * (1 + i % 3),  # records of several chunks count once
                    {"lang": lang, "n": i, "src": {"kind": "web" if i % 2 else "pdf"}},
                )
                for i, lang in enumerate(langs)
            ),
            record_points("t2", "r0", [vec(a=1)], {"lang": "en"}),
        )
        got = await store.facets(SPACE, "t1", ["lang", "src.kind", "missing"], top=3)
        brute = Counter(langs)
        assert got["lang"] == [("en", brute["en"]), ("de", brute["de"]), ("fr", 1)]
        assert got["src.kind"] == [("pdf", 4), ("web", 3)]
        assert got["missing"] == []
        where = parse_filter({"n": {"$gte": 2}})
        narrowed = await store.facets(SPACE, "t1", ["lang"], where, top=10)
        assert narrowed["lang"] == sorted(
            Counter(langs[2:]).items(), key=lambda item: (-item[1], item[0])
        )
        assert await store.facets(SPACE, "nobody", ["lang"]) == {"lang": []}
        await store.ensure_payload_index(SPACE, "n", "float")  # as a range filter learns it
        assert await store.facets(SPACE, "t1", ["n", "lang"], top=1) == {
            "n": [],  # numbers: facets count strings
            "lang": [("en", 3)],
        }

    async def test_a_condition_never_reaches_another_tenant(self, store: VectorStore) -> None:
        await self.put_condition_corpus(store)
        escape = Or(Eq(TENANT, "t2"), Eq(RECORD, "r1"))
        hits = await store.search(SPACE, query("t1", vec(a=1), 10, where=escape))
        assert [(hit.id, hit.metadata["ok"]) for hit in hits] == [("r1", True)]  # t1's r1 only
        assert await store.search(SPACE, query("t1", vec(a=1), 10, where=Eq(TENANT, "t2"))) == []

    async def test_a_json_boolean_filter_never_matches_a_number(self, store: VectorStore) -> None:
        await self.put_condition_corpus(store)
        cases: list[tuple[dict[str, Any], list[str]]] = [
            ({"k": [False]}, ["r5"]),
            ({"k": 0}, ["r4"]),
            ({"k": [0, True]}, ["r4"]),
        ]
        for flt, expected in cases:
            hits = await store.search(SPACE, query("t1", vec(a=1), 10, flt))
            assert [hit.id for hit in hits] == expected, flt

    async def test_offset_pages_through_the_ranking(self, store: VectorStore) -> None:
        await put(store, *(record_points("t1", f"r{i}", [vec(a=1, b=i)]) for i in range(6)))
        page = await store.search(SPACE, query("t1", vec(a=1), 2, offset=2))
        assert [hit.id for hit in page] == ["r2", "r3"]
        assert await store.search(SPACE, query("t1", vec(a=1), 2, offset=6)) == []

    @pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
    async def test_a_non_finite_vector_is_refused(self, store: VectorStore, bad: float) -> None:
        with pytest.raises(ValidationError, match="non-finite"):
            await store.search(SPACE, query("t1", vec(a=1, b=bad), 3))
        points = record_points("t1", "r1", [vec(a=1), vec(a=1, b=bad)])
        with pytest.raises(ValidationError, match="non-finite"):
            await store.write(SPACE, upserts(points))
        assert await store.count(SPACE) == 0

    # ------------------------------------------------------------------------ counting

    async def test_records_and_tenants_are_counted_by_chunk_zero(self, store: VectorStore) -> None:
        await put(
            store,
            record_points("t1", "r1", [vec(a=1), vec(b=1), vec(c=1)]),
            record_points("t1", "r2", [vec(a=1)]),
            record_points("t2", "r1", [vec(a=1), vec(b=1)]),
        )
        assert (await store.count_records(SPACE, "t1"), await store.count(SPACE, "t1")) == (2, 4)
        assert await store.count_records(SPACE, "t2") == 1
        assert await store.count_records(SPACE, "t3") == 0
        assert await store.tenants(SPACE) == {"t1": 2, "t2": 1}
        await store.delete_tenant(SPACE, "t1")
        await store.flush(SPACE)
        assert await store.tenants(SPACE) == {"t2": 1}

    # ------------------------------------------------------------------------ versioned writes

    async def test_write_answers_per_record(self, store: VectorStore) -> None:
        await put(store, record_points("t1", "r1", [vec(a=1)], version=2))
        batch = WriteBatch(
            [
                *upserts(record_points("t1", "r1", [vec(b=1), vec(c=1)], version=1)).writes,
                *upserts(record_points("t1", "r2", [vec(a=1)], version=1)).writes,
                UpdateMetadata("t2", "r1", {"k": 1}, version=1),
                DeleteRecord("t1", "r3"),
            ]
        )
        assert await store.write(SPACE, batch) == {
            ("t1", "r1"): "stale",
            ("t1", "r2"): "written",
            ("t2", "r1"): "written",
            ("t1", "r3"): "deleted",
        }
        await store.flush(SPACE)
        assert await store.count(SPACE, "t1") == 2  # the stale write left nothing behind
        assert (await store.stored_records(SPACE, "t1", ["r1"]))["r1"].version == 2

    async def test_a_record_that_shrinks_keeps_none_of_its_old_chunks(
        self, store: VectorStore
    ) -> None:
        await put(store, record_points("t1", "r1", [vec(a=1)] * 4, version=1))
        await put(store, record_points("t1", "r1", [vec(b=1)] * 3, version=1))  # same version
        assert await store.count(SPACE, "t1") == 3
        await put(store, record_points("t1", "r1", [vec(c=1)], version=2))
        assert await store.count(SPACE, "t1") == 1
        assert [hit.chunk for hit in await store.search(SPACE, query("t1", vec(c=1), 3))] == [
            "r1#0"
        ]

    # ------------------------------------------------------------------------ updates, deletes

    async def test_update_metadata_replaces_it_on_every_chunk(self, store: VectorStore) -> None:
        await put(store, record_points("t1", "r1", [vec(a=1, b=1), vec(a=1)], {"old": 1}))
        before = await store.search(SPACE, query("t1", vec(a=1), 5))
        await update_metadata(store, "t1", "r1", {"new": "yes"}, version=0)
        await store.flush(SPACE)
        assert (await store.stored_records(SPACE, "t1", ["r1"]))["r1"].metadata == {"new": "yes"}
        after = await store.search(SPACE, query("t1", vec(a=1), 5, {"new": "yes"}))
        assert [(h.id, h.chunk, h.metadata) for h in after] == [("r1", "r1#1", {"new": "yes"})]
        assert after[0].score == pytest.approx(before[0].score)  # vectors untouched
        assert await store.search(SPACE, query("t1", vec(b=1), 5, {"old": 1})) == []
        assert await store.count(SPACE, "t1") == 2

    async def test_delete_records_removes_every_chunk(self, store: VectorStore) -> None:
        await put(
            store,
            record_points("t1", "r1", [vec(a=1), vec(b=1), vec(c=1)]),
            record_points("t1", "r2", [vec(a=1)]),
        )
        await delete_records(store, "t1", ["r1", "missing", "r1"])
        await delete_records(store, "t1", [])
        await store.flush(SPACE)
        assert await store.count(SPACE, "t1") == 1
        assert set(await store.stored_records(SPACE, "t1", ["r1", "r2"])) == {"r2"}
        assert [hit.id for hit in await store.search(SPACE, query("t1", vec(b=1), 5))] == ["r2"]

    async def test_count_per_tenant_and_in_all(self, store: VectorStore) -> None:
        await put(
            store,
            record_points("t1", "r1", [vec(a=1), vec(b=1)]),
            record_points("t2", "r1", [vec(a=1)]),
        )
        assert await store.count(SPACE, "t1") == 2
        assert await store.count(SPACE, "t2") == 1
        assert await store.count(SPACE, "t3") == 0
        assert await store.count(SPACE) == 3

    async def test_scroll_records_pages_through_one_tenant(self, store: VectorStore) -> None:
        many = [record_points("t1", f"r{i}", [vec(a=1), vec(b=1)], version=i) for i in range(7)]
        await put(store, *many, record_points("t2", "other", [vec(a=1)]))
        seen: list[str] = []
        cursor: str | None = None
        pages = 0
        while True:
            page, cursor = await store.scroll_records(SPACE, "t1", cursor, 3)
            pages += 1
            assert len(page) <= 3
            seen += [record.record_id for record in page]
            if cursor is None:
                break
        assert sorted(seen) == sorted(f"r{i}" for i in range(7)) and pages >= 3
        first, _ = await store.scroll_records(SPACE, "t1", None, 10)
        by_id = {record.record_id: record for record in first}
        assert by_id["r3"].version == 3 and by_id["r3"].text == "r3#0 r3#1"
        assert await store.scroll_records(SPACE, "nobody", None, 10) == ([], None)

    async def test_scroll_records_with_a_filter_in_a_stable_order(self, store: VectorStore) -> None:
        many = [
            record_points("t1", f"r{i}", [vec(a=1), vec(b=1)], {"src": "jira" if i % 2 else "web"})
            for i in range(9)
        ]
        await put(store, *many, record_points("t2", "r1", [vec(a=1)], {"src": "jira"}))
        jira = parse_metadata_filter({"src": "jira"})

        async def walk(limit: int) -> list[str]:
            seen: list[str] = []
            cursor: str | None = None
            while True:
                page, cursor = await store.scroll_records(SPACE, "t1", cursor, limit, jira)
                seen += [record.record_id for record in page]
                if cursor is None:
                    return seen

        by_two, all_at_once = await walk(2), await walk(100)
        assert by_two == all_at_once  # the same order whatever the page size
        assert sorted(by_two) == ["r1", "r3", "r5", "r7"]

    async def test_count_records_with_a_filter(self, store: VectorStore) -> None:
        await put(
            store,
            record_points("t1", "r1", [vec(a=1), vec(b=1)], {"src": "jira"}),
            record_points("t1", "r2", [vec(a=1)], {"src": "web"}),
            record_points("t2", "r3", [vec(a=1)], {"src": "jira"}),
        )
        jira = parse_metadata_filter({"src": "jira"})
        assert await store.count_records(SPACE, "t1", jira) == 1
        assert await store.count_records(SPACE, "t1") == 2
        assert await store.count_records(SPACE, "t3", jira) == 0

    async def test_delete_records_by_filter_counts_records_and_keeps_the_rest(
        self, store: VectorStore
    ) -> None:
        await put(
            store,
            record_points("t1", "r1", [vec(a=1), vec(b=1), vec(c=1)], {"src": "jira"}),
            record_points("t1", "r2", [vec(a=1)], {"src": "jira"}),
            record_points("t1", "r3", [vec(a=1)], {"src": "web"}),
            record_points("t2", "r1", [vec(a=1)], {"src": "jira"}),
        )
        jira = parse_metadata_filter({"src": "jira"})
        assert jira is not None
        assert await store.delete_records(SPACE, "t1", jira) == 2
        await store.flush(SPACE)
        assert await store.count(SPACE, "t1") == 1  # every chunk of r1 went
        assert set(await store.stored_records(SPACE, "t1", ["r1", "r2", "r3"])) == {"r3"}
        assert await store.count_records(SPACE, "t2") == 1
        assert await store.delete_records(SPACE, "t1", jira) == 0

    async def test_spaces_lists_every_space_and_a_listed_space_serves(
        self, store: VectorStore
    ) -> None:
        other = EmbeddingSpace(model="Other/Model-2", dimension=4)
        await put(store, record_points("t1", "r1", [vec(a=1)]))
        await store.write(other, upserts([p for p in record_points("t1", "r9", [[1.0, 0, 0, 0]])]))
        await store.flush(other)
        listed = await store.spaces()
        assert sorted(s.key for s in listed) == sorted([SPACE.key, other.key])
        for space in listed:  # a space known by its key alone still reads and deletes
            assert await store.count_records(space, "t1") == 1
            await store.delete_tenant(space, "t1")
            await store.flush(space)
            assert await store.count(space, "t1") == 0

    async def test_expired_records_are_invisible_to_reads(self, store: VectorStore) -> None:
        gone = record_points("t1", "gone", [vec(a=1), vec(b=1)])
        later = record_points("t1", "later", [vec(a=1)])
        for point in gone:
            point.expires_at = time.time() - 1
        for point in later:
            point.expires_at = time.time() + 3600
        await put(store, gone, later, record_points("t1", "kept", [vec(a=1)]))
        assert await store.count_records(SPACE, "t1") == 2
        page, _ = await store.scroll_records(SPACE, "t1", None, 10)
        assert sorted(r.record_id for r in page) == ["kept", "later"]
        hits = await store.search(SPACE, query("t1", vec(a=1), 10))
        assert sorted(h.id for h in hits) == ["kept", "later"]
        every, _ = await store.scroll_records(
            SPACE, "t1", None, 10, expired(time.time()), include_expired=True
        )
        assert [r.record_id for r in every] == ["gone"]
        assert every[0].expires_at is not None

    async def test_delete_tenant_leaves_the_other_tenants(self, store: VectorStore) -> None:
        await put(
            store,
            record_points("t1", "r1", [vec(a=1), vec(b=1)]),
            record_points("t2", "r1", [vec(a=1)]),
        )
        await store.delete_tenant(SPACE, "t1")
        await store.flush(SPACE)
        assert await store.count(SPACE, "t1") == 0
        assert await store.count(SPACE, "t2") == 1

    # ------------------------------------------------------------------------ tenants

    async def test_deleting_a_tenant_record_leaves_the_other_tenants(
        self, store: VectorStore
    ) -> None:
        await put(
            store,
            record_points("alpha", "r1", [vec(a=1), vec(b=1)]),
            record_points("beta", "r1", [vec(a=1), vec(b=1)]),
        )
        await delete_records(store, "alpha", ["r1"])
        await store.flush(SPACE)
        assert await store.count(SPACE, "alpha") == 0
        assert await store.count(SPACE, "beta") == 2
        assert [hit.id for hit in await store.search(SPACE, query("beta", vec(a=1), 5))] == ["r1"]

    # ------------------------------------------------------------------------ lifecycle

    async def test_concurrent_writes_and_searches(self, store: VectorStore) -> None:
        writes = [
            store.write(SPACE, upserts(record_points("t1", f"r{i}", [vec(a=1, b=i), vec(c=1)])))
            for i in range(20)
        ]
        searches = [store.search(SPACE, query("t1", vec(a=1), 5)) for _ in range(20)]
        await asyncio.gather(*writes, *searches)
        await store.flush(SPACE)
        assert await store.count(SPACE, "t1") == 40
        hits = await store.search(SPACE, query("t1", vec(a=1), 5))
        assert [hit.id for hit in hits] == ["r0", "r1", "r2", "r3", "r4"]

    async def test_flush_and_readiness(self, store: VectorStore) -> None:
        await store.flush(SPACE)  # nothing written yet: fine
        await put(store, record_points("t1", "r1", [vec(a=1)]))
        await store.check_ready()

    async def test_use_after_close_raises_closed_error(self, store: VectorStore) -> None:
        await put(store, record_points("t1", "r1", [vec(a=1)]))
        await store.aclose()
        await store.aclose()  # idempotent
        with pytest.raises(ClosedError):
            await store.search(SPACE, query("t1", vec(a=1), 3))
        with pytest.raises(ClosedError):
            await store.write(SPACE, upserts(record_points("t1", "r2", [vec(a=1)])))
        with pytest.raises(ClosedError):
            await store.stored_records(SPACE, "t1", ["r1"])
        with pytest.raises(ClosedError):
            await store.ensure_space(SPACE)
        with pytest.raises(ClosedError):
            await store.check_ready()


class VersionedPrimitivesContract:
    """Subclass and provide a `store` fixture: an open, empty Qdrant-family adapter."""

    async def test_delete_stale_chunks(self, store: PrimitivesStore) -> None:
        vectors = [vec(a=1), vec(b=1), vec(c=1), vec(d=1)]
        await upsert_raw(
            store, record_points("t1", "r1", vectors), record_points("t1", "r2", vectors)
        )
        await store.delete_where(SPACE, "t1", chunks_from("r1", 2, 0))
        await store.flush(SPACE)
        assert await store.count(SPACE, "t1") == 6
        hits = await store.search(SPACE, query("t1", vec(d=1), 10))
        assert {hit.id: hit.chunk for hit in hits}["r1"] in {"r1#0", "r1#1"}
        assert {hit.id: hit.chunk for hit in hits}["r2"] == "r2#3"

    async def test_an_older_version_never_overwrites_a_newer_one(
        self, store: PrimitivesStore
    ) -> None:
        await upsert_raw(store, record_points("t1", "r1", [vec(a=1)], chunks=["new"], version=5))
        await upsert_raw(
            store, record_points("t1", "r1", [vec(b=1), vec(c=1)], chunks=["o", "ld"], version=3)
        )
        stored = (await store.stored_records(SPACE, "t1", ["r1"]))["r1"]
        assert (stored.text, stored.version) == ("new", 5)
        # the loser's extra chunk was inserted (no newer point stood there): it cleans it up
        assert await store.count(SPACE, "t1") == 2
        await versioned.delete_versions(store, SPACE, "t1", {"r1": 3})
        stale = UpdateMetadata("t1", "r1", {"stale": True}, version=4)
        await versioned.update_metadata(store, SPACE, stale)
        await store.flush(SPACE)
        assert await store.count(SPACE, "t1") == 1
        assert (await store.stored_records(SPACE, "t1", ["r1"]))["r1"].metadata == {}

    async def test_delete_older_versions_keeps_the_current_one(
        self, store: PrimitivesStore
    ) -> None:
        await upsert_raw(store, record_points("t1", "r1", [vec(a=1)] * 3, version=1))
        await upsert_raw(store, record_points("t1", "r2", [vec(a=1)] * 2, version=1))
        await upsert_raw(store, record_points("t1", "r1", [vec(b=1)], version=2))
        await upsert_raw(store, record_points("t2", "r1", [vec(b=1)] * 2, version=1))
        await versioned.delete_superseded(store, SPACE, "t1", {"r1": (2, 1), "r2": (1, 2)})
        await store.flush(SPACE)
        assert await store.count(SPACE, "t1") == 3  # r1: its one v2 chunk; r2 untouched
        assert await store.count(SPACE, "t2") == 2  # another tenant is never touched

    async def test_tenants_never_see_each_other(self, store: PrimitivesStore) -> None:
        await put(
            store,
            record_points("alpha", "same", [vec(a=1), vec(b=1)], {"k": "a"}, "h-alpha"),
            record_points("beta", "same", [vec(a=1)], {"k": "b"}, "h-beta"),
            record_points("alpha", "only-alpha", [vec(a=1, c=0.1)], {"k": "a"}),
        )
        hits = await store.search(SPACE, query("beta", vec(a=1), 10))
        assert [(hit.id, hit.metadata) for hit in hits] == [("same", {"k": "b"})]
        assert await store.search(SPACE, query("beta", vec(a=1), 10, {"k": "a"})) == []
        got = await store.stored_records(SPACE, "beta", ["same", "only-alpha"])
        assert {rid: r.content_hash for rid, r in got.items()} == {"same": "h-beta"}

        await update_metadata(store, "beta", "same", {"k": "changed"}, version=0)
        await update_metadata(store, "beta", "only-alpha", {"k": "changed"}, version=0)
        await store.delete_where(SPACE, "beta", chunks_from("same", 0, 0))
        await delete_records(store, "beta", ["only-alpha"])
        await store.flush(SPACE)

        assert await store.count(SPACE, "beta") == 0
        assert await store.count(SPACE, "alpha") == 3
        alpha = await store.stored_records(SPACE, "alpha", ["same", "only-alpha"])
        assert {rid: r.metadata for rid, r in alpha.items()} == {
            "same": {"k": "a"},
            "only-alpha": {"k": "a"},
        }
        hits = await store.search(SPACE, query("alpha", vec(b=1), 10))
        assert [(hit.id, hit.chunk) for hit in hits] == [
            ("same", "same#1"),
            ("only-alpha", "only-alpha#0"),
        ]
