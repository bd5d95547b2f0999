"""The EdgeStore's two threads: every Edge call runs on one of them, never on the loop.

Measured on qdrant-edge-py 0.9.0: Edge has no async API and each call holds the GIL for its
whole run (a `time.sleep(0.001)` in another thread returned after 83 ms, when a 4096-point
upsert ended; a flush, an fsync, holds it 40-300 ms, more on a busy disk). So calls run on
executor threads and are kept short by the store: upserts, retrieves and deletes go in
batches of 256 (~15-25 ms for 256 points at 384-d); a search is one call of a few ms
(search.py); flushes are group-committed (`EdgeStore.flush`).

Concurrent use of one shard is safe (tests/store/test_edge_concurrency.py: writes, flushes
and reads from several threads at once). Writes (and opens, closes, flushes) run on one write
thread, in the order they were made (a flush made after an upsert covers it); reads on one
read thread, so a search waits for at most the write call in progress (for the GIL), never
for the queue of writes behind it. A read made after a write returned sees it.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from vecpipe.errors import StoreError, VecpipeError
from vecpipe.models import EmbeddingSpace

T = TypeVar("T")

READS = frozenset({"search", "retrieve", "scroll", "count", "facet", "info"})
"""Calls that run on the read thread; every other call runs on the write thread, in order."""


class EdgeThreads:
    def __init__(self) -> None:
        self.writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vecpipe-edge-write")
        self.reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vecpipe-edge-read")

    async def run(self, op: str, space: EmbeddingSpace, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` on the thread for `op`; what Edge raises becomes a StoreError."""
        loop = asyncio.get_running_loop()
        executor = self.reader if op in READS else self.writer
        try:
            return await loop.run_in_executor(executor, functools.partial(fn, *args))
        except VecpipeError:
            raise
        except BaseException as exc:
            # A Rust panic in the engine reaches Python as pyo3's PanicException, a
            # BaseException (e.g. "Payload storage is corrupted"): a store error like any other,
            # not a crash of the request that met it.
            if not isinstance(exc, Exception) and type(exc).__name__ != "PanicException":
                raise
            raise StoreError(f"edge {op} failed in space {space.key}: {_reason(exc)}") from exc

    async def shutdown(self) -> None:
        """Let the calls queued finish, then stop both threads."""
        await asyncio.to_thread(self.reader.shutdown, True)
        await asyncio.to_thread(self.writer.shutdown, True)


def _reason(exc: BaseException) -> str:
    """Edge's own message, first line, bounded: engine errors, not payload content."""
    lines = str(exc).strip().splitlines()
    return (lines[0][:200] if lines else "") or type(exc).__name__
