"""Keep the garbage collector off what lives for the whole process.

CPython's full (oldest generation) collection walks every tracked object. A vecpipe process
holds hundreds of thousands of long-lived ones (FastAPI, pydantic, SQLAlchemy, the openai
client; with a local model, torch and transformers too), so each full collection, set off
by the allocations of ordinary request handling, stopped the event loop for 250-450 ms:
measured under gateway bulk ingest (2 clients x 500 records), /healthz p99 237 ms, max
317 ms, the loop stuck inside one allocating line while every other thread idled. Frozen
after start-up (`gc.freeze`: the objects alive then move to a permanent generation that
collections skip), the same run gave p99 24.5 ms, max 47 ms, and 8 % more records/s.
Objects made later are collected as usual; frozen ones are never freed, so this runs once
start-up garbage is collected.

The young generation is then collected every 10,000 net allocations of tracked objects,
not CPython's 700: a worker batch keeps thousands of objects alive for milliseconds (its
messages, records, points, payloads), so at 700 each collection walked them, promoted them
and walked them again in the older generations. Measured (bench/gateway_cpu.py, the same
tree alternated, two runs of two rounds each): main thread 144 -> 124 us a gateway record
(medians), process CPU 288 -> 268 us, collector time over the run 630 -> 275-340 ms. A young
collection of 10,000 objects takes about a millisecond.
"""

from __future__ import annotations

import gc

YOUNG_COLLECTION_EVERY = 10_000
"""Net allocations of tracked objects between young-generation collections (CPython: 700)."""


def freeze_long_lived() -> None:
    """Collect, then move everything alive now out of the collector's sight. Call it once
    a process has loaded what it keeps (resources open, model loaded); calling it again
    later (another model loaded) freezes what was added since. Also sets the young
    generation's threshold (YOUNG_COLLECTION_EVERY); the older generations keep theirs."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_EVERY, older, oldest)
