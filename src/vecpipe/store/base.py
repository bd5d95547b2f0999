"""The vector store contract. Every read, write and delete carries the tenant.

Writes are not durable until `flush(space)` returns; nothing is acknowledged before that.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from vecpipe.models import ChunkPoint, EmbeddingSpace, SearchHit, StoredRecord


class VectorStore(Protocol):
    async def ensure_space(self, space: EmbeddingSpace) -> None:
        """Create (or open) the index for one embedding space; idempotent."""

    async def stored_records(
        self, space: EmbeddingSpace, tenant_id: str, record_ids: Sequence[str]
    ) -> dict[str, StoredRecord]:
        """What is stored of these records (missing ones are absent from the result)."""

    async def upsert_chunks(self, space: EmbeddingSpace, points: Sequence[ChunkPoint]) -> None:
        """Write chunk points; ids are deterministic so a rewrite overwrites."""

    async def delete_stale_chunks(
        self, space: EmbeddingSpace, tenant_id: str, record_id: str, keep: int
    ) -> None:
        """Delete the record's chunks whose index is >= keep (after a record shrank)."""

    async def update_metadata(
        self, space: EmbeddingSpace, tenant_id: str, record_id: str, metadata: Mapping[str, Any]
    ) -> None:
        """Replace the metadata of every chunk of a record, vectors untouched."""

    async def delete_records(
        self, space: EmbeddingSpace, tenant_id: str, record_ids: Sequence[str]
    ) -> None:
        """Delete every chunk of these records."""

    async def search(
        self,
        space: EmbeddingSpace,
        tenant_id: str,
        vector: Sequence[float],
        limit: int,
        metadata_filter: Mapping[str, Any] | None = None,
    ) -> list[SearchHit]:
        """Best hits, one per record (its best chunk), best first."""

    async def count(self, space: EmbeddingSpace, tenant_id: str | None = None) -> int:
        """Chunk points stored in a space, for one tenant or all."""

    async def flush(self, space: EmbeddingSpace) -> None:
        """Make every write so far durable."""

    async def check_ready(self) -> None:
        """Raise StoreError with a reason when the store cannot serve."""

    async def aclose(self) -> None: ...
