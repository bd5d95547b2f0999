"""Scrape-time observation: the state gauges, refreshed from each part when /metrics is read.

The API's /metrics and a worker's own (worker/metrics_server.py) both answer with
`scrape()`. It first sets the gauges that describe state by asking each part through its
own methods — `queue.depth()`, `queue.dead_letter_count()`,
`database.jobs.counts_by_state()`, `providers.breaker_states()` — then renders every
instrument of metrics.py. A new gauge of that kind is one instrument there and one line in
`refresh()` here, over a method of the part that knows the answer.

A part that fails is logged and its gauge left at its last value: a scrape answers even
while a backend is down. Dead letters and job counts are read at most every
SLOW_REFRESH_SECONDS per queue: on a busy broker or a large jobs table they cost more than
a scrape every few seconds should.

`scrape_allowed` is the metrics-token check both servers apply.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from vecpipe import metrics
from vecpipe.resources import Resources
from vecpipe.secrets import bearer_token, same_secret
from vecpipe.settings import Settings

# the logger these lines always had (they were metrics.py's): log filters keep working
log = logging.getLogger("vecpipe.metrics")

CONTENT_TYPE = CONTENT_TYPE_LATEST
SLOW_REFRESH_SECONDS = 15.0  # dead letters and job counts: at most this often per queue

_last_slow_refresh: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()


async def scrape(resources: Resources) -> bytes:
    """Every metric in Prometheus' text format, the state gauges fresh."""
    await refresh(resources)
    return generate_latest()


async def refresh(resources: Resources) -> None:
    """Set the state gauges; a part that fails is logged and left at its last value."""
    await _guarded("circuit breakers", lambda: _refresh_breakers(resources))
    await _guarded("queue depth", lambda: _refresh_depth(resources))
    now = time.monotonic()
    if now - _last_slow_refresh.get(resources.queue, -SLOW_REFRESH_SECONDS) < SLOW_REFRESH_SECONDS:
        return
    _last_slow_refresh[resources.queue] = now
    await _guarded("dead letters", lambda: _refresh_dead_letters(resources))
    await _guarded("jobs", lambda: _refresh_jobs(resources))


def scrape_allowed(settings: Settings, authorization: str | None) -> bool:
    """Whether a /metrics request with this Authorization header may be answered: with
    VECPIPE_METRICS_TOKEN set, it must present that token or the admin token."""
    if settings.metrics_token is None:
        return True
    presented = bearer_token(authorization)
    accepted = [t.get_secret_value() for t in (settings.metrics_token, settings.admin_token) if t]
    return presented is not None and any([same_secret(presented, token) for token in accepted])


async def _guarded(part: str, read: Callable[[], Awaitable[None]]) -> None:
    try:
        await read()
    except Exception as exc:  # a scrape must answer even when a backend is down
        log.warning("metrics: could not read %s (%s)", part, type(exc).__name__)


async def _refresh_breakers(resources: Resources) -> None:
    metrics.set_breaker_states(resources.providers.breaker_states())


async def _refresh_depth(resources: Resources) -> None:
    metrics.QUEUE_DEPTH.set(await resources.queue.depth())


async def _refresh_dead_letters(resources: Resources) -> None:
    metrics.DEAD_LETTER_DEPTH.set(await resources.queue.dead_letter_count())


async def _refresh_jobs(resources: Resources) -> None:
    for state, count in (await resources.database.jobs.counts_by_state()).items():
        metrics.JOBS.labels(state).set(count)
