"""Online optimize: index a copy of a space's shard while the live one keeps serving.

1. Copy (a write job): flush the live shard and copy its directory to a new generation
   (generations.py). From this job on, every write the live shard takes is also kept,
   as the same Edge UpdateOperation, in the space's `Mirror`.
2. Optimize the copy in a child process (optimize.py): reads and writes go on meanwhile.
3. Catch up (write jobs): open the optimized copy here, replay the kept writes on it in
   jobs of ~1k points (other writes run in between, and get kept too), flush it. From then
   on each write job applies its operation to both shards.
4. Swap (a write job, then the loop): publish the copy as live (an atomic rename), point the
   space's handle at it, and close the old shard once the calls using it are done.

Writes run in order on the store's one write thread, so the job order *is* the write order:
the copy holds every write before step 1, the mirror every write after it, in order. The
mirror is touched on that thread only. Searches never wait for any of this, except behind
the GIL while step 3 loads the copy (Edge's load holds it: ~0.2 s at 20k points, 384-d).
Cancelled or failed before step 4, the copy is discarded and the live shard is untouched; a
kill at any point leaves one complete live shard (generations.py recovers on open).
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import replace
from pathlib import Path
from typing import Any

import qdrant_edge as qe

from vecpipe import diskspace
from vecpipe.errors import StoreError
from vecpipe.store.edge import generations as edge_generations
from vecpipe.store.edge import shard as edge_shard
from vecpipe.store.edge.optimize import OptimizeReport, optimize_shard_dir
from vecpipe.store.edge.space import OpenSpace, ShardHandle

JOURNAL_MAX_POINTS = 50_000
"""Points written during one optimize that the mirror keeps (~100 MB at 384-d); beyond, the
optimize gives up (and is retried later) rather than hold an unbounded journal."""

REPLAY_POINTS = 1024
"""Journaled points replayed on the copy per write job: ~20-80 ms of GIL at 384-d."""

Runner = Callable[..., Awaitable[Any]]
"""`run(op, fn, *args)`: `fn(*args)` as a job on the store's write thread."""


class Mirror:
    """The writes the live shard took since its copy was taken, for the copy: journaled
    until the copy is open and caught up, then applied to it as they come."""

    def __init__(self, max_points: int = JOURNAL_MAX_POINTS) -> None:
        self.max_points = max_points
        self.recording = False
        self.ops: deque[tuple[qe.UpdateOperation, int]] = deque()  # with their point counts
        self.points = 0  # in `ops`
        self.replayed = 0
        self.copy: qe.EdgeShard | None = None
        self.copy_dir: Path | None = None  # the copy's directory, once it is open
        self.following = False  # the copy is caught up: writes go straight to it
        self.published = False  # the copy is the live shard now
        self.failure: str | None = None

    def follow(self, op: qe.UpdateOperation, weight: int) -> None:
        if self.published and self.copy is not None:
            self.copy.update(op)  # the live shard: its error is the write's error
            return
        if not self.recording or self.failure is not None:
            return
        if self.following and self.copy is not None:
            try:
                self.copy.update(op)
            except Exception as exc:
                self.fail(f"a write failed on the copy ({type(exc).__name__})")
            return
        self.points += weight
        if self.points > self.max_points:
            self.fail(f"more than {self.max_points} points were written during the optimize")
        else:
            self.ops.append((op, weight))

    def replay(self, max_points: int) -> bool:
        """Apply journaled writes to the open copy, about `max_points` points' worth (one
        job's GIL hold); True once the journal is empty and the copy follows the writes."""
        assert self.copy is not None
        done = 0
        while self.ops and done < max_points:
            op, weight = self.ops.popleft()
            self.copy.update(op)
            self.points -= weight
            done += weight
        self.replayed += done
        self.following = not self.ops
        return self.following

    def flush(self) -> None:
        if self.copy is not None and self._takes_writes():
            edge_shard.flush_shard(self.copy, self.copy_dir)

    def sync_wal(self) -> None:
        if self.copy_dir is not None and self.copy is not None and self._takes_writes():
            edge_shard.sync_wal(self.copy_dir)

    def _takes_writes(self) -> bool:
        """The copy gets the live shard's writes (or is the live shard): what they wrote to
        it must be durable with them."""
        return self.published or self.failure is None

    def fail(self, reason: str) -> None:
        if self.failure is None:
            self.failure = reason
        self.ops.clear()


