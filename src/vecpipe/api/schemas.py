"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, WithJsonSchema

from vecpipe.core.search import MAX_FACET_TOP, MAX_FACETS, MAX_SEARCH_OFFSET
from vecpipe.models import JSON_INTEGER, Record

if TYPE_CHECKING:
    from vecpipe.db.jobs import JobStatus


FILTER_KEY = r"^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*$"  # store.conditions: dotted names
MAX_FILTER_KEYS = 16  # core/filters.py: keys per object, filters per $and/$or
MAX_FILTER_VALUES = 256
MAX_FILTER_BRANCHES = 64  # filters per $and/$or list
FILTER_INT = 2**53  # exact as a JSON number in any client (and in the OpenAPI document)
_FILTER_INT_SCHEMA = {"type": "integer", "minimum": -FILTER_INT, "maximum": FILTER_INT}
_FILTER_SCALAR = {"anyOf": [{"type": "string"}, _FILTER_INT_SCHEMA, {"type": "boolean"}]}
_FILTER_LIST = {
    "type": "array",
    "minItems": 1,
    "maxItems": MAX_FILTER_VALUES,
    "items": _FILTER_SCALAR,
}
_FILTER_BOUND = {"anyOf": [{"type": "number"}, {"type": "string", "format": "date-time"}]}
_FILTER_OPERATORS = {
    "type": "object",
    "minProperties": 1,
    "additionalProperties": False,
    "properties": {
        "$eq": _FILTER_SCALAR,
        "$ne": _FILTER_SCALAR,
        "$in": _FILTER_LIST,
        "$nin": _FILTER_LIST,
        "$gt": _FILTER_BOUND,
        "$gte": _FILTER_BOUND,
        "$lt": _FILTER_BOUND,
        "$lte": _FILTER_BOUND,
        "$exists": {"type": "boolean"},
        "$text": {"type": "string", "minLength": 1, "maxLength": 256},
    },
}
_FILTER_NESTED = {"type": "object", "minProperties": 1, "maxProperties": MAX_FILTER_KEYS}
_FILTER_LOGIC = {
    "type": "array",
    "minItems": 1,
    "maxItems": MAX_FILTER_BRANCHES,
    "items": _FILTER_NESTED,
}
FILTER_SCHEMA = {  # the language of core/filters.py, one level deep (nested filters: objects)
    "type": "object",
    "maxProperties": MAX_FILTER_KEYS,
    "propertyNames": {"anyOf": [{"pattern": FILTER_KEY}, {"enum": ["$and", "$or", "$not"]}]},
    "properties": {
        "$and": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_FILTER_KEYS,
            "items": _FILTER_NESTED,
        },
        "$or": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_FILTER_KEYS,
            "items": _FILTER_NESTED,
        },
        "$not": _FILTER_NESTED,
    },
    "additionalProperties": {"anyOf": [_FILTER_SCALAR, _FILTER_LIST, _FILTER_OPERATORS]},
    "description": (
        "metadata key (dotted path; `id` is the record id): a value, a list of values any of "
        "which matches, or operators ($eq $ne $in $nin $gt $gte $lt $lte $exists $text); "
        "$and/$or take lists of filters, $not a filter. Ranges take numbers or ISO-8601 "
        "datetimes. See docs/search.md."
    ),
}
FilterObject = Annotated[dict[str, Any], WithJsonSchema(FILTER_SCHEMA)]
# models.check_record_id: 1-512 characters, no control characters
RecordIdText = Annotated[
    str,
    Field(min_length=1, max_length=512, json_schema_extra={"pattern": r"^[^\x00-\x1f\x7f-\x9f]+$"}),
]
NOT_BLANK = r"[^\s\x1c-\x1f]"  # some character str.strip() keeps: what "not blank" checks


class RecordsRequest(BaseModel):
    # at least one record or id (limits.check_records_request refuses an empty request)
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "anyOf": [
                {"required": ["upsert"], "properties": {"upsert": {"minItems": 1}}},
                {"required": ["delete"], "properties": {"delete": {"minItems": 1}}},
            ]
        },
    )

    upsert: list[Record] = Field(default_factory=list)
    delete: list[RecordIdText] = Field(
        default_factory=list, json_schema_extra={"uniqueItems": True}
    )


class FailedRecord(BaseModel):
    id: str
    error: str


class RecordsResponse(BaseModel):
    upserted: int = Field(description="records written (new, or text or metadata changed)")
    unchanged: int = Field(
        description="upserts stored as sent already, or superseded by a newer version"
    )
    deleted: int = Field(description="deletes that removed a stored record")
    not_found: int = Field(description="deletes of ids that were not stored: nothing to do")
    failed: list[FailedRecord]


class RecordResponse(BaseModel):
    id: str
    text: str
    metadata: dict[str, Any]
    chunks: int
    content_hash: str


