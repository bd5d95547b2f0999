"""Settings from VECPIPE_* environment variables, each checked against its range when read.

A value that cannot work (a batch of 0, a negative limit, port 99999, an empty admin
token) is refused when the settings are read, before anything starts: `read_settings`
turns the refusal into one ConfigError line that names the variable and what it must be
(the CLI prints it and exits 2). Ranges follow each setting's use: counts and limits are at
least 1, intervals the code sleeps or leases for are over 0, and 0 is accepted only where
it means something documented (off, none, no wait).
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from vecpipe.errors import ConfigError

MIN_TOKEN_LENGTH = 16
LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")

MAX_METADATA_DEPTH = 100
"""The deepest metadata a setting may allow: well under what Qdrant Edge can read back."""


class Limits(BaseSettings):
    """Limits on what a caller may send; every one answers with a 4xx JSON error."""

    model_config = SettingsConfigDict(
        env_prefix="VECPIPE_LIMIT_", extra="ignore", hide_input_in_errors=True
    )

    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1)
    # all request bodies received and not yet answered; past it, 503 with Retry-After
    max_inflight_body_bytes: int = Field(default=64 * 1024 * 1024, ge=1)
    # a JSON-lines sync body (POST /v1/tenants/{t}/sync, application/x-ndjson): streamed to a
    # temporary file as it arrives, never held in memory whole (api/ndjson.py)
    max_sync_stream_bytes: int = Field(default=512 * 1024 * 1024, ge=1)
    max_records_per_batch: int = Field(default=1000, ge=1)
    max_text_bytes: int = Field(default=1024 * 1024, ge=1)
    max_id_length: int = Field(default=512, ge=1)
    max_metadata_bytes: int = Field(default=16 * 1024, ge=1)
    # levels of objects and arrays in one record's metadata, the metadata object included
    # ({"a": {"b": 1}} is 2). Qdrant Edge 0.9 cannot read back a point nested 122 levels
    # (its WAL) or 127 (its payload storage): see record_checks.py.
    max_metadata_depth: int = Field(default=32, ge=1, le=MAX_METADATA_DEPTH)
    max_query_bytes: int = Field(default=8 * 1024, ge=1)
    max_search_limit: int = Field(default=100, ge=1)

    @field_validator("max_inflight_body_bytes")
    @classmethod
    def _room_for_one_body(cls, value: int, info: ValidationInfo) -> int:
        largest = info.data.get("max_body_bytes")
        if largest is not None and value < largest:
            raise ValueError(
                f"must be at least VECPIPE_LIMIT_MAX_BODY_BYTES ({largest}), "
                "or a body of the largest size could never be received"
            )
        return value


class TenantQuota(BaseModel):
    """One tenant's quotas; a field left None takes the server-wide value."""

    model_config = ConfigDict(extra="forbid")

    max_records: int | None = Field(default=None, ge=0)
    ingest_rate: float | None = Field(default=None, ge=0)
    ingest_burst: int | None = Field(default=None, ge=1)