# ---------------------------------------------------------------------------- write jobs


def write(
    shard: qe.EdgeShard,
    mirror: Mirror | None,
    make_op: Callable[[], qe.UpdateOperation],
    weight: int,
) -> None:
    """Every store write: apply the operation to the live shard, and to the mirror if any."""
    op = make_op()
    try:
        shard.update(op)
    except BaseException:
        if mirror is not None:  # it may have been applied in part: the copy cannot tell
            mirror.fail("a write failed on the live shard")
        raise
    if mirror is not None:
        mirror.follow(op, weight)


def flush(shard: qe.EdgeShard, live_dir: Path, mirror: Mirror | None) -> None:
    edge_shard.flush_shard(shard, live_dir)
    if mirror is not None:
        mirror.flush()


def sync_wal(_live: qe.EdgeShard, live_dir: Path, mirror: Mirror | None) -> None:
    """Every write made so far durable through the WALs (edge_shard.sync_wal): the live
    shard's, open at `live_dir` (passed so the caller holds it open, and its directory in
    place, until this returns), and its copy's where the copy takes the writes (or is live
    already)."""
    edge_shard.sync_wal(live_dir)
    if mirror is not None:
        mirror.sync_wal()


def take_copy(
    shard: qe.EdgeShard, mirror: Mirror, source: Path, dest: Path, min_free_bytes: int
) -> None:
    # The copy is dense (Edge's files are sparse): room for all of it, and the floor after.
    diskspace.check_room_for_copy(source, dest.parent, min_free_bytes)
    mirror.recording = True
    edge_shard.flush_shard(shard, source)
    shutil.copytree(source, dest)  # sendfile: the GIL is free while the bytes move


def open_copy(mirror: Mirror, dest: Path, dimension: int) -> None:
    _check(mirror)
    mirror.copy = edge_shard.open_shard(dest, dimension)
    mirror.copy_dir = dest


def replay(mirror: Mirror, max_points: int) -> bool:
    _check(mirror)
    return mirror.replay(max_points)


def flush_copy(mirror: Mirror) -> None:
    """Writes flushed on the live shard before the copy followed: flushed on the copy too."""
    _check(mirror)
    mirror.flush()


def commit(mirror: Mirror, shards_dir: Path, key: str, dest: Path) -> None:
    _check(mirror)
    try:
        edge_generations.publish(shards_dir, key, dest)
    finally:  # a failed fsync after the rename: the copy is live all the same
        mirror.published = edge_generations.live_dir(shards_dir, key) == dest


def discard(mirror: Mirror) -> None:
    mirror.recording = False
    mirror.ops.clear()
    copy, mirror.copy = mirror.copy, None
    if copy is not None and not mirror.published:
        copy.close()


def retire(old: qe.EdgeShard, mirror: Mirror) -> None:
    mirror.recording = False
    mirror.copy = None
    old.close()


def _check(mirror: Mirror) -> None:
    if mirror.failure is not None:
        raise StoreError(f"optimize abandoned: {mirror.failure}")


# ---------------------------------------------------------------------------- the steps


async def optimize_online(
    target: OpenSpace, run: Runner, shards_dir: Path, min_free_bytes: int = 0
) -> OptimizeReport:
    """Steps 1-4 above; the caller holds the space's optimize lock. Refused (StorageFull)
    when the copy would leave less than `min_free_bytes` free on the disk."""
    key = target.space.key
    dest = await asyncio.to_thread(edge_generations.next_generation, shards_dir, key)
    mirror = target.mirror = Mirror()
    clock = time.perf_counter()
    changed_before_copy = target.changed_points  # no await until the copy job is queued
    try:
        shard = target.handle.shard
        await run("copy", take_copy, shard, mirror, target.path, dest, min_free_bytes)
        copied = time.perf_counter()
        report = await optimize_shard_dir(dest)
        optimized = time.perf_counter()
        await run("catch_up", open_copy, mirror, dest, target.space.dimension)
        while not await run("catch_up", replay, mirror, REPLAY_POINTS):
            pass
        await run("catch_up", flush_copy, mirror)
    except BaseException:
        await _uninterrupted(_discard(target, mirror, dest, run))
        raise
    await _uninterrupted(_swap(target, mirror, dest, run, shards_dir, changed_before_copy))
    return replace(
        report,
        copy_seconds=copied - clock,
        catch_up_seconds=time.perf_counter() - optimized,
        replayed_points=mirror.replayed,
    )