FILTER_ANY_SCHEMA = {
    "type": "object",
    "maxProperties": MAX_FILTER_KEYS,
    "description": "a filter in the filter language of searches (see docs/search.md)",
}
AnyFilter = Annotated[
    dict[str, Any], Field(max_length=MAX_FILTER_KEYS), WithJsonSchema(FILTER_ANY_SCHEMA)
]


class ListedRecord(BaseModel):
    id: str
    metadata: dict[str, Any]
    version: int
    text: str | None = None
    expires_at: datetime | None = None


class RecordsPage(BaseModel):
    records: list[ListedRecord]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null: last")


class CountRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filter: AnyFilter | None = None


class CountResponse(BaseModel):
    records: int


class DeleteByFilterRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filter: AnyFilter = Field(description="required and not empty: nothing selects every record")
    dry_run: StrictBool = False


class DeleteByFilterResponse(BaseModel):
    deleted: int = Field(description="records deleted (with dry_run: that would be)")
    dry_run: bool


class SyncRequest(BaseModel):
    """The complete set of records that should exist (under `scope`, when given)."""

    model_config = ConfigDict(extra="forbid")

    records: list[Record] = Field(description="every record that should exist; may be empty")
    scope: AnyFilter | None = Field(
        default=None, description="only stored records this filter selects may be deleted"
    )
    dry_run: StrictBool = False
    sample: Annotated[int, Field(ge=0, le=1000), JSON_INTEGER] = 10


class DriftCounts(BaseModel):
    missing: int
    changed: int
    unchanged: int
    extra: int


class DriftSample(BaseModel):
    missing: list[str]
    changed: list[str]
    unchanged: list[str]
    extra: list[str]


class SyncResponse(BaseModel):
    dry_run: bool
    counts: DriftCounts = Field(description="missing and changed are upserted, extra deleted")
    sample: DriftSample = Field(description="the first `sample` ids of each kind")
    failed: list[FailedRecord]
    failed_count: int


class JobAccepted(BaseModel):
    job_id: str
    total: int


class SyncJobAccepted(BaseModel):
    """A sync queued as a job (`job=true`): its drift, and the writes it queued."""

    job_id: str
    total: int = Field(description="records queued: missing + changed (upserts) + extra")
    counts: DriftCounts
    sample: DriftSample


class SyncJobProgress(BaseModel):
    """A sync job's drift, and whether all its messages were queued (core/sync_job.py)."""

    state: Literal["publishing", "published", "interrupted"] = Field(
        description="interrupted: the call that queued it died before its last message; "
        "what was queued is applied, run the sync again for the rest"
    )
    counts: DriftCounts
    sample: DriftSample


class JobResponse(BaseModel):
    job_id: str
    status: Literal["queued", "running", "completed", "failed"] = Field(
        description="failed: a sync job whose queuing was interrupted (`sync.state`)"
    )
    total: int
    done: int = Field(description="records this job wrote or deleted")
    unchanged: int = Field(
        description="upserts stored as sent before the job, or superseded by a newer version"
    )
    not_found: int = Field(description="deletes of ids that were not stored: nothing to do")
    failed: int
    failures: list[FailedRecord]
    tenant_id: str | None = None
    created_at: datetime | None = None
    finished_at: datetime | None = None
    # progress: seconds from submission to now (to completion, once completed), records/s
    # over them while the job runs (queue wait included), and the seconds left at that rate;
    # None where they mean nothing
    elapsed_seconds: float | None = None
    rate: float | None = None
    eta_seconds: float | None = None
    sync: SyncJobProgress | None = Field(
        default=None, description="a sync job's drift (GET of one job; None for other jobs)"
    )

    @classmethod
    def from_status(cls, status: JobStatus, now: datetime | None = None) -> JobResponse:
        counted = status.done + status.unchanged + status.not_found + status.failed
        until = status.finished_at or now or datetime.now(UTC)
        elapsed = max(0.0, (until - status.created_at).total_seconds())
        known = status.status != "completed" or status.finished_at is not None
        rate = eta = None
        if status.status == "running" and elapsed > 0:
            rate = counted / elapsed
            eta = (status.total - counted) / rate
        elif status.status == "completed":
            eta = 0.0
        return cls(
            job_id=status.job_id,
            status=status.status,
            total=status.total,
            done=status.done,
            unchanged=status.unchanged,
            not_found=status.not_found,
            failed=status.failed,
            failures=[FailedRecord(id=f["id"], error=f["error"] or "") for f in status.failures],
            tenant_id=status.tenant_id,
            created_at=status.created_at,
            finished_at=status.finished_at,
            elapsed_seconds=round(elapsed, 3) if known else None,
            rate=None if rate is None else round(rate, 3),
            eta_seconds=None if eta is None else round(eta, 1),
        )


