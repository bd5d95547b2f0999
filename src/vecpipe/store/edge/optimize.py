"""Optimize (index) a shard directory no process has open, in a child process.

`EdgeShard.optimize()` holds the GIL for its whole run (measured: a `time.sleep(0.001)` in
another thread returned only after the 10 s optimize of 20k x 384-d points ended), so run in a
thread it would freeze the event loop, health checks included. A child process does the work
instead, on a copy of the live shard (rebuild.py; the WAL lock allows one open per
directory): it loads, optimizes, flushes and closes it. The child runs at a lower CPU
priority (nice 10) so that, on a small box, serving goes first.

The child never outlives its parent, nor shares its directory: it asks the kernel for
SIGKILL when the parent dies (`prctl(PR_SET_PDEATHSIG)`), checks that the parent that
started it is still there (it may have died before the prctl), and holds an exclusive flock
on the generation directory while it works. A restarted server therefore never meets an
orphan optimizer, and if one were left it would not remove or reuse the directory it holds
(generations.py). The parent's own descriptors (the data dir's lock) are close-on-exec
and never reach the child.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from vecpipe.errors import StoreError

CHILD_EXIT_ORPHANED = 70
CHILD_EXIT_DIR_HELD = 71

# Self-contained on purpose: the child needs qdrant_edge only, not vecpipe on its path.
# argv: the generation directory, the parent's pid. The guard runs before anything heavy.
_CHILD_GUARD = f"""
import ctypes, fcntl, os, signal, sys
PR_SET_PDEATHSIG = 1
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
    sys.exit("prctl(PR_SET_PDEATHSIG) failed: errno " + str(ctypes.get_errno()))
if os.getppid() != int(sys.argv[2]):
    sys.exit({CHILD_EXIT_ORPHANED})  # the parent died before the prctl took effect
held = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
try:
    fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
except BlockingIOError:
    print("another optimizer holds " + sys.argv[1], file=sys.stderr)
    sys.exit({CHILD_EXIT_DIR_HELD})
"""

_CHILD_WORK = """
import json, os, sys, time
import qdrant_edge
os.nice(10)
shard = qdrant_edge.EdgeShard.load(sys.argv[1])
try:
    started = time.perf_counter()
    changed = shard.optimize()
    shard.flush()
    info = shard.info()
    report = {
        "changed": changed,
        "seconds": time.perf_counter() - started,
        "points": info.points_count,
        "indexed_vectors": info.indexed_vectors_count,
        "segments": info.segments_count,
    }
finally:
    shard.close()
print(json.dumps(report))
"""


@dataclass(frozen=True)
class OptimizeReport:
    changed: bool
    seconds: float
    points: int
    indexed_vectors: int
    segments: int
    # Filled in by the online optimize (rebuild.py) around the child's run:
    copy_seconds: float = 0.0
    catch_up_seconds: float = 0.0  # open the optimized copy, replay writes made meanwhile
    replayed_points: int = 0


async def optimize_shard_dir(path: Path) -> OptimizeReport:
    """Run the optimizer on the shard at `path`, which no process may have open."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _CHILD_GUARD + _CHILD_WORK,
        str(path),
        str(os.getpid()),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await proc.communicate()
    except BaseException:
        # Cancelled: the child must not outlive us holding the WAL lock.
        if proc.returncode is None:
            proc.kill()
        await asyncio.shield(proc.wait())
        raise
    if proc.returncode != 0:
        lines = err.decode(errors="replace").strip().splitlines()
        reason = lines[-1][:200] if lines else "no output"
        raise StoreError(f"edge optimizer exited with {proc.returncode}: {reason}")
    try:
        data = json.loads(out.decode().strip().splitlines()[-1])
        return OptimizeReport(
            changed=bool(data["changed"]),
            seconds=float(data["seconds"]),
            points=int(data["points"]),
            indexed_vectors=int(data["indexed_vectors"]),
            segments=int(data["segments"]),
        )
    except (ValueError, KeyError, IndexError) as exc:
        raise StoreError("edge optimizer gave no report") from exc
