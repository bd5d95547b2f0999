"""Readiness of a local data directory: it exists or can be made, takes writes, has room."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from vecpipe.errors import StoreError

MIN_FREE_BYTES = 64 * 1024 * 1024


def probe_data_dir(path: Path, min_free_bytes: int = MIN_FREE_BYTES) -> None:
    """Raise StoreError with the reason when `path` cannot take writes. Blocks: off the loop."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".ready-") as probe:
            probe.write(b"ok")
            probe.flush()
            os.fsync(probe.fileno())
        free = shutil.disk_usage(path).free
    except OSError as exc:
        raise StoreError(f"data dir {path} is not writable: {exc.strerror or exc}") from exc
    if free < min_free_bytes:
        raise StoreError(
            f"data dir {path} has {free // (1024 * 1024)} MiB free, "
            f"needs {min_free_bytes // (1024 * 1024)} MiB"
        )
