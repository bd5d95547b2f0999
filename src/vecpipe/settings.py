"""Settings from VECPIPE_* environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MAX_METADATA_DEPTH = 100
"""The deepest metadata a setting may allow: well under what Qdrant Edge can read back."""


class Limits(BaseSettings):
    """Limits on what a caller may send; every one answers with a 4xx JSON error."""

    model_config = SettingsConfigDict(env_prefix="VECPIPE_LIMIT_", extra="ignore")

    max_body_bytes: int = 16 * 1024 * 1024
    max_records_per_batch: int = 1000
    max_text_bytes: int = 1024 * 1024
    max_id_length: int = 512
    max_metadata_bytes: int = 16 * 1024
    # levels of objects and arrays in one record's metadata, the metadata object included
    # ({"a": {"b": 1}} is 2). Qdrant Edge 0.9 cannot read back a point nested 122 levels
    # (its WAL) or 127 (its payload storage): see record_checks.py.
    max_metadata_depth: int = Field(default=32, ge=1, le=MAX_METADATA_DEPTH)
    max_query_bytes: int = 8 * 1024
    max_search_limit: int = 100


class TenantQuota(BaseModel):
    """One tenant's quotas; a field left None takes the server-wide value."""

    model_config = ConfigDict(extra="forbid")

    max_records: int | None = Field(default=None, ge=0)
    ingest_rate: float | None = Field(default=None, ge=0)
    ingest_burst: int | None = Field(default=None, ge=1)


class Quotas(BaseSettings):
    """Per-tenant quotas (0 turns one off); exceeding one answers 429 with Retry-After."""

    model_config = SettingsConfigDict(env_prefix="VECPIPE_QUOTA_", extra="ignore")

    max_records: int = Field(default=0, ge=0)
    ingest_rate: float = Field(default=0.0, ge=0)  # records/s, a token bucket per tenant
    ingest_burst: int = Field(default=1000, ge=1)  # the bucket's size
    tenants: dict[str, TenantQuota] = Field(default_factory=dict)  # JSON: overrides by tenant


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VECPIPE_", extra="ignore")

    data_dir: Path = Path("./.vecpipe")
    store: Literal["edge", "qdrant"] = "edge"
    qdrant_url: str | None = None
    qdrant_api_key: SecretStr | None = None
    queue: Literal["sqlite", "rabbitmq"] = "sqlite"
    rabbitmq_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    rabbitmq_queue: str = "vecpipe"
    database_url: str | None = None
    admin_token: SecretStr | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    secret_key: SecretStr | None = None
    secret_key_old: SecretStr | None = None  # comma-separated keys still accepted (rotation)
    metrics_token: SecretStr | None = None
    gateway_allowlist: str = ""

    default_model: str = "all-MiniLM-L6-v2"
    local_batch_size: int = 16  # bench/README.md §1: less padding, faster per token on CPU
    chunk_overlap_tokens: int = 32
    embed_cache_items: int = 50_000
    breaker_cooldown_seconds: float = 30.0  # a failing provider is skipped this long
    # bench/README.md §1-2: larger calls sort and pad less on the local model and amortize the
    # per-batch store, job and queue work on a gateway (256 x 2: 122x the seed pattern).
    # A worker holds up to 3 batches per loop: mind this x max record size in memory.
    worker_batch_size: int = 256
    worker_concurrency: int = 2
    # `vecpipe worker`'s own /metrics (0: none). Off by default: workers sharing a host
    # would collide on a fixed port, and `serve` already has /metrics on its API.
    worker_metrics_port: int = Field(default=0, ge=0, le=65535)
    worker_metrics_host: str = "127.0.0.1"
    worker_poll_seconds: float = 0.2
    lease_seconds: float = 60.0
    max_attempts: int = 5
    retry_base_seconds: float = 1.0
    retry_max_seconds: float = 300.0
    shutdown_grace_seconds: float = 8.0
    # after a model migration switched, the tenant's old points are kept this long (0: none)
    migration_grace_seconds: float = Field(default=3600.0, ge=0)
    migration_poll_seconds: float = Field(default=5.0, gt=0)
    log_level: str = "INFO"
    # Edge maintenance: optimize a space online once this many of its points are unindexed
    # (0: never; bench/README.md §5), looking every `edge_optimize_poll_seconds`
    edge_optimize_after_points: int = Field(default=10_000, ge=0)
    edge_optimize_poll_seconds: float = Field(default=30.0, gt=0)
    limits: Limits = Field(default_factory=Limits)
    quotas: Quotas = Field(default_factory=Quotas)
    # local model: padded tokens per forward pass (with local_batch_size texts at most), and
    # torch intra-op threads for ingest encodes (0: torch's default, one per core; queries use 1)
    local_batch_tokens: int = Field(default=512, ge=1)
    torch_threads: int = Field(default=0, ge=0)
    # below this much free space under the data dir, writes are refused (507) rather than
    # risk Edge's SIGBUS on a full disk; how 128 MiB was sized: vecpipe/diskspace.py
    min_free_bytes: int = Field(default=128 * 1024 * 1024, ge=0)

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'vecpipe.db'}"

    @property
    def old_secret_keys(self) -> list[str]:
        raw = self.secret_key_old.get_secret_value() if self.secret_key_old else ""
        return [key.strip() for key in raw.split(",") if key.strip()]

    @property
    def allowlisted_gateway_hosts(self) -> frozenset[str]:
        return frozenset(h.strip().lower() for h in self.gateway_allowlist.split(",") if h.strip())