# ---------------------------------------------------------------------------- rewrite


def start_rewrite(mirror: Mirror, dest: Path, dimension: int) -> None:
    """A fresh, empty shard for the rewrite; from this job on the live shard's writes are
    journaled for it (as for an optimize's copy)."""
    mirror.recording = True
    mirror.copy = edge_shard.open_shard(dest, dimension)
    mirror.copy_dir = dest


def copy_page(shard: qe.EdgeShard, mirror: Mirror, offset: Any, limit: int) -> Any:
    """Copy one page of the live shard's points (vectors and payloads) into the fresh one;
    the next page's offset, None after the last."""
    _check(mirror)
    assert mirror.copy is not None
    request = qe.ScrollRequest(
        offset=offset, limit=limit, filter=None, with_payload=True, with_vector=True
    )
    records, next_offset = shard.scroll(request)
    points = [qe.Point(r.id, r.vector, r.payload or {}) for r in records if r.vector is not None]
    if points:
        mirror.copy.update(qe.UpdateOperation.upsert_points(points))
    return next_offset


async def rewrite_online(target: OpenSpace, run: Runner, shards_dir: Path) -> int:
    """Rebuild a space's shard from its live points into a fresh generation, and swap it in.

    What deletes leave behind (the deleted points' bytes in segments and in the WAL, which
    Edge truncates only once a whole WAL file is past) stays in the old generation, which
    is removed. Reads and writes go on meanwhile: writes made during the copy are journaled
    and replayed, as for an optimize. The caller holds the space's optimize lock. Returns
    the points copied."""
    key = target.space.key
    dest = await asyncio.to_thread(edge_generations.next_generation, shards_dir, key)
    mirror = target.mirror = Mirror()
    changed_before_copy = target.changed_points
    copied = 0
    try:
        await run("rewrite", start_rewrite, mirror, dest, target.space.dimension)
        offset: Any = None
        while True:
            shard = target.handle.shard
            offset = await run("rewrite", copy_page, shard, mirror, offset, REPLAY_POINTS)
            copied += REPLAY_POINTS
            if offset is None:
                break
        while not await run("catch_up", replay, mirror, REPLAY_POINTS):
            pass
        await run("catch_up", flush_copy, mirror)
    except BaseException:
        await _uninterrupted(_discard(target, mirror, dest, run))
        raise
    await _uninterrupted(_swap(target, mirror, dest, run, shards_dir, changed_before_copy))
    return copied


async def _swap(
    target: OpenSpace,
    mirror: Mirror,
    dest: Path,
    run: Runner,
    shards_dir: Path,
    changed_before_copy: int,
) -> None:
    failure: BaseException | None = None
    try:
        await run("publish", commit, mirror, shards_dir, target.space.key, dest)
    except BaseException as exc:
        if not mirror.published:
            await _discard(target, mirror, dest, run)
            raise
        failure = exc  # reported once the swap the pointer already made is done
    assert mirror.copy is not None  # opened by the catch-up
    old, old_path = target.handle, target.path
    target.handle, target.path, target.mirror = ShardHandle(mirror.copy), dest, None
    # the new live shard holds, unoptimized, only the writes made since its copy was taken
    target.changed_points = max(0, target.changed_points - changed_before_copy)
    await old.wait_idle()  # calls that took the old shard, writes included (they mirror)
    await run("retire", retire, old.shard, mirror)
    await asyncio.to_thread(edge_generations.remove_generation, old_path)
    if failure is not None:
        raise failure


async def _discard(target: OpenSpace, mirror: Mirror, dest: Path, run: Runner) -> None:
    target.mirror = None  # writes made from now on skip the mirror
    await run("discard", discard, mirror)  # after the write jobs that still hold it
    await asyncio.to_thread(shutil.rmtree, dest, True)


async def _uninterrupted(coro: Coroutine[Any, Any, None]) -> None:
    """Run `coro` to its end even if the caller is cancelled meanwhile, then re-raise that.

    A swap or a cleanup stopped half way would leave a copy open or its directory behind.
    """
    task = asyncio.ensure_future(coro)
    cancelled = False
    while True:
        try:
            await asyncio.shield(task)
            break
        except asyncio.CancelledError:
            if task.done():
                raise
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError
