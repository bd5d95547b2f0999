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
        """Write chunk points; ids are deterministic so a rewrite overwrites. Conditional:
        a stored point of a newer version than the incoming one is left as it is."""

    async def delete_stale_chunks(
        self, space: EmbeddingSpace, tenant_id: str, record_id: str, keep: int, version: int
    ) -> None:
        """Delete the record's chunks whose index is >= keep (after a record shrank), of
        versions up to `version`."""

    async def delete_older_versions(
        self, space: EmbeddingSpace, tenant_id: str, versions: Mapping[str, int]
    ) -> None:
        """For each record, delete its points of versions older than the given one (and
        points from before versions existed): what a finished write leaves stale."""

    async def delete_record_version(
        self, space: EmbeddingSpace, tenant_id: str, record_id: str, version: int
    ) -> None:
        """Delete the record's points of exactly this version (a write that lost a race)."""

    async def update_metadata(
        self,
        space: EmbeddingSpace,
        tenant_id: str,
        record_id: str,
        metadata: Mapping[str, Any],
        version: int,
    ) -> None:
        """Replace the metadata (and version) of every chunk of a record whose version is
        not newer; vectors untouched."""

    async def delete_records(
        self, space: EmbeddingSpace, tenant_id: str, record_ids: Sequence[str]
    ) -> None:
        """Delete every chunk of these records."""

    async def scroll_records(
        self, space: EmbeddingSpace, tenant_id: str, after: str | None, limit: int
    ) -> tuple[list[StoredRecord], str | None]:
        """One page of the tenant's records (read from chunk 0), and the cursor of the next
        page (None after the last). Pass None to start; pages follow point-id order."""

    async def delete_tenant(self, space: EmbeddingSpace, tenant_id: str) -> None:
        """Delete every point of the tenant in this space."""

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
