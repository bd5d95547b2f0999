"""The vector store contract. Every read, write and delete is confined to one tenant.

A store holds records of many tenants in embedding spaces (one index per model and
dimension). Writes go through one call, `write(space, batch)` (writes.py): how a backend
makes them safe against a concurrent writer of the same record is its own business (the
Qdrant family: versioned.py; a transactional store would do it in a transaction).
Searches take a `SearchQuery` (query.py) with a condition tree (conditions.py), which each
backend compiles to its own filter type.

Writes are not durable until `flush(space)` returns; nothing is acknowledged before that.
tests/store/contract.py is the executable form of this contract.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from vecpipe.models import EmbeddingSpace, SearchHit, StoredRecord
from vecpipe.store.conditions import Condition
from vecpipe.store.query import SearchQuery
from vecpipe.store.writes import WriteBatch, WriteResult


class VectorStore(Protocol):
    async def ensure_space(self, space: EmbeddingSpace) -> None:
        """Create (or open) the index for one embedding space; idempotent."""

    async def write(self, space: EmbeddingSpace, batch: WriteBatch) -> WriteResult:
        """Apply upserts, metadata updates and deletes of distinct records; per record,
        whether it was written, stale (a newer version is stored) or deleted. A write of an
        older version than the stored one never replaces it, and leaves nothing behind."""

    async def stored_records(
        self, space: EmbeddingSpace, tenant_id: str, record_ids: Sequence[str]
    ) -> dict[str, StoredRecord]:
        """What is stored of these records (missing ones are absent from the result)."""

    async def scroll_records(
        self,
        space: EmbeddingSpace,
        tenant_id: str,
        after: str | None,
        limit: int,
        where: Condition | None = None,
        *,
        include_expired: bool = False,
    ) -> tuple[list[StoredRecord], str | None]:
        """One page of the tenant's visible records (those `where` selects, if given), and
        the cursor of the next page (None after the last). Pass None to start; pages follow
        the store's own order, which is stable (point-id order): a record written between
        two pages keeps its place. `include_expired`: expired records too (the sweeper)."""

    async def search(self, space: EmbeddingSpace, query: SearchQuery) -> list[SearchHit]:
        """Best hits, one per record (its best chunk), best first."""

    async def count(self, space: EmbeddingSpace, tenant_id: str | None = None) -> int:
        """Points (chunks) stored in a space, for one tenant or all."""

    async def count_records(
        self, space: EmbeddingSpace, tenant_id: str, where: Condition | None = None
    ) -> int:
        """Visible records the tenant has in a space (a record of many chunks counts once),
        those `where` selects if given."""

    async def tenants(self, space: EmbeddingSpace) -> dict[str, int]:
        """The tenants that have records in a space, with how many each."""

    async def delete_tenant(self, space: EmbeddingSpace, tenant_id: str) -> None:
        """Delete every point of the tenant in this space."""

    async def flush(self, space: EmbeddingSpace) -> None:
        """Make every write so far durable."""

    async def check_ready(self) -> None:
        """Raise StoreError with a reason when the store cannot serve."""

    async def aclose(self) -> None: ...

    async def delete_records(self, space: EmbeddingSpace, tenant_id: str, where: Condition) -> int:
        """Delete every point of the tenant's records that `where` selects (metadata
        conditions hold on every chunk of a record); returns how many records that was."""

    async def spaces(self) -> list[EmbeddingSpace]:
        """Every space the store holds, opened here or not (a reindex's target included):
        what offboarding a tenant walks. A space's model is known by its key only."""

    async def facets(
        self,
        space: EmbeddingSpace,
        tenant_id: str,
        keys: Sequence[str],
        where: Condition | None = None,
        top: int = 10,
    ) -> dict[str, list[tuple[str, int]]]:
        """Per metadata key, the tenant's records per string value among those `where`
        selects (and a read may see: conditions.visible), the `top` most frequent first.
        A key's keyword index is created on first use (ensure_payload_index)."""

    async def ensure_payload_index(self, space: EmbeddingSpace, key: str, kind: str) -> None:
        """Index a metadata key (`kind`: "keyword" or "float"), for facets and fast
        filters; idempotent, and a key indexed already (of any kind) is left as it is."""