SEARCH_FIELDS = ("text", "metadata", "chunk")
FacetKey = Annotated[str, Field(pattern=FILTER_KEY, max_length=256)]
MAX_QUERY_DIMENSION = 8192


class LikeRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    record_id: RecordIdText


class SearchRequest(BaseModel):
    """One of `query` (a text), `vector` (a query vector of the tenant's space) or `like`
    (a stored record: more like it, itself left out)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "oneOf": [{"required": ["query"]}, {"required": ["vector"]}, {"required": ["like"]}]
        },
    )

    query: str | None = Field(default=None, min_length=1, json_schema_extra={"pattern": NOT_BLANK})
    vector: list[float] | None = Field(default=None, min_length=1, max_length=MAX_QUERY_DIMENSION)
    like: LikeRecord | None = None
    limit: Annotated[int, Field(ge=1, le=100), JSON_INTEGER] = 10
    offset: Annotated[int, Field(ge=0, le=MAX_SEARCH_OFFSET), JSON_INTEGER] = 0
    # dense: the query's embedding; keyword: BM25 over the texts; hybrid: both, fused by RRF
    mode: Literal["dense", "keyword", "hybrid"] = "dense"
    # RRF's k (score: sum of 1 / (k + rank)); higher lets each list's tail count more
    fusion_k: Annotated[int, Field(ge=1, le=1000), JSON_INTEGER] = 60
    # MMR over dense candidates: 0 off, 1 novelty alone; hits keep their relevance score
    diversity: float = Field(default=0.0, ge=0.0, le=1.0)
    # metadata keys to count records per (string) value of, under the same filter: top N each
    facets: list[FacetKey] | None = Field(default=None, min_length=1, max_length=MAX_FACETS)
    facet_top: Annotated[int, Field(ge=1, le=MAX_FACET_TOP), JSON_INTEGER] = 10
    score_threshold: float | None = None
    # which of a hit's text, metadata and chunk to return (id, score, chunk_index, mode always)
    fields: list[Literal["text", "metadata", "chunk"]] | None = Field(
        default=None, json_schema_extra={"uniqueItems": True}
    )
    # Parsed by core/filters.py, which refuses what the schema cannot say (422 naming where).
    # A value keeps its JSON type: `false` never matches 0, and `"1"` never matches 1.
    filter: FilterObject | None = None


class SearchResult(BaseModel):
    id: str
    score: float
    chunk_index: int
    mode: Literal["dense", "keyword", "hybrid"]
    text: str | None = None  # absent when `fields` leaves it out
    metadata: dict[str, Any] | None = None
    chunk: str | None = None

    @classmethod
    def of(cls, hit: Any, fields: Sequence[str] | None) -> SearchResult:
        wanted = SEARCH_FIELDS if fields is None else fields
        kept = {name: getattr(hit, name) for name in SEARCH_FIELDS if name in wanted}
        return cls(id=hit.id, score=hit.score, chunk_index=hit.chunk_index, mode=hit.mode, **kept)


class FacetCount(BaseModel):
    value: str
    count: int


class SearchResponse(BaseModel):
    results: list[SearchResult]
    # per key asked for in `facets`: records per value, most first
    facets: dict[str, list[FacetCount]] | None = None


class AIConfigResponse(BaseModel):
    tenant_id: str
    configured: bool
    space: dict[str, Any] | None
    config: dict[str, Any]
    # the latest model migration (state, spaces, progress); `space` is the one searched
    migration: dict[str, Any] | None = None


MAX_EMBEDDING_INPUTS = 2048  # OpenAI's limit per request

EmbeddingText = Annotated[str, Field(min_length=1)]
CL100K_IDS = {  # cl100k_base's ids: 0-100256 and its five special tokens (api/token_input.py)
    "type": "integer",
    "minimum": 0,
    "maximum": 100276,
    "not": {"type": "integer", "minimum": 100261, "maximum": 100275},
}
TokenIds = Annotated[
    list[Annotated[int, Field(ge=0), JSON_INTEGER, WithJsonSchema(CL100K_IDS)]],
    Field(min_length=1),
]


class EmbeddingsRequest(BaseModel):
    """OpenAI's request. `input`: a text, texts, token ids (cl100k_base: api/token_input.py)
    or lists of them; at most 2048 inputs, none empty."""

    model_config = ConfigDict(extra="ignore")

    input: (
        EmbeddingText
        | Annotated[list[EmbeddingText], Field(min_length=1, max_length=MAX_EMBEDDING_INPUTS)]
        | TokenIds
        | Annotated[list[TokenIds], Field(min_length=1, max_length=MAX_EMBEDDING_INPUTS)]
    )
    model: str = Field(min_length=1)
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: Annotated[int, Field(ge=1), JSON_INTEGER] | None = None
    user: str | None = None


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str = Field(description="floats, or base64 of little-endian float32")


class EmbeddingsUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingsResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingsUsage
