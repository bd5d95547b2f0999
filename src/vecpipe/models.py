"""The data vecpipe moves around: records, chunks, hits and messages.

(A tenant's AI config is the providers' own: providers/config.py.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

TENANT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_TENANT_ID = re.compile(TENANT_ID_PATTERN)
# control characters and lone surrogates (which no valid UTF-8 can carry)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")

MAX_JOB_ID_LENGTH = 128  # vecpipe's job ids are 32 hex digits; a message may name no longer
MAX_VERSION = 2**53  # versions are compared as float64 by Qdrant range filters: exact up to here

TenantId = Annotated[str, Field(pattern=TENANT_ID_PATTERN, examples=["acme"])]


def _json_integer(value: object) -> object:
    """A JSON integer: `5` (or `5.0`, the same JSON number); never `true` or `"5"`, which
    lax validation would read as 1 and 5."""
    if isinstance(value, bool | str | bytes):
        raise ValueError("must be a JSON integer, not a boolean or a string")
    return value


JSON_INTEGER = BeforeValidator(_json_integer)
"""`Annotated[int, Field(<bounds>), JSON_INTEGER]`: an integer as JSON has them, where lax
coercion would mislead. The bounds go before it, or the JSON schema loses them."""
JsonInt = Annotated[int, JSON_INTEGER]


def is_valid_tenant_id(value: str) -> bool:
    return bool(_TENANT_ID.fullmatch(value))


def check_record_id(value: str, max_length: int = 512) -> str:
    """Record ids are any printable text (UUIDs, `jira:PROJ-123`, paths) up to a length."""
    if not value:
        raise ValueError("record id must not be empty")
    if len(value) > max_length:
        raise ValueError(f"record id longer than {max_length} characters")
    if _CONTROL.search(value):
        raise ValueError("record id contains control characters")
    return value


def _iso_time(value: object) -> object:
    """An ISO-8601 string (or a datetime from Python), never a number read as epoch seconds."""
    if isinstance(value, str | datetime):
        return value
    raise ValueError("expires_at is an ISO-8601 date-time string")


class Record(BaseModel):
    """One application record: what the caller sends."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(
        min_length=1, max_length=512, json_schema_extra={"pattern": r"^[^\x00-\x1f\x7f-\x9f]+$"}
    )
    # not blank: the schema says what record_checks refuses (a text str.strip() empties)
    text: str = Field(min_length=1, json_schema_extra={"pattern": r"[^\s\x1c-\x1f]"})
    metadata: dict[str, Any] = Field(default_factory=dict)
    # Writes are conditional on it: an older version never overwrites a newer one. Left out,
    # vecpipe assigns the time it accepted the record (microseconds since the epoch).
    # Strict: `true`, `5.0` or `"5"` is refused, not read as a version.
    version: Annotated[int, Field(ge=0, le=MAX_VERSION), JSON_INTEGER] | None = None
    # ISO-8601; past it the record is invisible to every read, and a sweeper deletes it
    # (core/expiry.py). A time without an offset is UTC.
    expires_at: Annotated[datetime, BeforeValidator(_iso_time)] | None = None

    @field_validator("id")
    @classmethod
    def _printable_id(cls, value: str) -> str:
        return check_record_id(value)

    @field_validator("expires_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def expiry(self) -> float | None:
        """`expires_at` in seconds since the epoch, as the store keeps it."""
        return None if self.expires_at is None else self.expires_at.timestamp()


class SearchHit(BaseModel):
    id: str
    score: float
    text: str
    metadata: dict[str, Any]
    chunk: str | None = None
    chunk_index: int = 0  # of the best chunk, the one `chunk` holds
    mode: str = "dense"  # what found it: dense, keyword or hybrid


@dataclass(frozen=True)
class EmbeddingSpace:
    """Vectors of one model and one dimension, made from texts formatted one way; vectors of
    two spaces never share an index.

    `variant` fingerprints how texts become model inputs when that differs from the model's
    defaults (chunk size and overlap, a title, prefixes: text/formatting.py): "" for
    the defaults. Changing it is changing space, so it re-embeds through a migration.
    """

    model: str
    dimension: int
    variant: str = ""

    @property
    def key(self) -> str:
        """A stable, filesystem- and collection-safe name."""
        slug = re.sub(r"[^A-Za-z0-9]+", "-", self.model).strip("-").lower()
        suffix = f"-{self.variant}" if self.variant else ""
        return f"{slug}-{self.dimension}{suffix}"

    @classmethod
    def from_key(cls, key: str) -> EmbeddingSpace | None:
        """A space with this key (its model spelled as the key's slug), None for a name
        that is no space key: what a store can say of a space it finds on disk."""
        slug, _, dimension = key.rpartition("-")
        if not slug or not dimension.isdigit() or int(dimension) < 1:
            return None
        space = cls(slug, int(dimension))
        return space if space.key == key else None


@dataclass
class ChunkPoint:
    """One chunk of a record, embedded, as written to the store."""

    tenant_id: str
    record_id: str
    chunk_index: int
    chunk_count: int
    chunk_text: str
    record_text: str
    content_hash: str
    metadata: dict[str, Any]
    vector: list[float]
    version: int = 0
    expires_at: float | None = None  # seconds since the epoch


@dataclass
class StoredRecord:
    """What the store knows of a record (read from its first chunk)."""

    tenant_id: str
    record_id: str
    text: str
    metadata: dict[str, Any]
    content_hash: str
    chunk_count: int
    version: int = 0
    expires_at: float | None = None  # seconds since the epoch

    def expiry_time(self) -> datetime | None:
        return None if self.expires_at is None else datetime.fromtimestamp(self.expires_at, UTC)


@dataclass
class BatchResult:
    """The answer to a bulk operation: each record counted in exactly one bucket."""

    upserted: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    not_found: list[str] = field(default_factory=list)  # deletes of ids that were not stored
    failed: dict[str, str] = field(default_factory=dict)


# ---------------------------------------------------------------------------- queue messages


class UpsertMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    v: Literal[1] = 1
    op: Literal["upsert"] = "upsert"
    tenant_id: TenantId
    record: Record
    job_id: str | None = Field(default=None, max_length=MAX_JOB_ID_LENGTH)


class DeleteMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    v: Literal[1] = 1
    op: Literal["delete"] = "delete"
    tenant_id: TenantId
    record_id: str = Field(min_length=1, max_length=512)
    job_id: str | None = Field(default=None, max_length=MAX_JOB_ID_LENGTH)

    @field_validator("record_id")
    @classmethod
    def _printable_id(cls, value: str) -> str:
        return check_record_id(value)


QueueMessage = Annotated[UpsertMessage | DeleteMessage, Field(discriminator="op")]
