"""Prometheus instruments: the events vecpipe counts, and the gauges of its state.

Labels carry tenant ids (the validated alphabet, anything else becomes "invalid") and
provider names (`local:<model>`, `openai:<host>/<model>`) only: never a record id, a text,
a URL's credentials or a key. Counters and histograms are updated where things happen
(core/ingest, providers/chain, worker, api routes); gauges describing state (queue depth,
dead letters, circuit breakers, jobs) are set when `/metrics` is scraped, by
`vecpipe.observe`, which asks each part. A leaf module: it imports no part of vecpipe.
"""

from __future__ import annotations

import functools
import inspect
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, cast

from prometheus_client import Counter, Gauge, Histogram

from vecpipe.models import TENANT_ID_PATTERN

T = TypeVar("T")

_TENANT = re.compile(TENANT_ID_PATTERN)
_PROVIDER_MAX = 160
NO_PROVIDER = "none"
UNKNOWN_TENANT = "unknown"
BREAKER_VALUES = {"closed": 0, "half_open": 1, "open": 2}

RECORDS = Counter(
    "vecpipe_records",
    "Record operations applied, by outcome (upserted|unchanged|deleted|not_found|failed)",
    ["tenant", "provider", "outcome"],
)
DEAD_LETTERS = Counter(
    "vecpipe_dead_letters", "Messages dead-lettered by the worker", ["tenant", "provider"]
)
RETRIES = Counter("vecpipe_retries", "Messages given back for a delayed retry", ["tenant"])
WORKER_BATCHES = Counter("vecpipe_worker_batches", "Micro-batches handled by the worker")
EMBED_SECONDS = Histogram(
    "vecpipe_embed_seconds",
    "Time of one successful provider call",
    ["provider"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
EMBED_BATCH = Histogram(
    "vecpipe_embed_batch_size",
    "Texts per successful provider call",
    ["provider"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
)
PROVIDER_TEXTS = Counter("vecpipe_provider_texts", "Texts embedded, by provider", ["provider"])
PROVIDER_FAILURES = Counter("vecpipe_provider_failures", "Provider calls that failed", ["provider"])
FALLBACKS = Counter(
    "vecpipe_fallbacks",
    "Provider calls served by a fallback (labelled with the fallback that served)",
    ["provider"],
)
BREAKER_STATE = Gauge(
    "vecpipe_circuit_breaker_state",
    "Circuit breaker of each open provider: 0 closed, 1 half-open, 2 open",
    ["provider"],
)
STORE_SECONDS = Histogram(
    "vecpipe_store_seconds",
    "Vector store call latency, by operation",
    ["op"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
QUEUE_DEPTH = Gauge("vecpipe_queue_depth", "Messages waiting or in flight")
IN_FLIGHT = Gauge("vecpipe_in_flight", "Messages this process's worker is processing")
DEAD_LETTER_DEPTH = Gauge("vecpipe_dead_letter_depth", "Dead letters waiting")
JOBS = Gauge("vecpipe_jobs", "Jobs by state (queued|running|completed)", ["state"])
JOBS_SUBMITTED = Counter("vecpipe_jobs_submitted", "Jobs submitted over HTTP", ["tenant"])
LIFECYCLE = Counter(
    "vecpipe_lifecycle_records",
    "Records touched by lifecycle operations (listed|deleted_by_filter|offboarded|expired|"
    "synced|synced_dry_run|synced_as_job|synced_deleted|dropped_after_offboarding)",
    ["tenant", "op"],
)
SEARCHES = Counter("vecpipe_searches", "Searches served", ["tenant"])
SEARCH_SECONDS = Histogram(
    "vecpipe_search_seconds",
    "Search latency, query embedding included",
    buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2),
)


def tenant_label(tenant_id: str | None) -> str:
    if not tenant_id:
        return UNKNOWN_TENANT
    return tenant_id if _TENANT.match(tenant_id) else "invalid"


def provider_label(name: str | None) -> str:
    return (name or NO_PROVIDER)[:_PROVIDER_MAX]


def count_records(tenant_id: str, provider: str | None, outcome: str, n: int = 1) -> None:
    if n:
        RECORDS.labels(tenant_label(tenant_id), provider_label(provider), outcome).inc(n)


def count_lifecycle(tenant_id: str, op: str, n: int = 1) -> None:
    if n:
        LIFECYCLE.labels(tenant_label(tenant_id), op).inc(n)


@contextmanager
def store_timer(op: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        STORE_SECONDS.labels(op).observe(time.perf_counter() - started)


class _TimedStore:
    """Times each coroutine method of the wrapped store: store_seconds{op=<method name>}."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def __repr__(self) -> str:
        return f"timed({self._store!r})"

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        if not inspect.iscoroutinefunction(attr):
            return attr

        @functools.wraps(attr)
        async def timed(*args: Any, **kwargs: Any) -> Any:
            with store_timer(name):
                return await attr(*args, **kwargs)

        return timed


def timed_store(store: T) -> T:
    return cast(T, _TimedStore(store))


def set_breaker_states(states: dict[str, str]) -> None:
    """Replace every breaker series: providers no longer open disappear from the scrape."""
    BREAKER_STATE.clear()
    for name, state in states.items():
        BREAKER_STATE.labels(provider_label(name)).set(BREAKER_VALUES.get(state, 0))
