"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from vecpipe.models import Record


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


class EmbeddingsRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    input: str | list[str]
    model: str
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None
    user: str | None = None
