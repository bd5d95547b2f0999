"""Work in flight per key, and waiting until a key has none (one event loop).

The write gate counts a tenant's HTTP writes (api/write_gate.py), the migration runner its
pages of a tenant's records (core/reindex.py); an offboarding waits for both to end. Each
counts a piece of work *before* it checks whether it may run, so that a waiter that has
made it impossible and then waits for `idle` cannot miss one that checked just before.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator


class InFlight:
    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._changed = asyncio.Condition()

    def count(self, key: str) -> int:
        return self._counts[key]

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        """Counted as in flight for `key` while the block runs."""
        self._counts[key] += 1
        try:
            yield
        finally:
            self._counts[key] -= 1
            if not self._counts[key]:
                del self._counts[key]
                async with self._changed:
                    self._changed.notify_all()

    async def idle(self, key: str) -> None:
        """Return once nothing is in flight for `key`."""
        async with self._changed:
            await self._changed.wait_for(lambda: not self._counts[key])
