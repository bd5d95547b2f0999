"""The optimizer child: it dies with its parent, and never shares a generation directory.

A server SIGKILLed during an online optimize used to leave its optimizer child running;
the restarted server reused that child's generation directory and two optimizers worked in
one directory (issue 12, finding 7).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.store.contract import SPACE, put, record_points, vec
from tests.store.edge_support import shards, space_dirs
from vecpipe.errors import StoreError
from vecpipe.store.edge import EdgeStore
from vecpipe.store.edge import generations as edge_generations
from vecpipe.store.edge.optimize import optimize_shard_dir

ROOT = Path(__file__).resolve().parents[2]

# A server: an EdgeStore whose optimize is held once its child is up (the child writes its pid
# and waits for a gate file that never comes); the test SIGKILLs this process meanwhile.
SERVER = """
import asyncio, sys
from pathlib import Path
from tests.store.contract import SPACE, put, record_points, vec
from vecpipe.store.edge import optimize as edge_optimize
from vecpipe.store.edge import EdgeStore

data_dir, started, gate = (Path(arg) for arg in sys.argv[1:4])
edge_optimize._CHILD_WORK = (
    "import os, pathlib, time\\n"
    f"pathlib.Path({str(started)!r}).write_text(str(os.getpid()))\\n"
    f"while not pathlib.Path({str(gate)!r}).exists(): time.sleep(0.01)\\n"
) + edge_optimize._CHILD_WORK

async def main():
    async with EdgeStore(data_dir) as store:
        await put(store, *(record_points("t1", f"r{i}", [vec(a=1, b=i)]) for i in range(50)))
        await store.optimize(SPACE)

asyncio.run(main())
"""


def gone(pid: int) -> bool:
    """No such process, or a zombie nobody reaped yet (it runs no more)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


def wait_for(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)


@contextmanager
def held(path: Path) -> Iterator[None]:
    """Hold `path`'s directory flock, as an optimizer child working there does."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield
    finally:
        os.close(fd)


def kill_a_server_mid_optimize(data_dir: Path, tmp_path: Path) -> None:
    """Run SERVER until its optimizer child holds the copy, SIGKILL it, see the child die."""
    started, gate = tmp_path / "child-pid", tmp_path / "never"
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(data_dir), str(started), str(gate)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(lambda: started.exists() and started.read_text(), 60, "the optimizer child")
        child = int(started.read_text())
        copy = shards(data_dir) / f"{SPACE.key}@1"
        assert copy.is_dir()
        with pytest.raises(BlockingIOError), held(copy):
            pass  # the child holds its generation directory
        server.send_signal(signal.SIGKILL)
        server.wait(10)
        wait_for(lambda: gone(child), 10, f"the orphaned optimizer {child} to die")
    finally:
        server.kill()
        server.wait(10)
        assert server.stderr is not None
        server.stderr.close()


async def test_sigkill_during_an_optimize_leaves_no_orphan_and_no_shared_dir(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    await asyncio.to_thread(kill_a_server_mid_optimize, data_dir, tmp_path)
    async with EdgeStore(data_dir) as restarted:
        assert space_dirs(data_dir) == [SPACE.key]  # the dead child's copy is gone at open
        await put(restarted, record_points("t1", "late", [vec(c=1)]))
        report = await restarted.optimize(SPACE)
        assert report.points == 51
        assert space_dirs(data_dir) == [f"{SPACE.key}@1"]
        assert await restarted.count(SPACE, "t1") == 51


async def test_a_generation_held_by_another_optimizer_is_neither_reused_nor_removed(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    async with EdgeStore(data_dir) as store:
        await put(store, record_points("t1", "r1", [vec(a=1)]))
    orphan = shards(data_dir) / f"{SPACE.key}@1"
    shutil.copytree(shards(data_dir) / SPACE.key, orphan)
    with held(orphan):  # an optimizer left over from a killed server works there
        with pytest.raises(StoreError, match="another optimizer holds"):
            await optimize_shard_dir(orphan)  # a second optimizer refuses to join it
        async with EdgeStore(data_dir) as store:
            assert orphan.is_dir()  # not removed under the optimizer
            assert edge_generations.next_generation(shards(data_dir), SPACE.key).name == (
                f"{SPACE.key}@2"
            )
            report = await store.optimize(SPACE)
            assert report.points == 1
            assert space_dirs(data_dir) == [f"{SPACE.key}@1", f"{SPACE.key}@2"]
    async with EdgeStore(data_dir) as store:  # released: a stale copy, removed at open
        assert space_dirs(data_dir) == [f"{SPACE.key}@2"]
        assert await store.count(SPACE, "t1") == 1


async def test_stale_generations_of_every_space_go_when_the_store_opens(tmp_path: Path) -> None:
    from vecpipe.models import EmbeddingSpace

    other = EmbeddingSpace("contract/other-model", 4)
    data_dir = tmp_path / "data"
    async with EdgeStore(data_dir) as store:
        await put(store, record_points("t1", "r1", [vec(a=1)]))
        await store.upsert_chunks(other, record_points("t1", "o1", [[1.0, 0, 0, 0]]))
    for space in (SPACE, other):
        shutil.copytree(shards(data_dir) / space.key, shards(data_dir) / f"{space.key}@3")
    async with EdgeStore(data_dir):  # no space used: the cleanup is the open's, not a request's
        left = sorted(p.name for p in shards(data_dir).iterdir() if p.is_dir())
        assert left == sorted([SPACE.key, other.key])
