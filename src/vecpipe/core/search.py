"""Search and facets over a tenant's records: the request's checks, the query vector, and
the payload indexes learned from searches' filters. `Pipeline.search` and `Pipeline.facets`
are these functions (as core/records.py holds the record reads)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from vecpipe.core.filters import parse_filter
from vecpipe.errors import NotFound, ValidationError
from vecpipe.models import EmbeddingSpace, SearchHit
from vecpipe.record_checks import check_record_id, check_tenant_id
from vecpipe.store.base import VectorStore
from vecpipe.store.conditions import Condition, keyword_keys, meta, range_keys
from vecpipe.store.query import Mode, SearchQuery
from vecpipe.store.sparse import DEFAULT_FUSION_K

if TYPE_CHECKING:
    from vecpipe.core.pipeline import Pipeline

MAX_LEARNED_INDEXES = 32
"""Metadata keys a space gets a keyword index on from searches' filters, at most."""
MAX_FACETS = 8
MAX_FACET_TOP = 100
MAX_SEARCH_OFFSET = 1000
"""Hits a search may skip: a page past it costs an over-fetch of (offset + limit) x 4 chunks."""


class IndexLearner:
    """The payload indexes each space has been given from searches' filters (in memory)."""

    def __init__(self, store: VectorStore) -> None:
        self.store = store
        self._learned: dict[str, set[str]] = {}  # per space: keys indexed for filters

    async def learn(self, space: EmbeddingSpace, where: Condition | None) -> None:
        """Index the metadata keys searches filter on (the first MAX_LEARNED_INDEXES per
        space): keyword for string equalities, float for numeric ranges. A filter then reads
        the index instead of every payload: at 100k chunks, p99 368 ms -> 7 ms for a 1 %
        filter (bench/search_modes.py). One index per key, the first kind asked for (the
        other kind's conditions still work, from the payload). Creating one is a one-off
        write; the stores skip keys already indexed."""
        learned = self._learned.setdefault(space.key, set())
        wanted = [(key, "keyword") for key in sorted(keyword_keys(where))]
        wanted += [(key, "float") for key in sorted(range_keys(where) - keyword_keys(where))]
        for key, kind in wanted:
            if key in learned:
                continue
            if len(learned) >= MAX_LEARNED_INDEXES:
                return
            await self.store.ensure_payload_index(space, key, kind)
            learned.add(key)


async def search(
    pipeline: Pipeline,
    tenant_id: str,
    query: str | None = None,
    limit: int = 10,
    filter: Mapping[str, Any] | None = None,
    *,
    offset: int = 0,
    vector: Sequence[float] | None = None,
    like: str | None = None,
    score_threshold: float | None = None,
    mode: Mode = "dense",
    fusion_k: int = DEFAULT_FUSION_K,
    diversity: float = 0.0,
) -> list[SearchHit]:
    """The best records for one of: a `query` text, the caller's own query `vector` (of
    the tenant's space), or `like`, a stored record (left out of its own hits).
    `mode` keyword ranks by BM25 over the query text, hybrid fuses it with dense (RRF,
    `fusion_k`); both need a `query`."""
    check_tenant_id(tenant_id)
    if sum(x is not None for x in (query, vector, like)) != 1:
        raise ValidationError("a search takes one of query, vector or like")
    if query is not None and not query.strip():
        raise ValidationError("query must not be empty")
    if like is not None:
        check_record_id(like, pipeline.settings.limits)
    if vector is not None and not any(vector):
        raise ValidationError("vector: a zero vector has no direction to search in")
    if vector is not None and not math.isfinite(math.hypot(*vector)):
        raise ValidationError(
            "vector: values must be finite, and not so large its length overflows"
        )
    if not 0 <= offset <= MAX_SEARCH_OFFSET:
        raise ValidationError(f"offset must be between 0 and {MAX_SEARCH_OFFSET}")
    if mode != "dense" and query is None:
        raise ValidationError(f"a {mode} search needs a query text")
    where = parse_filter(filter)  # checked before anything is embedded
    penalty = 0.0  # a prior on the cosine scale: dense scores only, never BM25 or RRF ones
    if query is not None and mode != "keyword":
        async with pipeline.providers.lease(tenant_id) as chain:
            # a query: ahead of queued ingest batches at a local model
            fmt = chain.text_format
            [vector] = await chain.embed([fmt.query(query)], purpose="query")
            space = chain.space
            if mode == "dense":
                penalty = fmt.later_chunk_penalty
    else:
        space = await pipeline.space_of(tenant_id)
    await pipeline.store.ensure_space(space)
    if like is not None and like not in await pipeline.store.stored_records(
        space, tenant_id, [like]
    ):  # a record the tenant may not read (issue 15: expired) is none to be like
        raise NotFound(f"record not found in tenant {tenant_id}")
    await pipeline.indexes.learn(space, where)
    ask = SearchQuery(
        tenant_id,
        vector,
        where,
        limit,
        offset,
        like=like,
        score_threshold=score_threshold,
        mode=mode,
        text=query,
        fusion_k=fusion_k,
        diversity=diversity,
        later_chunk_penalty=penalty,
    )
    return await pipeline.store.search(space, ask)


async def facets(
    pipeline: Pipeline,
    tenant_id: str,
    keys: Sequence[str],
    filter: Mapping[str, Any] | None = None,
    top: int = 10,
) -> dict[str, list[tuple[str, int]]]:
    """Per metadata key, the tenant's records per value under `filter`, most first."""
    check_tenant_id(tenant_id)
    if not keys or len(keys) > MAX_FACETS or not 1 <= top <= MAX_FACET_TOP:
        raise ValidationError(f"facets: 1 to {MAX_FACETS} keys, top 1 to {MAX_FACET_TOP}")
    where = parse_filter(filter)
    for key in keys:
        try:
            meta(key)
        except ValidationError as exc:
            raise ValidationError(f"facets: {key!r}: {exc}") from None
    space = await pipeline.space_of(tenant_id)
    await pipeline.store.ensure_space(space)
    return await pipeline.store.facets(space, tenant_id, list(dict.fromkeys(keys)), where, top)
