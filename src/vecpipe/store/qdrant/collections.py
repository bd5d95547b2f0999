"""The collection schema of `QdrantStore`: one collection per embedding space, cosine, with
the payload indexes of the shared layout (payload.py)."""

from __future__ import annotations

from qdrant_client import models

from vecpipe.errors import ConfigError
from vecpipe.store.payload import CHUNK_INDEX, EXPIRES_AT, RECORD_ID, TENANT_ID
from vecpipe.store.sparse import SPARSE_VECTOR

PAYLOAD_INDEXES: dict[
    str, models.KeywordIndexParams | models.IntegerIndexParams | models.FloatIndexParams
] = {
    TENANT_ID: models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD, is_tenant=True),
    RECORD_ID: models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD),
    CHUNK_INDEX: models.IntegerIndexParams(
        type=models.IntegerIndexType.INTEGER, lookup=True, range=True
    ),
    EXPIRES_AT: models.FloatIndexParams(type=models.FloatIndexType.FLOAT),
}
"""Indexes every collection gets; `tenant_id` co-locates each tenant's points (is_tenant)."""


def vector_params(dimension: int) -> models.VectorParams:
    return models.VectorParams(size=dimension, distance=models.Distance.COSINE)


def sparse_params() -> dict[str, models.SparseVectorParams]:
    """BM25 vectors (store/sparse.py), weighed by the server's IDF at query time."""
    return {SPARSE_VECTOR: models.SparseVectorParams(modifier=models.Modifier.IDF)}


def has_keyword_index(info: models.CollectionInfo) -> bool:
    """Whether the collection holds BM25 vectors (collections made before do not)."""
    return SPARSE_VECTOR in (info.config.params.sparse_vectors or {})


def check_vector_params(name: str, info: models.CollectionInfo, dimension: int) -> None:
    """Refuse an existing collection whose vectors are not those of the space."""
    vectors = info.config.params.vectors
    if not isinstance(vectors, models.VectorParams):
        raise ConfigError(f"collection {name} exists with named vectors, not one vector")
    if vectors.size != dimension or vectors.distance != models.Distance.COSINE:
        raise ConfigError(
            f"collection {name} exists with {vectors.size}-d {vectors.distance.value} vectors, "
            f"the space needs {dimension}-d Cosine"
        )