class Quotas(BaseSettings):
    """Per-tenant quotas (0 turns one off); exceeding one answers 429 with Retry-After."""

    model_config = SettingsConfigDict(
        env_prefix="VECPIPE_QUOTA_", extra="ignore", hide_input_in_errors=True
    )

    max_records: int = Field(default=0, ge=0)
    ingest_rate: float = Field(default=0.0, ge=0)  # records/s, a token bucket per tenant
    ingest_burst: int = Field(default=1000, ge=1)  # the bucket's size
    tenants: dict[str, TenantQuota] = Field(default_factory=dict)  # JSON: overrides by tenant


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="VECPIPE_", extra="ignore", hide_input_in_errors=True
    )

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
    port: int = Field(default=8000, ge=1, le=65535)
    secret_key: SecretStr | None = None
    secret_key_old: SecretStr | None = None  # comma-separated keys still accepted (rotation)
    metrics_token: SecretStr | None = None
    gateway_allowlist: str = ""

    default_model: str = Field(default="all-MiniLM-L6-v2", min_length=1)
    # bench/README.md §1: less padding, faster per token on CPU
    local_batch_size: int = Field(default=16, ge=1)
    chunk_overlap_tokens: int = Field(default=32, ge=0)
    embed_cache_items: int = Field(default=50_000, ge=0)  # 0: no cache
    # a failing provider is skipped this long (0: probed again on the next call)
    breaker_cooldown_seconds: float = Field(default=30.0, ge=0)
    # bench/README.md §1-2: larger calls sort and pad less on the local model and amortize the
    # per-batch store, job and queue work on a gateway (256 x 2: 122x the seed pattern).
    # A worker holds up to 3 batches per loop: mind this x max record size in memory.
    worker_batch_size: int = Field(default=256, ge=1)
    worker_concurrency: int = Field(default=2, ge=1)
    # `vecpipe worker`'s own /metrics (0: none). Off by default: workers sharing a host
    # would collide on a fixed port, and `serve` already has /metrics on its API.
    worker_metrics_port: int = Field(default=0, ge=0, le=65535)
    worker_metrics_host: str = "127.0.0.1"
    worker_poll_seconds: float = Field(default=0.2, gt=0)
    lease_seconds: float = Field(default=60.0, gt=0)
    max_attempts: int = Field(default=5, ge=1)
    retry_base_seconds: float = Field(default=1.0, gt=0)  # 0 would retry in a hot loop
    retry_max_seconds: float = Field(default=300.0, gt=0)
    shutdown_grace_seconds: float = Field(default=8.0, ge=0)  # 0: release in-flight work at once
    # after a model migration switched, the tenant's old points are kept this long (0: none)
    migration_grace_seconds: float = Field(default=3600.0, ge=0)
    migration_poll_seconds: float = Field(default=5.0, gt=0)
    # how often expired records are deleted (core/expiry.py); 0: never (they stay invisible)
    expiry_sweep_seconds: float = Field(default=60.0, ge=0)
    log_level: str = "INFO"
    # Edge maintenance: optimize a space online once this many of its points are unindexed
    # (0: never; bench/README.md §5), looking every `edge_optimize_poll_seconds`
    edge_optimize_after_points: int = Field(default=10_000, ge=0)
    edge_optimize_poll_seconds: float = Field(default=30.0, gt=0)
    limits: Limits = Field(default_factory=Limits)
    quotas: Quotas = Field(default_factory=Quotas)
    # local model: padded tokens per forward pass (with local_batch_size texts at most; None:
    # the backend's own, providers/local_backend.py), and torch intra-op threads for ingest
    # encodes (0: torch's default, one per core; queries use 1)
    local_batch_tokens: int | None = Field(default=None, ge=1)
    torch_threads: int = Field(default=0, ge=0)
    # below this much free space under the data dir, writes are refused (507) rather than
    # risk Edge's SIGBUS on a full disk; how 128 MiB was sized: vecpipe/diskspace.py
    min_free_bytes: int = Field(default=128 * 1024 * 1024, ge=0)

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @field_validator("admin_token", "metrics_token")
    @classmethod
    def _strong_token(cls, value: SecretStr | None) -> SecretStr | None:
        """Set means usable: an empty token would count as set and lock every client out."""
        if value is None:
            return None
        token = value.get_secret_value()
        if not token:
            raise ValueError(f"must be at least {MIN_TOKEN_LENGTH} characters (it is empty)")
        if token != token.strip():
            raise ValueError("must not start or end with spaces (bearer tokens are trimmed)")
        if len(token) < MIN_TOKEN_LENGTH:
            raise ValueError(f"must be at least {MIN_TOKEN_LENGTH} characters")
        return value

    @field_validator("secret_key")
    @classmethod
    def _secret_key_set(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            raise ValueError("must not be empty (unset it instead)")
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.upper() not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)} (got {value!r})")
        return value.upper()

    @field_validator("retry_max_seconds")
    @classmethod
    def _cap_above_base(cls, value: float, info: ValidationInfo) -> float:
        base = info.data.get("retry_base_seconds")
        if base is not None and value < base:
            raise ValueError(f"must be at least VECPIPE_RETRY_BASE_SECONDS ({base:g})")
        return value

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


