"""Prometheus metrics. Labels carry tenant ids (validated alphabet) and provider names only."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECORDS = Counter(
    "vecpipe_records_total", "Records processed, by outcome", ["tenant", "outcome", "path"]
)
DEAD_LETTERS = Counter("vecpipe_dead_letters_total", "Messages dead-lettered")
RETRIES = Counter("vecpipe_retries_total", "Messages given back for a delayed retry")
EMBED_SECONDS = Histogram(
    "vecpipe_embed_seconds",
    "Time to embed one batch",
    ["provider"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
EMBED_BATCH = Histogram(
    "vecpipe_embed_batch_size",
    "Texts per provider call",
    ["provider"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
)
PROVIDER_TEXTS = Counter(
    "vecpipe_provider_texts_total", "Texts embedded, by provider", ["provider"]
)
QUEUE_DEPTH = Gauge("vecpipe_queue_depth", "Messages waiting or in flight")
SEARCH_SECONDS = Histogram(
    "vecpipe_search_seconds",
    "Search latency, query embedding included",
    buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2),
)


def count_outcomes(tenant_id: str, statuses: list[str], path: str) -> None:
    for status in set(statuses):
        RECORDS.labels(tenant=tenant_id, outcome=status, path=path).inc(statuses.count(status))
