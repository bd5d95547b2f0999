"""The data dir's lock: one owner, refused at once for every other opener, freed on death."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.app import FAKE_DIMENSION, make_settings
from tests.support.processes import THIS_COMMAND
from vecpipe import datadir
from vecpipe.errors import ConfigError, StoreLocked
from vecpipe.models import EmbeddingSpace
from vecpipe.resources import claim_data_dir, claim_database, open_resources, uses_data_dir

FAKE_SPACE = EmbeddingSpace("fake-model", FAKE_DIMENSION)
HOLD = """
import sys, time
from pathlib import Path
from vecpipe import datadir
lock = datadir.acquire(Path(sys.argv[1]), url="http://127.0.0.1:8123")
print("held", flush=True)
time.sleep(120)
"""


def hold_in_child(data_dir: Path) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(data_dir)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "held"
    return child


def test_a_second_opener_in_this_process_is_refused_and_told_who_holds_it(
    tmp_path: Path,
) -> None:
    with datadir.held(tmp_path / "data", url="http://127.0.0.1:9999") as lock:
        assert lock.held
        with pytest.raises(StoreLocked) as refused:
            datadir.acquire(tmp_path / "data")
        assert refused.value.holder_pid == os.getpid()
        message = refused.value.message
        assert f"process {os.getpid()}" in message and "--url http://127.0.0.1:9999" in message
        assert "VECPIPE_URL" in message and "stop it" in message and "\n" not in message
        assert datadir.holder_of(tmp_path / "data") == datadir.Holder(
            os.getpid(), THIS_COMMAND, "http://127.0.0.1:9999"
        )
    assert datadir.holder_of(tmp_path / "data") is None
    with datadir.held(tmp_path / "data"):  # released: free again
        pass


@pytest.mark.serial  # "at once": under a second
def test_another_process_holds_it_until_it_is_killed(tmp_path: Path) -> None:
    child = hold_in_child(tmp_path / "data")
    try:
        started = time.perf_counter()
        with pytest.raises(StoreLocked, match=f"process {child.pid} .*--url http://127.0.0.1:8123"):
            datadir.acquire(tmp_path / "data")
        assert time.perf_counter() - started < 1.0  # at once, never a wait
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        assert child.stdout is not None
        child.stdout.close()
    with datadir.held(tmp_path / "data"):  # the kernel let go with the process
        pass


def test_a_child_process_never_inherits_the_lock(tmp_path: Path) -> None:
    lock = datadir.acquire(tmp_path / "data")
    assert not os.get_inheritable(lock._fd or -1)
    # close_fds=False: only close-on-exec keeps the descriptor from the child
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], close_fds=False)
    try:
        lock.release()
        assert acquired_within(tmp_path / "data", seconds=5.0)  # (the exec may lag a moment)
        assert child.poll() is None  # the child lives on, holding nothing
    finally:
        child.kill()
        child.wait(10)


def acquired_within(data_dir: Path, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while True:
        try:
            datadir.acquire(data_dir).release()
            return True
        except StoreLocked:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)


def test_a_data_dir_that_cannot_hold_a_lock_is_a_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(ConfigError, match="cannot open the data dir lock"):
        datadir.acquire(blocker)


def test_sqlite_urls_and_where_their_files_are(tmp_path: Path) -> None:
    inside = f"sqlite+aiosqlite:///{tmp_path}/data/vecpipe.db"
    assert datadir.sqlite_file(inside) == tmp_path / "data" / "vecpipe.db"
    assert datadir.is_under(datadir.sqlite_file(inside), tmp_path / "data")
    assert not datadir.is_under(datadir.sqlite_file(inside), tmp_path / "other")
    assert datadir.sqlite_file("postgresql+asyncpg://u@h/db") is None
    assert datadir.sqlite_file("sqlite+aiosqlite:///:memory:") is None
    assert datadir.sqlite_file("sqlite+aiosqlite://") is None


def test_serving_urls_are_reachable_from_this_machine() -> None:
    assert datadir.serving_url("0.0.0.0", 8000) == "http://127.0.0.1:8000"
    assert datadir.serving_url("::", 8000) == "http://[::1]:8000"
    assert datadir.serving_url("127.0.0.2", 81) == "http://127.0.0.2:81"
    assert datadir.serving_url("localhost", 81) == "http://localhost:81"


def test_only_stacks_with_files_in_the_data_dir_take_the_lock(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    elsewhere = {
        "store": "qdrant",
        "queue": "rabbitmq",
        "database_url": "postgresql+asyncpg://u@127.0.0.1/db",
    }
    scale_out = make_settings(data_dir, **elsewhere)
    assert not uses_data_dir(scale_out)
    # workers on servers share a machine, and a data dir setting
    with datadir.held(data_dir), claim_data_dir(scale_out), claim_database(scale_out):
        pass
    for one_here in ({"store": "edge"}, {"queue": "sqlite"}, {"database_url": None}):
        settings = make_settings(data_dir, **(elsewhere | one_here))
        assert uses_data_dir(settings)
        with datadir.held(data_dir), pytest.raises(StoreLocked), claim_data_dir(settings):
            pass
    outside_db = make_settings(data_dir, database_url=f"sqlite+aiosqlite:///{tmp_path}/x.db")
    with datadir.held(data_dir), claim_database(outside_db):
        pass


async def test_a_second_resource_stack_fails_before_opening_anything(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data")
    async with open_resources(settings) as resources:
        await resources.store.ensure_space(FAKE_SPACE)  # a shard is open
        before = sorted(p.name for p in (tmp_path / "data").iterdir())
        with pytest.raises(StoreLocked, match=f"process {os.getpid()}"):
            async with open_resources(settings):
                pytest.fail("a second stack opened the data dir")
        assert sorted(p.name for p in (tmp_path / "data").iterdir()) == before
    async with open_resources(settings):  # the first one gave it back when it closed
        pass
