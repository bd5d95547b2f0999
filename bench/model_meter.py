"""How busy the local model is: wraps `SentenceTransformer.encode` on the shared instance."""

from __future__ import annotations

import threading
import time
from typing import Any


class ModelMeter:
    """Seconds spent in `model.encode` and texts encoded, since the last `take()`.

    Used as a context manager around the measured runs; the wrapper sits on the instance,
    so every caller in this process (the service's LocalProvider included) goes through it.
    """

    def __init__(self, model: Any) -> None:
        self.model = model
        self.encode = model.encode  # the original bound method
        self._lock = threading.Lock()
        self._busy = 0.0
        self._texts = 0

    def __enter__(self) -> ModelMeter:
        self.model.encode = self._metered
        return self

    def __exit__(self, *exc_info: object) -> None:
        del self.model.encode

    def _metered(self, sentences: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return self.encode(sentences, *args, **kwargs)
        finally:
            with self._lock:
                self._busy += time.perf_counter() - started
                self._texts += len(sentences) if isinstance(sentences, list) else 1

    def take(self) -> tuple[float, int]:
        with self._lock:
            taken = (self._busy, self._texts)
            self._busy, self._texts = 0.0, 0
            return taken
