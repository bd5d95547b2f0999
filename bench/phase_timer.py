"""Where a run spends its time: wall seconds per public coroutine method of the parts.

`PhaseTimer.wrap(obj, "store")` replaces, on that instance only, every public coroutine
method with a timed one. Calls made concurrently (several worker loops) each count their own
wall time, waiting for the loop, the GIL or the store's thread included: the figures say
where batches wait, not CPU time.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections import defaultdict
from typing import Any


class PhaseTimer:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    def wrap(self, obj: Any, label: str) -> None:
        target = getattr(obj, "_store", obj)  # see through a metrics proxy for the names
        for name in dir(type(target)):
            if name.startswith("_"):
                continue
            method = getattr(obj, name, None)
            if inspect.iscoroutinefunction(method):
                setattr(obj, name, self._timed(method, f"{label}.{name}"))

    def _timed(self, method: Any, key: str) -> Any:
        @functools.wraps(method)
        async def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await method(*args, **kwargs)
            finally:
                self.seconds[key] += time.perf_counter() - started
                self.calls[key] += 1

        return timed

    def reset(self) -> None:
        self.seconds.clear()
        self.calls.clear()

    def report(self, top: int = 12) -> list[dict[str, Any]]:
        ranked = sorted(self.seconds.items(), key=lambda kv: -kv[1])[:top]
        return [
            {
                "op": key,
                "seconds": round(seconds, 3),
                "calls": self.calls[key],
                "ms_per_call": round(1000 * seconds / self.calls[key], 2),
            }
            for key, seconds in ranked
        ]
