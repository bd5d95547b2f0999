"""Settings from VECPIPE_* environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Limits(BaseSettings):
    """Limits on what a caller may send; every one answers with a 4xx JSON error."""

    model_config = SettingsConfigDict(env_prefix="VECPIPE_LIMIT_", extra="ignore")

    max_body_bytes: int = 16 * 1024 * 1024
    max_records_per_batch: int = 1000
    max_text_bytes: int = 1024 * 1024
    max_id_length: int = 512
    max_metadata_bytes: int = 16 * 1024
    max_query_bytes: int = 8 * 1024
    max_search_limit: int = 100


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
    gateway_allowlist: str = ""

    default_model: str = "all-MiniLM-L6-v2"
    local_batch_size: int = 64
    chunk_overlap_tokens: int = 32
    embed_cache_items: int = 50_000
    worker_batch_size: int = 64
    worker_concurrency: int = 2
    worker_poll_seconds: float = 0.2
    lease_seconds: float = 60.0
    max_attempts: int = 5
    retry_base_seconds: float = 1.0
    retry_max_seconds: float = 300.0
    shutdown_grace_seconds: float = 8.0
    log_level: str = "INFO"
    limits: Limits = Field(default_factory=Limits)

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'vecpipe.db'}"

    @property
    def allowlisted_gateway_hosts(self) -> frozenset[str]:
        return frozenset(h.strip().lower() for h in self.gateway_allowlist.split(",") if h.strip())
