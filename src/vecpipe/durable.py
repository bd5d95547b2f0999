"""fsync helpers: what must be on disk before vecpipe says it is (power loss included).

`os.fsync` releases the GIL while the disk works, so these calls never stall the event
loop or a search, however slow the disk (unlike Qdrant Edge's own flush, which holds it).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def fsync_path(path: Path | str) -> None:
    """fsync one file or directory (a directory's fsync makes its renames and new names last)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """Every file under `root`, then each directory (before a rename makes the tree visible).
    A file or directory removed meanwhile is skipped."""
    for directory, _, files in os.walk(root):
        for name in files:
            _fsync_if_there(os.path.join(directory, name))
        _fsync_if_there(directory)


def _fsync_if_there(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        fsync_path(path)


def fsync_directory_files(directory: Path) -> None:
    """Every file directly in `directory`, then the directory itself.

    Files may be renamed meanwhile (a WAL closing a segment renames it): a name gone before
    its fsync is skipped, and the directory is listed again until no new name appears, so
    the renamed file is synced under its new name.
    """
    synced: set[str] = set()
    while True:
        names = [name for name in sorted(os.listdir(directory)) if name not in synced]
        if not names:
            break
        for name in names:
            synced.add(name)
            _fsync_if_there(str(directory / name))
    fsync_path(directory)
