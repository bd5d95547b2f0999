"""Free space under the data dir, checked before every write: a full disk refuses writes.

Why a floor and not just error handling. Qdrant Edge writes through memory maps over sparse
files. Measured on qdrant-edge-py 0.9 (ext4 and tmpfs): a new shard is 152 MiB of files of
which 1.2 MiB are allocated; its WAL is segments of 32 MiB (the current one and one ahead),
created sparse (4 KiB allocated); vectors and payloads grow in 32 MiB sparse files. Blocks
are allocated when a page is first touched, and when none is left the kernel kills the
process with SIGBUS: no exception, no log line, and loading the shard again on the still
full disk dies the same way (a load touches a few pages too). So vecpipe must stop writing
before the disk is full: before a write to the store, the SQLite queue or the SQLite
database, `FreeSpaceFloor.check` compares the free space with `VECPIPE_MIN_FREE_BYTES` and
raises StorageFull (HTTP 507, Retry-After) below it. Reads go on; writes resume by themselves
once space is back.

The default floor (`Settings.min_free_bytes`), 128 MiB. What one Edge write call allocates
was measured with upserts of 256 points (the store's batch), each followed by a flush: 1.0-1.24
MiB at 384 dimensions with a 300-byte text; 11 MiB at 3072 dimensions with 16 KiB of metadata
(the largest vectors and metadata vecpipe accepts). Between its check and its write, each
writer has at most one call past the check (two worker loops and the HTTP requests in flight:
say four, 44 MiB at worst); the SQLite files grow by their WAL (~4 MiB before a checkpoint);
a shard opened after a crash replays its unflushed writes. 128 MiB covers that with room to
spare, and is twice the two 32 MiB WAL segments Edge maps. Set it higher where other programs
write to the same disk: they may take the last of the margin.

On tmpfs (and ramfs) there is more: a page of a shared mapping is allocated when it is first
*read* too, and loading a shard reads (populates) its segments' maps, holes included.
Measured: loading a fresh 32-d shard took 55 MiB of a tmpfs (vectors 32 MiB, payload indexes
and flags 23 MiB; not the WAL, not the payload storage), 0.03 MiB of ext4. `sparse_bytes`
and `fills_holes_on_read` let the store guard (store/guard.py) ask for that much room before
it opens a space there.

`is_disk_full` recognises the same condition when a write meets it anyway (SQLite's "database
or disk is full", ENOSPC, PostgreSQL's disk_full), so that callers turn it into StorageFull
rather than a 500.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from vecpipe.errors import StorageFull, StoreError

log = logging.getLogger(__name__)

MIB = 1024 * 1024

_DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_PG_DISK_FULL = "53100"
_ENOSPC_TEXT = os.strerror(errno.ENOSPC)  # "No space left on device"


def free_bytes(path: Path) -> int:
    """Bytes available to this process on the file system holding `path` (or its nearest
    existing parent). Blocks: a stat of the file system, off the event loop."""
    stats = os.statvfs(_existing(path))
    return stats.f_bavail * stats.f_frsize


class FreeSpaceFloor:
    """Refuses writes while the disk under `path` has less than `min_free_bytes` free.

    `check()` (async: it measures on a thread) and `check_blocking()` (for code already on a
    worker thread) raise StorageFull below the floor; a floor of 0 never refuses. Crossing
    the floor either way is logged once.

    Every check measures (a statvfs: microseconds, plus a thread hop of ~0.1 ms from the
    loop), none reuses an earlier figure: another program can fill the disk between two
    writes of ours, and a write let through on a stale figure is the one that meets SIGBUS.
    """

    def __init__(
        self,
        path: Path,
        min_free_bytes: int,
        *,
        label: str = "data dir",
        measure: Callable[[Path], int] | None = None,
    ) -> None:
        if min_free_bytes < 0:
            raise ValueError("min_free_bytes must be >= 0")
        self.path = Path(path)
        self.min_free_bytes = min_free_bytes
        self.label = label
        self._measure = measure
        self._below = False
        self._lock = threading.Lock()  # the crossing log, from the loop and from threads

    def __repr__(self) -> str:
        return f"FreeSpaceFloor({str(self.path)!r}, {self.min_free_bytes})"

    @property
    def enabled(self) -> bool:
        return self.min_free_bytes > 0

    def measure(self) -> int:
        """Free bytes now. Blocks."""
        try:
            return (self._measure or free_bytes)(self.path)
        except OSError as exc:
            raise StoreError(f"cannot measure the free space of the {self.label}: {exc}") from exc

    def check_blocking(self) -> None:
        """Raise StorageFull when less than the floor is free. Blocks."""
        if self.enabled:
            self._verdict(self.measure())

    async def check(self) -> None:
        """Raise StorageFull when less than the floor is free."""
        if self.enabled:
            self._verdict(await self.free())

    async def free(self) -> int:
        """Free bytes now, measured on a thread."""
        return await asyncio.to_thread(self.measure)

    def _verdict(self, free: int) -> None:
        below = free < self.min_free_bytes
        with self._lock:
            crossed, self._below = below != self._below, below
        if crossed:
            if below:
                log.warning("%s; refusing writes", self._describe(free))
            else:
                log.info("%s disk has %s free again; taking writes", self.label, mib(free))
        if below:
            raise StorageFull(self._describe(free))

    def _describe(self, free: int) -> str:
        return (
            f"the {self.label} disk has {mib(free)} free, below the floor of "
            f"{mib(self.min_free_bytes)} (VECPIPE_MIN_FREE_BYTES): writes are refused until "
            "space is freed"
        )


def mib(n: int) -> str:
    return f"{n / MIB:.1f} MiB"


_FILLS_HOLES_ON_READ = frozenset({"tmpfs", "ramfs", "hugetlbfs"})


def fills_holes_on_read(path: Path) -> bool:
    """Whether reading a sparse file of this file system through a shared memory map
    allocates its holes (tmpfs, ramfs: memory-backed). Without /proc to tell: assumed so."""
    try:
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return True
    target = _existing(path).resolve()
    best: tuple[int, str] = (-1, "")
    for line in mounts:
        fields, _, after = line.partition(" - ")
        parts = fields.split()
        if len(parts) < 5 or not after:
            continue
        point = Path(_unescape(parts[4]))
        if (point == target or point in target.parents) and len(point.parts) > best[0]:
            best = (len(point.parts), after.split()[0])
    return best[0] < 0 or best[1] in _FILLS_HOLES_ON_READ


def apparent_bytes(path: Path) -> int:
    """The sizes of the files under `path` added up, holes included: what a plain copy of
    it allocates (shutil.copytree writes every byte, so sparse files come out dense). Blocks."""
    total = 0
    for root, _, names in os.walk(path):
        for name in names:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except FileNotFoundError:
                continue
    return total


def check_room_for_copy(source: Path, dest_dir: Path, min_free_bytes: int) -> None:
    """Raise StorageFull unless a copy of `source` into `dest_dir` leaves the floor free."""
    needed = apparent_bytes(source)
    free = free_bytes(dest_dir)
    if free - needed < min_free_bytes:
        raise StorageFull(
            f"a copy of {source.name} needs {needed // MIB} MiB and would leave less than "
            f"{min_free_bytes // MIB} MiB free ({free // MIB} MiB free now)"
        )


def sparse_bytes(path: Path, skip: frozenset[str] = frozenset()) -> int:
    """Bytes of the files under `path` that are not allocated yet (holes), leaving out the
    directories named in `skip`. Blocks."""
    holes = 0
    for root, dirs, names in os.walk(path):
        dirs[:] = [d for d in dirs if d not in skip]
        for name in names:
            try:
                stat = os.stat(os.path.join(root, name))
            except FileNotFoundError:
                continue
            holes += max(0, stat.st_size - stat.st_blocks * 512)
    return holes


def _existing(path: Path) -> Path:
    return next((p for p in (path, *path.parents) if p.exists()), Path("/"))


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes."""
    for code in ("040", "011", "012", "134"):
        field = field.replace("\\" + code, chr(int(code, 8)))
    return field


