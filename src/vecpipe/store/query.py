"""SearchQuery: what a search asks of a store, whichever backend answers it.

`store.search(space, query)` takes one object, so that what comes next (a sparse vector,
a fusion of several, MMR, facets, other kinds of query) extends the query with optional
fields, not the signature of every backend. A backend refuses a query it cannot answer
with a ValidationError that says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from vecpipe.errors import ValidationError
from vecpipe.store.conditions import Condition, visible
from vecpipe.store.vectors import checked_vector


@dataclass(frozen=True)
class SearchQuery:
    """The tenant's best `limit` records after the first `offset`, one hit per record.

    `vector` is a dense query vector of the space; `where` selects among the tenant's
    records (conditions.py; the store adds the tenant condition itself).
    """

    tenant_id: str
    vector: Sequence[float] | None = None
    where: Condition | None = None
    limit: int = 10
    offset: int = 0
    # subtracted from the score of a record's chunks after its first (grouping.py)
    later_chunk_penalty: float = 0.0

    def __post_init__(self) -> None:
        if self.limit < 0 or self.offset < 0:
            raise ValidationError("limit and offset must be >= 0")
        if not 0.0 <= self.later_chunk_penalty <= 2.0:
            raise ValidationError("later_chunk_penalty must be between 0 and 2")

    def dense_vector(self, dimension: int) -> list[float]:
        """The query vector, checked as every backend checks it (vectors.py)."""
        if self.vector is None:
            raise ValidationError("the query has no vector: a search needs one")
        return checked_vector(self.vector, dimension)

    def condition(self) -> Condition:
        """What the store runs: the tenant's points that `where` selects."""
        return visible(self.tenant_id, self.where)
