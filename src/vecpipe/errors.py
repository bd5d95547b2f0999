"""The one exception tree of vecpipe.

    VecpipeError
    ├── ConfigError              settings or a stored config that cannot work (startup errors)
    ├── ValidationError          bad input from a caller: 4xx, never retried
    │   └── LimitExceeded        a size or count limit (HTTP 413/422)
    │       ├── QuotaExceeded    a tenant's quota is used up for now (HTTP 429, Retry-After)
    │       └── ContextLengthExceeded  an input over the model's token limit (limit, count)
    ├── NotFound                 a tenant, record or job that does not exist (HTTP 404)
    ├── Conflict                 conflicts with the current state (HTTP 409)
    │   └── TenantOffboarding    a write for a tenant whose offboarding runs (HTTP 409)
    ├── AuthError                missing or invalid token (HTTP 401)
    │   └── Forbidden            authenticated, but the route needs the admin token (HTTP 403)
    ├── ProviderError            an embedding provider failed
    │   ├── TransientProviderError   worth retrying: 429, 5xx, timeout, connection
    │   └── BadProviderResponse      wrong count, wrong dimension, non-finite numbers
    ├── StoreError               the vector store failed (retryable: nothing was acknowledged)
    │   └── StorageFull          the data dir's disk is below its free-space floor (HTTP 507)
    ├── StoreLocked              another process owns the data dir (its pid and the ways out)
    ├── QueueError               the queue failed (publish not confirmed, broker gone)
    ├── Overloaded               busy right now (too many request bodies in flight): 503
    └── ClosedError              a resource used after it was closed

`retryable` says whether the same work may succeed later without a change of input.
Messages never contain secrets: callers build them from names, never from credentials.
"""

from __future__ import annotations


class VecpipeError(Exception):
    code = "internal_error"
    retryable = False
    param: str | None = None  # the request field it is about, where one is (OpenAI's `param`)

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(VecpipeError):
    code = "config_error"


class ValidationError(VecpipeError):
    code = "invalid_request"


class LimitExceeded(ValidationError):
    code = "limit_exceeded"


class QuotaExceeded(LimitExceeded):
    """A tenant's quota is used up for now; `retry_after` seconds until it may fit."""

    code = "quota_exceeded"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ContextLengthExceeded(LimitExceeded):
    """An input longer than the model reads, which one vector cannot hold (records are
    chunked instead). `limit` and `requested` are tokens, special tokens included; OpenAI's
    wording, which clients (LiteLLM) recognise as a context-window error."""

    code = "context_length_exceeded"

    def __init__(self, limit: int, requested: int, index: int | None = None) -> None:
        which = "" if index is None else f" (input {index})"
        super().__init__(
            f"This model's maximum context length is {limit} tokens, however you requested "
            f"{requested} tokens{which}. Please reduce the length of the input."
        )
        self.limit = limit
        self.requested = requested
        self.index = index
        self.param = "input"


class NotFound(VecpipeError):
    code = "not_found"


class Conflict(VecpipeError):
    code = "conflict"


class TenantOffboarding(Conflict):
    """A write for a tenant being offboarded (DELETE /v1/tenants/{t} running, or cut short
    by a crash and not yet repeated): refused, nothing written."""

    code = "tenant_offboarding"


class AuthError(VecpipeError):
    code = "unauthorized"


class Forbidden(AuthError):
    """Authenticated, but this route needs the admin token."""

    code = "forbidden"


class ProviderError(VecpipeError):
    code = "provider_error"


class TransientProviderError(ProviderError):
    code = "provider_unavailable"
    retryable = True

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BadProviderResponse(ProviderError):
    code = "bad_provider_response"


class StoreError(VecpipeError):
    code = "store_error"
    retryable = True


class StorageFull(StoreError):
    """The disk under the data dir is below the free-space floor: writes are refused (never
    half made) until space is back; reads go on. `retry_after` seconds before trying again."""

    code = "insufficient_storage"

    def __init__(self, message: str, retry_after: float = 30.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StoreLocked(VecpipeError):
    """Another process holds the data dir's lock: only that process may open its store,
    database and queue. `holder_pid` is that process's pid when it could be read."""

    code = "data_dir_locked"

    def __init__(self, message: str, holder_pid: int | None = None) -> None:
        super().__init__(message)
        self.holder_pid = holder_pid


class QueueError(VecpipeError):
    code = "queue_error"
    retryable = True


class Overloaded(VecpipeError):
    """The server is busy right now (e.g. too many request bodies in flight); nothing was
    done, and the same request may succeed in `retry_after` seconds (HTTP 503)."""

    code = "overloaded"
    retryable = True

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ClosedError(VecpipeError):
    code = "closed"