# Errors whose input is a number or a choice, never a secret: the message may repeat it.
_ECHOED_ERRORS = frozenset(
    {
        "int_parsing",
        "int_from_float",
        "float_parsing",
        "bool_parsing",
        "finite_number",
        "greater_than",
        "greater_than_equal",
        "less_than",
        "less_than_equal",
        "literal_error",
    }
)

_BOUNDS = {
    "greater_than_equal": "must be at least {ge}",
    "greater_than": "must be more than {gt}",
    "less_than_equal": "must be at most {le}",
    "less_than": "must be less than {lt}",
}

_BOUND_KEYS = ("ge", "gt", "le", "lt")


def read_settings(flags: Mapping[str, tuple[str, object]] | None = None) -> Settings:
    """Settings from the environment, with `flags` ({field: (option name, value)}) over them.

    Every value out of its range is collected into one ConfigError line: "VECPIPE_PORT must
    be less than or equal to 65535 (got 99999); VECPIPE_MAX_ATTEMPTS must be ...".
    """
    flags = flags or {}
    problems: list[str] = []
    parts: dict[str, object] = {}
    for field, part in (("limits", Limits), ("quotas", Quotas)):
        try:
            parts[field] = part()
        except (ValidationError, SettingsError) as exc:
            problems.extend(_describe(exc, part, {}))
            parts[field] = part.model_construct()  # defaults, to check the rest
    overrides = {field: value for field, (_, value) in flags.items()}
    try:
        settings = Settings(**parts, **overrides)  # type: ignore[arg-type]
    except (ValidationError, SettingsError) as exc:
        names = {field: name for field, (name, _) in flags.items()}
        problems.extend(_describe(exc, Settings, names))
    if problems:
        raise ConfigError("; ".join(problems))
    return settings


def _describe(
    exc: ValidationError | SettingsError, model: type[BaseSettings], names: Mapping[str, str]
) -> list[str]:
    prefix = str(model.model_config.get("env_prefix", ""))
    if isinstance(exc, SettingsError):  # a JSON setting that is not JSON
        field = str(exc).split('"')[1] if str(exc).count('"') >= 2 else "?"
        return [f"{prefix}{field.upper()} must be valid JSON"]
    problems = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        field = loc[0] if loc else ""
        name = names.get(field) or f"{prefix}{field.upper()}"
        if len(loc) > 1:
            name += f" ({'.'.join(loc[1:])})"
        bounds = {k: f"{v:g}" for k, v in error.get("ctx", {}).items() if k in _BOUND_KEYS}
        message = _BOUNDS.get(error["type"], "").format(**bounds)
        if not message:
            message = error["msg"].removeprefix("Value error, ")
            message = message.replace("Input should be ", "must be ", 1)
        if error["type"] in _ECHOED_ERRORS:
            message += f" (got {error['input']!r})"
        problems.append(f"{name} {message}")
    return problems


def check_data_dir(settings: Settings) -> None:
    """The data dir is a directory (made if missing) this process may list and write in.

    Checked before anything opens it, so an unreadable or read-only dir is one line naming
    VECPIPE_DATA_DIR rather than a traceback from SQLite or the store, seconds later.
    """
    path = settings.data_dir
    try:
        if path.exists() and not path.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "not a directory")
        path.mkdir(parents=True, exist_ok=True)
        with os.scandir(path):
            pass
        with tempfile.TemporaryFile(dir=path):  # unnamed where the filesystem allows
            pass
    except OSError as exc:
        reason = (exc.strerror or type(exc).__name__).lower()
        raise ConfigError(
            f"VECPIPE_DATA_DIR {path} must be a directory this process can read and write: {reason}"
        ) from None
