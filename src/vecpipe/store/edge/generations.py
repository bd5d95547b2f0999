"""Where a space's live shard is on disk, and how an optimized copy replaces it atomically.

A space starts in `shards/<key>`. An online optimize (rebuild.py) builds a new generation
in `shards/<key>@<n>` and makes it live by renaming a pointer file, `shards/<key>.live`, that
names it: one atomic rename, so a process killed at any moment leaves either the old shard
or the new one live, never neither and never a half-built one. Opening the store (its owner
holds the data dir's lock, datadir.py) deletes, for every space, each generation other than
the live one: copies an optimize left unfinished, or shards a finished one replaced. A
generation whose directory is flocked is skipped: an optimizer child still works there
(optimize.py; it dies with its parent, so that is a rare leftover). New generations are
numbered past every directory there, so none is ever reused while an old process holds it.

Space keys are made of [a-z0-9-] (`EmbeddingSpace.key`), so `@` and `.live` cannot clash.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import qdrant_edge as qe

from vecpipe import datadir
from vecpipe.durable import fsync_path
from vecpipe.errors import StoreError
from vecpipe.store.edge import shard as edge_shard

log = logging.getLogger(__name__)

_POINTER_SUFFIX = ".live"
_CHANGES_SUFFIX = ".changes"
_GENERATION = re.compile(r"(?P<key>[a-z0-9-]+)(@(?P<number>[0-9]+))?")


def take_over(shards_dir: Path) -> datadir.DataDirLock:
    """Lock `shards_dir` for this store (StoreLocked, nothing touched, if another holds it),
    then remove every space's stale generations. The lock is the caller's to release."""
    lock = datadir.acquire(shards_dir)
    try:
        removed = remove_all_stale(shards_dir)
    except OSError as exc:
        lock.release()
        raise StoreError(f"edge open failed: {exc.strerror or exc}") from exc
    except BaseException:
        lock.release()
        raise
    if removed:
        log.info("removed stale edge generations: %s", ", ".join(p.name for p in removed))
    return lock


def open_live(shards_dir: Path, key: str, dimension: int) -> tuple[Path, qe.EdgeShard, int]:
    """Open the space's live shard; with the changes counted on it before the last close."""
    path = checked_live_dir(shards_dir, key)
    return path, edge_shard.open_shard(path, dimension), load_changes(path)


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


def remove_stale(shards_dir: Path, key: str, live: Path) -> list[Path]:
    """Delete the space's generations other than `live`, except those an optimizer holds;
    only by the data dir's owner. Returns the directories removed."""
    removed = []
    for path in generations(shards_dir, key):
        if path == live:
            continue
        with unless_held(path) as free:
            if free:
                remove_generation(path)
                removed.append(path)
            else:
                log.warning("kept %s: an optimizer process still holds it", path.name)
    return removed


def remove_generation(path: Path) -> None:
    """Delete a generation's directory and its note (never the live one)."""
    shutil.rmtree(path, ignore_errors=True)
    path.with_name(path.name + _CHANGES_SUFFIX).unlink(missing_ok=True)


def remove_all_stale(shards_dir: Path) -> list[Path]:
    """`remove_stale` for every space under `shards_dir` (a store opening)."""
    removed: list[Path] = []
    for key in space_keys(shards_dir):
        try:
            live = checked_live_dir(shards_dir, key)
        except StoreError as exc:  # a bad pointer: leave that space alone, it fails on use
            log.warning("not cleaning space %s: %s", key, exc.message)
            continue
        removed += remove_stale(shards_dir, key, live)
    return removed


def space_keys(shards_dir: Path) -> list[str]:
    """The spaces that have a directory or a pointer under `shards_dir`."""
    if not shards_dir.is_dir():
        return []
    keys = set()
    for entry in shards_dir.iterdir():
        name = entry.name.removesuffix(_POINTER_SUFFIX)
        match = _GENERATION.fullmatch(name)
        if match is not None and (entry.is_dir() or entry.name != name):
            keys.add(match["key"])
    return sorted(keys)


@contextlib.contextmanager
def unless_held(path: Path) -> Iterator[bool]:
    """True (while holding its flock) when no process holds `path`'s directory flock."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


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
    """A directory for the space's next generation: numbered past every one there (a held
    one included, so an orphan's directory is never reused), and not existing yet."""
    names = [path.name for path in generations(shards_dir, key)]
    number = max((int(name.rpartition("@")[2]) for name in names if "@" in name), default=0)
    while True:
        number += 1
        path = shards_dir / f"{key}@{number}"
        if not path.exists():
            return path


def publish(shards_dir: Path, key: str, generation: Path) -> None:
    """Make `generation` the live shard: write the pointer aside, fsync, rename over."""
    pointer = shards_dir / f"{key}{_POINTER_SUFFIX}"
    staged = pointer.with_name(pointer.name + ".tmp")
    with open(staged, "w") as file:
        file.write(generation.name)
        file.flush()
        os.fsync(file.fileno())
    os.replace(staged, pointer)
    fsync_path(shards_dir)


def save_changes(live: Path, changed_points: int) -> None:
    """Note, beside the live shard, how many of its points changed since its optimize, so
    that a restart does not forget them (space.IndexStatus); lost on a kill, which
    only delays the next optimize."""
    note = live.with_name(live.name + _CHANGES_SUFFIX)
    if changed_points <= 0:
        note.unlink(missing_ok=True)
        return
    staged = note.with_name(note.name + ".tmp")
    staged.write_text(json.dumps({"changed_points": changed_points}))
    os.replace(staged, note)


def load_changes(live: Path) -> int:
    """What `save_changes` noted for this generation (0 when nothing, or unreadable)."""
    note = live.with_name(live.name + _CHANGES_SUFFIX)
    try:
        value = json.loads(note.read_text()).get("changed_points", 0)
    except (OSError, ValueError, AttributeError):
        return 0
    return value if isinstance(value, int) and value > 0 else 0


def _is_generation(key: str, name: str) -> bool:
    return re.fullmatch(rf"{re.escape(key)}(@[0-9]+)?", name) is not None
