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

from vecpipe.errors import ValidationError
from vecpipe.store.conditions import RECORD, And, Condition, Eq, Not, visible
from vecpipe.store.vectors import checked_vector


@dataclass(frozen=True)
class SearchQuery:
    """The tenant's best `limit` records after the first `offset`, one hit per record.

    `vector` is a dense query vector of the space; `where` selects among the tenant's
    records (conditions.py; the store adds the tenant condition itself). `like` names a
    stored record of the tenant instead of a vector: the store queries with the vector of
    its chunk 0, and leaves the record itself out. Hits scoring below `score_threshold`
    are left out (the engine's own threshold: it ends the over-fetch of grouping.py early).
    """

    tenant_id: str
    vector: Sequence[float] | None = None
    where: Condition | None = None
    limit: int = 10
    offset: int = 0
    like: str | None = None
    score_threshold: float | None = None

    def __post_init__(self) -> None:
        if self.limit < 0 or self.offset < 0:
            raise ValidationError("limit and offset must be >= 0")
        if self.like is not None and self.vector is not None:
            raise ValidationError("a query takes a vector or a record to be like, not both")
        if self.score_threshold is not None and not math.isfinite(self.score_threshold):
            raise ValidationError("score_threshold must be a finite number")

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
