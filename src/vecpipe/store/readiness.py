"""Readiness of a local data directory: it exists or can be made, and takes writes.

Free space is the guard's to judge (store/guard.py, against `VECPIPE_MIN_FREE_BYTES`): this
probe only says whether a file can be written and synced at all.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from vecpipe.errors import StoreError


def probe_data_dir(path: Path) -> None:
    """Raise StoreError with the reason when `path` cannot take writes. Blocks: off the loop."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".ready-") as probe:
            probe.write(b"ok")
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as exc:
        raise StoreError(f"data dir {path} is not writable: {exc.strerror or exc}") from exc
