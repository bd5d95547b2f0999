"""qdrant-client request pieces for `QdrantStore`: collection schema and filters.

The payload layout and the filter semantics are those of `payload.py`, shared with the Edge
adapter (`edge_shard.py` builds the same filters from Qdrant Edge's types).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from qdrant_client import models

from vecpipe.errors import ConfigError
from vecpipe.store.payload import (
    CHUNK_INDEX,
    RECORD_ID,
    TENANT_ID,
    VERSION,
    FilterValue,
    MetadataMatch,
)

PAYLOAD_INDEXES: dict[str, models.KeywordIndexParams | models.IntegerIndexParams] = {
    TENANT_ID: models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD, is_tenant=True),
    RECORD_ID: models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD),
    CHUNK_INDEX: models.IntegerIndexParams(
        type=models.IntegerIndexType.INTEGER, lookup=True, range=True
    ),
}
"""Indexes every collection gets; `tenant_id` co-locates each tenant's points (is_tenant)."""


def vector_params(dimension: int) -> models.VectorParams:
    return models.VectorParams(size=dimension, distance=models.Distance.COSINE)


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


def tenant_filter(tenant_id: str, *conditions: models.Condition) -> models.Filter:
    return models.Filter(must=[_equals(TENANT_ID, tenant_id), *conditions])


def chunk_zeros_filter(tenant_id: str) -> models.Filter:
    return tenant_filter(tenant_id, _equals(CHUNK_INDEX, 0))


def records_filter(tenant_id: str, record_ids: Sequence[str]) -> models.Filter:
    any_record = models.FieldCondition(key=RECORD_ID, match=models.MatchAny(any=list(record_ids)))
    return tenant_filter(tenant_id, any_record)


def chunks_from_filter(
    tenant_id: str, record_id: str, first_chunk: int, version: int
) -> models.Filter:
    """The record's chunks whose index is >= first_chunk, of versions up to `version`."""
    return tenant_filter(
        tenant_id,
        _equals(RECORD_ID, record_id),
        models.FieldCondition(key=CHUNK_INDEX, range=models.Range(gte=first_chunk)),
        not_newer_than(version),
    )


def not_newer_than(version: int) -> models.Filter:
    """Points written before versions existed have none: they count as oldest."""
    return models.Filter(
        should=[
            models.IsEmptyCondition(is_empty=models.PayloadField(key=VERSION)),
            models.FieldCondition(key=VERSION, range=models.Range(lte=version)),
        ]
    )


def older_versions_filter(tenant_id: str, versions: Mapping[str, int]) -> models.Filter:
    """Points of each named record whose version is older than the one given for it."""
    per_record: list[models.Condition] = [
        models.Filter(
            must=[_equals(RECORD_ID, record_id)],
            should=[
                models.IsEmptyCondition(is_empty=models.PayloadField(key=VERSION)),
                models.FieldCondition(key=VERSION, range=models.Range(lt=version)),
            ],
        )
        for record_id, version in versions.items()
    ]
    return tenant_filter(tenant_id, models.Filter(should=per_record))


def record_version_filter(tenant_id: str, record_id: str, version: int) -> models.Filter:
    exactly = models.FieldCondition(key=VERSION, range=models.Range(gte=version, lte=version))
    return tenant_filter(tenant_id, _equals(RECORD_ID, record_id), exactly)


def record_filter(tenant_id: str, record_id: str, *conditions: models.Condition) -> models.Filter:
    return tenant_filter(tenant_id, _equals(RECORD_ID, record_id), *conditions)


def search_filter(tenant_id: str, matches: Sequence[MetadataMatch]) -> models.Filter:
    return tenant_filter(tenant_id, *(_metadata_condition(match) for match in matches))


def _equals(key: str, value: FilterValue) -> models.FieldCondition:
    return models.FieldCondition(key=key, match=models.MatchValue(value=value))


def _metadata_condition(match: MetadataMatch) -> models.Condition:
    """One value: equality. Several: any of them (MatchAny takes strings or integers only)."""
    if len(match.values) == 1:
        return _equals(match.path, match.values[0])
    strings = [value for value in match.values if isinstance(value, str)]
    integers = [v for v in match.values if isinstance(v, int) and not isinstance(v, bool)]
    booleans = sorted({value for value in match.values if isinstance(value, bool)})
    any_of: list[models.Condition] = [_equals(match.path, value) for value in booleans]
    if strings:
        any_of.append(models.FieldCondition(key=match.path, match=models.MatchAny(any=strings)))
    if integers:
        any_of.append(models.FieldCondition(key=match.path, match=models.MatchAny(any=integers)))
    return any_of[0] if len(any_of) == 1 else models.Filter(should=any_of)
