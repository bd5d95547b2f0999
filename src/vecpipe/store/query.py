"""SearchQuery: what a search asks of a store, whichever backend answers it.

`store.search(space, query)` takes one object, so that what comes next (a sparse vector,
a fusion of several, MMR, facets, other kinds of query) extends the query with optional
fields, not the signature of every backend. A backend refuses a query it cannot answer
with a ValidationError that says so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from vecpipe.errors import ValidationError
from vecpipe.store.conditions import RECORD, And, Condition, Eq, Not, visible
from vecpipe.store.sparse import DEFAULT_FUSION_K
from vecpipe.store.vectors import checked_vector

Mode = Literal["dense", "keyword", "hybrid"]
MODES: tuple[str, ...] = get_args(Mode)
MAX_FUSION_K = 1000
MMR_CANDIDATES = (100, 1000)
"""MMR's candidate pool: the chunks fetched x 2, within these bounds (its cost is quadratic)."""


def mmr_candidates(fetch: int) -> int:
    return min(max(fetch * 2, MMR_CANDIDATES[0]), max(MMR_CANDIDATES[1], fetch))


NO_KEYWORD_INDEX = (
    "this embedding space was created before keyword search and holds no BM25 vectors: "
    "keyword and hybrid modes need a reindex (`vecpipe tenant migrate`) to a new space"
)


@dataclass(frozen=True)
class SearchQuery:
    """The tenant's best `limit` records after the first `offset`, one hit per record.

    `vector` is a dense query vector of the space; `where` selects among the tenant's
    records (conditions.py; the store adds the tenant condition itself). `like` names a
    stored record of the tenant instead of a vector: the store queries with the vector of
    its chunk 0, and leaves the record itself out. Hits scoring below `score_threshold`
    are left out (the engine's own threshold: it ends the over-fetch of grouping.py early).

    `mode`: "dense" searches with the vector; "keyword" ranks chunks by BM25 over `text`
    (sparse.py); "hybrid" fuses both rankings with RRF, `fusion_k` its k (higher: the
    two rankings' tails count more against their heads). One hit per record in every mode.
    """

    tenant_id: str
    vector: Sequence[float] | None = None
    where: Condition | None = None
    limit: int = 10
    offset: int = 0
    like: str | None = None
    score_threshold: float | None = None
    mode: Mode = "dense"
    text: str | None = None
    fusion_k: int = DEFAULT_FUSION_K
    diversity: float = 0.0
    # subtracted from the score of a record's chunks after its first (grouping.py)
    later_chunk_penalty: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.diversity <= 1.0:  # NaN fails too
            raise ValidationError("diversity must be between 0 (off) and 1")
        if self.diversity and self.mode != "dense":
            raise ValidationError("diversity (MMR) works with the dense mode only")
        if self.mode not in MODES:
            raise ValidationError(f"mode must be one of {', '.join(MODES)}")
        if self.mode != "dense" and (self.text is None or self.like is not None):
            raise ValidationError(f"a {self.mode} search needs a query text (and no `like`)")
        if not 1 <= self.fusion_k <= MAX_FUSION_K:
            raise ValidationError(f"fusion_k must be between 1 and {MAX_FUSION_K}")
        if self.limit < 0 or self.offset < 0:
            raise ValidationError("limit and offset must be >= 0")
        if self.like is not None and self.vector is not None:
            raise ValidationError("a query takes a vector or a record to be like, not both")
        if self.score_threshold is not None and not math.isfinite(self.score_threshold):
            raise ValidationError("score_threshold must be a finite number")
        if not 0.0 <= self.later_chunk_penalty <= 2.0:
            raise ValidationError("later_chunk_penalty must be between 0 and 2")

    def dense_vector(self, dimension: int) -> list[float]:
        """The query vector, checked as every backend checks it (vectors.py)."""
        if self.vector is None:
            raise ValidationError("the query has no vector: a search needs one")
        return checked_vector(self.vector, dimension)

    def condition(self) -> Condition:
        """What the store runs: the tenant's points that `where` selects (not `like`'s)."""
        where = self.where
        if self.like is not None:
            itself = Not(Eq(RECORD, self.like))
            where = itself if where is None else And(where, itself)
        return visible(self.tenant_id, where)
