"""QdrantStore: the VectorStore on a Qdrant server or cluster, through qdrant-client.

One collection per embedding space (`<prefix><space.key>`, cosine, collections.py), with the
payload layout of `payload.py` shared with the Edge adapter, so both stores answer alike (see
tests/store/test_congruence.py). Tenancy is payload partitioning: a `tenant_id` keyword
index with `is_tenant=True`, and every read, write and delete carries the tenant condition.
Conditions compile to qdrant-client filters in filters.py; writes go through versioned.py.

Durability: every write is sent with `wait=True`, so it returns only once Qdrant has applied
it (written to its WAL); `flush()` has nothing left to do.

The client is `AsyncQdrantClient`; it is created on first use (on the running loop) unless a
ready one is handed in, and the store owns it either way: `aclose()` lets the calls in flight
finish, then awaits `client.close()`. qdrant-client's local mode (`location=":memory:"` or a
directory) speaks the same API and serves the tests; it is brute force and runs on the loop
thread, so it is for tests only.

Errors from qdrant-client or httpx become `StoreError` (retryable); their messages are
bounded and never carry the API key.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import qdrant_edge as qe
from pydantic import SecretStr
from qdrant_client import AsyncQdrantClient, models

from vecpipe.errors import (
    ClosedError,
    ConfigError,
    NotFound,
    StoreError,
    ValidationError,
    VecpipeError,
)
from vecpipe.lifecycle import AsyncResource
from vecpipe.models import ChunkPoint, EmbeddingSpace, SearchHit, StoredRecord
from vecpipe.store import sparse
from vecpipe.store.batching import batched, write_batches
from vecpipe.store.conditions import (
    Condition,
    chunk_zeros,
    facet_scope,
    for_tenant,
    meta,
    not_newer_than,
    record_heads,
    visible,
)
from vecpipe.store.facets import facet_counts
from vecpipe.store.grouping import ChunkHit, search_records
from vecpipe.store.payload import (
    RECORD_ID,
    SEARCH_FIELDS,
    TENANT_ID,
    belongs_to,
    chunk_payload,
    stored_record,
)
from vecpipe.store.point_ids import point_id, point_id_of
from vecpipe.store.qdrant.client import ClientFactory, client_factory, describe_target
from vecpipe.store.qdrant.collections import (
    PAYLOAD_INDEXES,
    check_vector_params,
    has_keyword_index,
    sparse_params,
    vector_params,
)
from vecpipe.store.qdrant.errors import describe_error, is_not_found
from vecpipe.store.qdrant.filters import compile_filter
from vecpipe.store.query import NO_KEYWORD_INDEX, SearchQuery, mmr_candidates
from vecpipe.store.sparse import DENSE_VECTOR, SPARSE_VECTOR
from vecpipe.store.vectors import checked_vector
from vecpipe.store.versioned import VersionedWriter
from vecpipe.store.writes import WriteBatch, WriteResult

if TYPE_CHECKING:
    from vecpipe.settings import Settings

BATCH_SIZE = 256
"""Points per upsert request, ids per retrieve or delete request."""

_INDEX_KINDS = {
    "keyword": models.PayloadSchemaType.KEYWORD,
    "float": models.PayloadSchemaType.FLOAT,
}

MAX_TENANTS = 1_000_000
"""Tenants `tenants()` lists per space at most (a facet needs a limit)."""

DEFAULT_TIMEOUT_SECONDS = 10
_PREFIX = re.compile(r"^[A-Za-z0-9_-]*$")


class QdrantStore(AsyncResource):
    """A Qdrant server through qdrant-client; use as `async with QdrantStore(url=...) as store`.

    Give exactly one of: `client` (a ready `AsyncQdrantClient`, or a zero-argument factory
    called on first use), `url` (with `api_key`, `timeout` in seconds and further
    `client_options` for `AsyncQdrantClient`, e.g. `prefer_grpc`), or `location`
    (qdrant-client's local mode: `":memory:"` or a directory, for tests). The store owns and
    closes the client.
    """

    def __init__(
        self,
        client: AsyncQdrantClient | ClientFactory | None = None,
        *,
        url: str | None = None,
        api_key: SecretStr | str | None = None,
        location: str | Path | None = None,
        timeout: int = DEFAULT_TIMEOUT_SECONDS,
        client_options: Mapping[str, Any] | None = None,
        collection_prefix: str = "vecpipe_",
    ) -> None:
        if sum(given is not None for given in (client, url, location)) != 1:
            raise ConfigError("QdrantStore needs exactly one of client, url or location")
        if url is None and (api_key is not None or client_options):
            raise ConfigError("api_key and client_options go with url")
        if not _PREFIX.match(collection_prefix):
            raise ConfigError("collection_prefix may hold only letters, digits, '_' and '-'")
        secret = SecretStr(api_key) if isinstance(api_key, str) else api_key
        self._secret = secret.get_secret_value() if secret is not None else ""
        self._target = describe_target(client, url, location)
        self._client: AsyncQdrantClient | None = None
        if isinstance(client, AsyncQdrantClient):
            self._client = client
        options = {"timeout": timeout, **(client_options or {})}
        self._factory = client_factory(client, url, secret, location, options)
        self._prefix = collection_prefix
        self._known: set[str] = set()
        self._keyword: set[str] = set()  # collections holding BM25 vectors (collections.py)
        self._indexed: dict[tuple[str, str], str] = {}  # (collection, path): index kind
        self._locks: dict[str, asyncio.Lock] = {}
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._closed = False
        self._versioned = VersionedWriter(self, sole_writer=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> QdrantStore:
        """From `VECPIPE_QDRANT_URL` and `VECPIPE_QDRANT_API_KEY`."""
        if not settings.qdrant_url:
            raise ConfigError("VECPIPE_QDRANT_URL is required when VECPIPE_STORE=qdrant")
        return cls(url=settings.qdrant_url, api_key=settings.qdrant_api_key)

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"collections={sorted(self._known)}"
        return f"QdrantStore({self._target}, prefix={self._prefix!r}, {state})"

    def collection_name(self, space: EmbeddingSpace) -> str:
        return self._prefix + space.key

    # ------------------------------------------------------------------------ the protocol

    async def ensure_space(self, space: EmbeddingSpace) -> None:
        await self._collection(space)

    async def write(self, space: EmbeddingSpace, batch: WriteBatch) -> WriteResult:
        """Through versioned.py; other processes may write the same records (a cluster
        serves many workers), so every record written is re-read and cleaned up after."""
        self._check_open()
        return await self._versioned.write(space, batch)

    async def stored_records(
        self, space: EmbeddingSpace, tenant_id: str, record_ids: Sequence[str]
    ) -> dict[str, StoredRecord]:
        self._check_open()
        wanted = list(dict.fromkeys(record_ids))
        if not wanted:
            return {}
        name = await self._collection(space)
        payloads = await self._chunk_zeros(name, tenant_id, wanted, None)
        return {record_id: stored_record(p) for record_id, p in payloads.items()}

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
        self._check_open()
        name = await self._collection(space)
        scope = for_tenant if include_expired else visible
        async with self._using("scroll", name) as client:
            points, cursor = await client.scroll(
                name,
                scroll_filter=compile_filter(scope(tenant_id, record_heads(where))),
                limit=limit,
                offset=after,
                with_payload=True,
                with_vectors=False,
            )
        found = [
            stored_record(point.payload)
            for point in points
            if point.payload and belongs_to(point.payload, tenant_id)
        ]
        return found, None if cursor is None else str(cursor)

    async def search(self, space: EmbeddingSpace, query: SearchQuery) -> list[SearchHit]:
        self._check_open()
        flt = compile_filter(query.condition())
        name = await self._collection(space)
        vector: list[float] | None = None
        if query.like is not None:
            vector = await self._like_vector(name, query.tenant_id, query.like)
        elif query.mode != "keyword":
            vector = query.dense_vector(space.dimension)
        if query.mode != "dense" and name not in self._keyword:
            raise ValidationError(NO_KEYWORD_INDEX)
        words = _sparse(sparse.query(query.text)) if query.text is not None else None

        async def query_chunks(fetch: int) -> list[ChunkHit]:
            ask = _engine_query(query, vector, words, flt, fetch)
            async with self._using("query", name) as client:
                response = await client.query_points(
                    name,
                    query_filter=flt,
                    limit=fetch,
                    with_payload=list(SEARCH_FIELDS),
                    with_vectors=False,
                    score_threshold=query.score_threshold,
                    **ask,
                )
            return [ChunkHit(point.score, point.payload or {}) for point in response.points]

        async def fetch_chunk_zero(record_ids: Sequence[str]) -> dict[str, Mapping[str, Any]]:
            return await self._chunk_zeros(name, query.tenant_id, record_ids, SEARCH_FIELDS)

        return await search_records(
            query_chunks,
            fetch_chunk_zero,
            query.tenant_id,
            query.limit,
            query.offset,
            query.mode,
            query.diversity > 0,
            later_chunk_penalty=query.later_chunk_penalty,
        )

    async def count(self, space: EmbeddingSpace, tenant_id: str | None = None) -> int:
        self._check_open()
        where = for_tenant(tenant_id) if tenant_id is not None else None
        return await self._count(space, where)

    async def count_records(
        self, space: EmbeddingSpace, tenant_id: str, where: Condition | None = None
    ) -> int:
        self._check_open()
        return await self._count(space, visible(tenant_id, record_heads(where)))

    async def tenants(self, space: EmbeddingSpace) -> dict[str, int]:
        self._check_open()
        name = await self._collection(space)
        async with self._using("facet", name) as client:
            response = await client.facet(
                name,
                TENANT_ID,
                facet_filter=compile_filter(chunk_zeros()),
                limit=MAX_TENANTS,
                exact=True,
            )
        return {str(hit.value): hit.count for hit in response.hits}

    async def delete_tenant(self, space: EmbeddingSpace, tenant_id: str) -> None:
        self._check_open()
        name = await self._collection(space)
        await self._delete_where(name, compile_filter(for_tenant(tenant_id)))

    async def delete_records(self, space: EmbeddingSpace, tenant_id: str, where: Condition) -> int:
        self._check_open()
        doomed = await self._count(space, for_tenant(tenant_id, record_heads(where)))
        if doomed:
            name = await self._collection(space)
            await self._delete_where(name, compile_filter(for_tenant(tenant_id, where)))
        return doomed

    async def facets(
        self,
        space: EmbeddingSpace,
        tenant_id: str,
        keys: Sequence[str],
        where: Condition | None = None,
        top: int = 10,
    ) -> dict[str, list[tuple[str, int]]]:
        self._check_open()
        flt = compile_filter(facet_scope(tenant_id, where))
        name = await self._collection(space)

        async def keyword_indexed(key: str, path: str) -> bool:
            await self.ensure_payload_index(space, key, "keyword")
            return self._indexed.get((name, path)) == "keyword"

        async def count_values(path: str) -> Iterable[tuple[str, int]]:
            async with self._using("facet", name) as client:
                response = await client.facet(name, path, facet_filter=flt, limit=top, exact=True)
            return [(str(hit.value), hit.count) for hit in response.hits]

        return await facet_counts(keys, keyword_indexed, count_values)

    async def ensure_payload_index(self, space: EmbeddingSpace, key: str, kind: str) -> None:
        self._check_open()
        schema = _INDEX_KINDS.get(kind)
        if schema is None:
            raise ValidationError(f"no {kind!r} payload index: {', '.join(_INDEX_KINDS)}")
        path = meta(key).path
        name = await self._collection(space)
        if (name, path) in self._indexed:
            return
        async with self._using("open", name) as client:
            info = await client.get_collection(name)
        existing = info.payload_schema.get(path)
        if existing is None:
            async with self._using("create index", name) as client:
                await client.create_payload_index(name, path, schema, wait=True)
        elif existing.data_type != models.PayloadSchemaType.KEYWORD:
            kind = "float"  # indexed already, not as a keyword: the first kind asked wins
        self._indexed[(name, path)] = kind

    # ------------------------------------------------------------------------ versioned.py's

    async def upsert_chunks(self, space: EmbeddingSpace, points: Sequence[ChunkPoint]) -> None:
        self._check_open()
        for point in points:  # every vector checked before anything is written
            checked_vector(point.vector, space.dimension)
        if not points:
            return
        name = await self._collection(space)
        for version, batch in write_batches(points, BATCH_SIZE):
            dense = [checked_vector(p.vector, space.dimension) for p in batch]
            vectors: models.BatchVectorStruct = dense
            if name in self._keyword:
                words = [_sparse(sparse.document(p.chunk_text)) for p in batch]
                vectors = {DENSE_VECTOR: list(dense), SPARSE_VECTOR: list(words)}
            rows = models.Batch(
                ids=[point_id_of(p) for p in batch],
                vectors=vectors,
                payloads=[chunk_payload(p) for p in batch],
            )
            only_older = compile_filter(not_newer_than(version))
            async with self._using("upsert", name) as client:
                await client.upsert(name, rows, wait=True, update_filter=only_older)

    async def delete_where(
        self, space: EmbeddingSpace, tenant_id: str, where: Condition, *, weight: int = 1
    ) -> None:
        self._check_open()
        name = await self._collection(space)
        await self._delete_where(name, compile_filter(for_tenant(tenant_id, where)))

    async def set_payload_where(
        self, space: EmbeddingSpace, tenant_id: str, where: Condition, payload: Mapping[str, Any]
    ) -> None:
        self._check_open()
        name = await self._collection(space)
        selector = models.FilterSelector(filter=compile_filter(for_tenant(tenant_id, where)))
        # No `key`: a top-level key is replaced whole. With key="metadata" Qdrant would merge
        # into the stored object and keep the keys the new metadata no longer has.
        async with self._using("set_payload", name) as client:
            await client.set_payload(name, dict(payload), selector, wait=True)

    async def flush(self, space: EmbeddingSpace) -> None:
        """Nothing to do: every write was sent with wait=True and applied before it returned."""
        self._check_open()

    async def check_ready(self) -> None:
        self._check_open()
        async with self._using("", failure="qdrant unreachable") as client:
            await client.get_collections()

    async def aclose(self) -> None:
        """Refuse new calls, let the calls in flight finish, close the client."""
        if self._closed:
            return
        self._closed = True
        await self._idle.wait()
        client, self._client = self._client, None
        if client is not None:
            try:
                await client.close()
            except Exception as exc:
                raise StoreError(f"qdrant close failed: {self._reason(exc)}") from exc

    # ------------------------------------------------------------------------ collections

    async def _collection(self, space: EmbeddingSpace) -> str:
        """The space's collection, created with its payload indexes on first use."""
        self._check_open()
        name = self.collection_name(space)
        if name in self._known:
            return name
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            if name not in self._known:
                await self._create_collection(name, space)
                self._known.add(name)
        return name

    async def _create_collection(self, name: str, space: EmbeddingSpace) -> None:
        """Create the collection unless it exists; another process may create it meanwhile."""
        if not await self._exists(name):
            params = vector_params(space.dimension)
            try:
                async with self._using("create", name) as client:
                    await client.create_collection(
                        name, vectors_config=params, sparse_vectors_config=sparse_params()
                    )
            except StoreError:
                if not await self._exists(name):
                    raise
        async with self._using("open", name) as client:
            info = await client.get_collection(name)
        check_vector_params(name, info, space.dimension)
        if has_keyword_index(info):
            self._keyword.add(name)
        for field, schema in PAYLOAD_INDEXES.items():
            if field not in info.payload_schema:
                async with self._using("create index", name) as client:
                    await client.create_payload_index(name, field, schema, wait=True)

    async def _count(self, space: EmbeddingSpace, where: Condition | None) -> int:
        name = await self._collection(space)
        flt = compile_filter(where) if where is not None else None
        async with self._using("count", name) as client:
            result = await client.count(name, count_filter=flt, exact=True)
        return result.count

    async def _exists(self, name: str) -> bool:
        async with self._using("open", name) as client:
            return await client.collection_exists(name)

    # ------------------------------------------------------------------------ internals

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError("the qdrant store is closed")

    async def _chunk_zeros(
        self,
        name: str,
        tenant_id: str,
        record_ids: Sequence[str],
        fields: Sequence[str] | None,
    ) -> dict[str, Mapping[str, Any]]:
        """Chunk 0 payloads of these records, by record id; other tenants' points dropped."""
        found: dict[str, Mapping[str, Any]] = {}
        wanted = set(record_ids)
        selector: bool | list[str] = list(fields) if fields is not None else True
        for batch in batched(record_ids, BATCH_SIZE):
            ids: list[models.ExtendedPointId] = [point_id(tenant_id, rid, 0) for rid in batch]
            async with self._using("retrieve", name) as client:
                points = await client.retrieve(name, ids, with_payload=selector, with_vectors=False)
            for point in points:
                payload = point.payload
                record_id = payload.get(RECORD_ID) if payload else None
                if payload and belongs_to(payload, tenant_id) and record_id in wanted:
                    found[str(record_id)] = payload
        return found

    async def _like_vector(self, name: str, tenant_id: str, record_id: str) -> list[float]:
        """The vector of the tenant's record's chunk 0, which a `like` query searches with."""
        ids: list[models.ExtendedPointId] = [point_id(tenant_id, record_id, 0)]
        async with self._using("retrieve", name) as client:
            points = await client.retrieve(
                name, ids, with_payload=[TENANT_ID, RECORD_ID], with_vectors=True
            )
        for point in points:
            payload, stored = point.payload, point.vector
            mine = belongs_to(payload, tenant_id) and payload and payload[RECORD_ID] == record_id
            vector = stored.get(DENSE_VECTOR) if isinstance(stored, dict) else stored
            if mine and isinstance(vector, list):
                return [float(v) for v in vector if isinstance(v, int | float)]
        raise NotFound(f"record not found in tenant {tenant_id}")

    async def _delete_where(self, name: str, flt: models.Filter) -> None:
        selector = models.FilterSelector(filter=flt)
        async with self._using("delete", name) as client:
            await client.delete(name, selector, wait=True)

    @asynccontextmanager
    async def _using(
        self, op: str, name: str | None = None, failure: str | None = None
    ) -> AsyncIterator[AsyncQdrantClient]:
        """The client for one call, counted in flight for `aclose()`; errors become StoreError.

        The error reads `<failure>: <reason>`, by default `qdrant <op> failed on collection ...`.
        """
        self._check_open()
        client = self._get_client()
        self._in_flight += 1
        self._idle.clear()
        try:
            yield client
        except VecpipeError:
            raise
        except Exception as exc:
            if name is not None and is_not_found(exc):
                self._known.discard(name)  # deleted behind our back: recreate on next use
            if failure is None:
                where = f" on collection {name}" if name is not None else ""
                failure = f"qdrant {op} failed{where}"
            raise StoreError(f"{failure}: {self._reason(exc)}") from exc
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    def _get_client(self) -> AsyncQdrantClient:
        if self._client is None:
            try:
                self._client = self._factory()
            except Exception as exc:
                raise ConfigError(f"cannot set up the qdrant client: {self._reason(exc)}") from exc
        return self._client

    def _reason(self, exc: BaseException) -> str:
        """What went wrong, one bounded line, with the API key scrubbed should it appear."""
        return describe_error(exc, self._secret)

    async def spaces(self) -> list[EmbeddingSpace]:
        self._check_open()
        async with self._using("list collections") as client:
            response = await client.get_collections()
        found = []
        for collection in response.collections:
            if collection.name.startswith(self._prefix):
                space = EmbeddingSpace.from_key(collection.name[len(self._prefix) :])
                if space is not None:
                    found.append(space)
        return sorted(found, key=lambda space: space.key)


def _sparse(vector: qe.SparseVector) -> models.SparseVector:
    return models.SparseVector(indices=list(vector.indices), values=list(vector.values))


def _engine_query(
    query: SearchQuery,
    vector: list[float] | None,
    words: models.SparseVector | None,
    flt: models.Filter,
    fetch: int,
) -> dict[str, Any]:
    """The mode's query_points arguments: nearest dense, nearest BM25, or RRF over both."""
    if query.mode == "dense" or words is None:
        if query.diversity and vector is not None:
            mmr = models.Mmr(diversity=query.diversity, candidates_limit=mmr_candidates(fetch))
            return {"query": models.NearestQuery(nearest=vector, mmr=mmr)}
        return {"query": vector}
    if query.mode == "keyword" or vector is None:
        return {"query": words, "using": SPARSE_VECTOR}
    prefetch = [
        models.Prefetch(query=vector, filter=flt, limit=fetch),
        models.Prefetch(query=words, using=SPARSE_VECTOR, filter=flt, limit=fetch),
    ]
    return {"prefetch": prefetch, "query": models.RrfQuery(rrf=models.Rrf(k=query.fusion_k))}
