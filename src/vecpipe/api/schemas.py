"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from vecpipe.models import Record

if TYPE_CHECKING:
    from vecpipe.db.jobs import JobStatus


class RecordsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    upsert: list[Record] = Field(default_factory=list)
    delete: list[str] = Field(default_factory=list)


class FailedRecord(BaseModel):
    id: str
    error: str


class RecordsResponse(BaseModel):
    upserted: int
    unchanged: int
    deleted: int
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
    done: int
    unchanged: int
    failed: int
    failures: list[FailedRecord]
    tenant_id: str | None = None
    created_at: datetime | None = None
    # progress: seconds since submission and records/s over them while the job runs (queue
    # wait included), and the seconds left at that rate; None where they mean nothing
    elapsed_seconds: float | None = None
    rate: float | None = None
    eta_seconds: float | None = None

    @classmethod
    def from_status(cls, status: JobStatus, now: datetime | None = None) -> JobResponse:
        counted = status.done + status.unchanged + status.failed
        elapsed = max(0.0, ((now or datetime.now(UTC)) - status.created_at).total_seconds())
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
            failed=status.failed,
            failures=[FailedRecord(id=f["id"], error=f["error"] or "") for f in status.failures],
            tenant_id=status.tenant_id,
            created_at=status.created_at,
            elapsed_seconds=None if status.status == "completed" else round(elapsed, 3),
            rate=None if rate is None else round(rate, 3),
            eta_seconds=None if eta is None else round(eta, 1),
        )


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1)
    limit: int = Field(default=10, ge=1, le=100)
    filter: dict[str, str | int | bool | list[str | int]] | None = None


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
TokenIds = Annotated[list[Annotated[StrictInt, Field(ge=0)]], Field(min_length=1)]


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
    dimensions: StrictInt | None = Field(default=None, ge=1)
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
