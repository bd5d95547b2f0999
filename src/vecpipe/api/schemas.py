"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, WithJsonSchema

from vecpipe.models import JSON_INTEGER, Record

if TYPE_CHECKING:
    from vecpipe.db.jobs import JobStatus


FILTER_KEY = r"^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*$"  # store.conditions: dotted names
MAX_FILTER_KEYS = 16
FILTER_INT = 2**53  # exact as a JSON number in any client (and in the OpenAPI document)
FilterKey = Annotated[str, Field(pattern=FILTER_KEY)]
FilterInt = Annotated[int, Field(ge=-FILTER_INT, le=FILTER_INT), JSON_INTEGER]
FilterValue = StrictStr | FilterInt | StrictBool
FilterValues = Annotated[list[StrictStr | FilterInt], Field(min_length=1)]  # any of them
_FILTER_INT_SCHEMA = {"type": "integer", "minimum": -FILTER_INT, "maximum": FILTER_INT}
FILTER_SCHEMA = {  # what pydantic would say, with unknown keys refused as the code does
    "type": "object",
    "maxProperties": MAX_FILTER_KEYS,
    "propertyNames": {"pattern": FILTER_KEY},
    "additionalProperties": {
        "anyOf": [
            {"type": "string"},
            _FILTER_INT_SCHEMA,
            {"type": "boolean"},
            {
                "type": "array",
                "minItems": 1,
                "items": {"anyOf": [{"type": "string"}, _FILTER_INT_SCHEMA]},
            },
        ]
    },
    "description": "metadata key: a value, or a list of values any of which matches",
}
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


class JobAccepted(BaseModel):
    job_id: str
    total: int


class JobResponse(BaseModel):
    job_id: str
    status: Literal["queued", "running", "completed"]
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


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, json_schema_extra={"pattern": NOT_BLANK})
    limit: Annotated[int, Field(ge=1, le=100), JSON_INTEGER] = 10
    # A value keeps its JSON type: `[false]` is refused rather than read as `[0]` (which would
    # match k = 0), and `"1"` never matches 1.
    filter: (
        Annotated[
            dict[FilterKey, FilterValue | FilterValues],
            Field(max_length=MAX_FILTER_KEYS),
            WithJsonSchema(FILTER_SCHEMA),
        ]
        | None
    ) = None


class SearchResult(BaseModel):
    id: str
    score: float
    text: str
    metadata: dict[str, Any]
    chunk: str | None = None


class SearchResponse(BaseModel):
    results: list[SearchResult]


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