def is_disk_full(exc: BaseException) -> bool:
    """Whether `exc` (or an error it wraps) says the disk or database file is full."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        error = todo.pop()
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        if _says_full(error):
            return True
        # SQLAlchemy keeps the driver's error in `orig`; aiosqlite and asyncpg chain theirs
        orig = getattr(error, "orig", None)
        todo += [orig if isinstance(orig, BaseException) else None]
        todo += [error.__cause__, error.__context__]
    return False


def _says_full(error: BaseException) -> bool:
    if isinstance(error, sqlite3.Error):
        code = getattr(error, "sqlite_errorcode", None)
        return code == sqlite3.SQLITE_FULL or "database or disk is full" in str(error)
    if isinstance(error, OSError):
        return error.errno in _DISK_FULL_ERRNOS
    if getattr(error, "sqlstate", None) == _PG_DISK_FULL:  # asyncpg's DiskFullError
        return True
    # engines that report the OS error in their own exception type (Qdrant Edge: Rust's
    # "No space left on device (os error 28)")
    return _ENOSPC_TEXT in str(error)


def storage_full(what: str) -> StorageFull:
    """The StorageFull for a write that met a full disk: what failed, never the statement."""
    return StorageFull(f"{what}: the disk is full; writes are refused until space is freed")


@contextmanager
def disk_full_as_storage_full(what: str) -> Iterator[None]:
    """Turn a disk-full error raised inside into StorageFull; anything else passes."""
    try:
        yield
    except StorageFull:
        raise
    except Exception as exc:
        if is_disk_full(exc):
            raise storage_full(what) from exc
        raise
