"""Where a space's live shard is on disk, and how an optimized copy replaces it atomically.

A space starts in `shards/<key>`. An online optimize (edge_rebuild.py) builds a new generation
in `shards/<key>@<n>` and makes it live by renaming a pointer file, `shards/<key>.live`, that
names it: one atomic rename, so a process killed at any moment leaves either the old shard
or the new one live, never neither and never a half-built one. Opening a space follows the
pointer, and once the live shard is open (its WAL lock held) deletes every other generation:
copies an optimize left unfinished, or the shard a finished one replaced.

Space keys are made of [a-z0-9-] (`EmbeddingSpace.key`), so `@` and `.live` cannot clash.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from vecpipe.errors import StoreError

_POINTER_SUFFIX = ".live"


def live_dir(shards_dir: Path, key: str) -> Path:
    """The space's live shard directory (which may not exist yet)."""
    pointer = shards_dir / f"{key}{_POINTER_SUFFIX}"
    try:
        name = pointer.read_text().strip()
    except FileNotFoundError:
        return shards_dir / key
    if not _is_generation(key, name):
        raise StoreError(f"space {key}: {pointer.name} names no generation of it")
    return shards_dir / name


def checked_live_dir(shards_dir: Path, key: str) -> Path:
    """`live_dir`, which must exist once a pointer names it (never start an empty space)."""
    live = live_dir(shards_dir, key)
    if live != shards_dir / key and not live.is_dir():
        raise StoreError(f"space {key}: its live shard {live.name} is missing")
    return live


def remove_stale(shards_dir: Path, key: str, live: Path) -> None:
    """Delete the space's generations other than `live`; only while holding its WAL lock,
    which proves that no other process is optimizing this space."""
    for path in generations(shards_dir, key):
        if path != live:
            shutil.rmtree(path, ignore_errors=True)


def generations(shards_dir: Path, key: str) -> list[Path]:
    """Every directory of this space: the first one and the optimized copies."""
    if not shards_dir.is_dir():
        return []
    return sorted(
        entry
        for entry in shards_dir.iterdir()
        if entry.is_dir() and _is_generation(key, entry.name)
    )


def next_generation(shards_dir: Path, key: str) -> Path:
    names = [path.name for path in generations(shards_dir, key)]
    numbers = [int(name.rpartition("@")[2]) for name in names if "@" in name]
    return shards_dir / f"{key}@{max(numbers, default=0) + 1}"


def publish(shards_dir: Path, key: str, generation: Path) -> None:
    """Make `generation` the live shard: write the pointer aside, fsync, rename over."""
    pointer = shards_dir / f"{key}{_POINTER_SUFFIX}"
    staged = pointer.with_name(pointer.name + ".tmp")
    with open(staged, "w") as file:
        file.write(generation.name)
        file.flush()
        os.fsync(file.fileno())
    os.replace(staged, pointer)
    _fsync_dir(shards_dir)


def _is_generation(key: str, name: str) -> bool:
    return re.fullmatch(rf"{re.escape(key)}(@[0-9]+)?", name) is not None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
