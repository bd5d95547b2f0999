"""The free-space floor, and telling a full disk from other failures."""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from vecpipe.diskspace import (
    MIB,
    FreeSpaceFloor,
    disk_full_as_storage_full,
    fills_holes_on_read,
    free_bytes,
    is_disk_full,
    sparse_bytes,
)
from vecpipe.errors import StorageFull, StoreError
from vecpipe.settings import Settings


class Gauge:
    """A disk whose free space the test sets; counts the measurements."""

    def __init__(self, free: int) -> None:
        self.free = free
        self.calls = 0

    def __call__(self, path: Path) -> int:
        self.calls += 1
        return self.free


async def test_the_floor_refuses_below_and_measures_every_time(tmp_path: Path) -> None:
    gauge = Gauge(100 * MIB)
    floor = FreeSpaceFloor(tmp_path, 64 * MIB, measure=gauge)
    await floor.check()
    floor.check_blocking()
    gauge.free = 10 * MIB  # another program filled the disk meanwhile: seen at once
    with pytest.raises(StorageFull) as refused:
        await floor.check()
    assert "10.0 MiB free, below the floor of 64.0 MiB" in refused.value.message
    assert "VECPIPE_MIN_FREE_BYTES" in refused.value.message
    assert str(tmp_path) not in refused.value.message  # no server path in a client's answer
    with pytest.raises(StorageFull):
        floor.check_blocking()
    assert gauge.calls == 4
    gauge.free = 64 * MIB
    await floor.check()


async def test_a_floor_of_zero_never_refuses_nor_measures(tmp_path: Path) -> None:
    gauge = Gauge(0)
    floor = FreeSpaceFloor(tmp_path, 0, measure=gauge)
    await floor.check()
    floor.check_blocking()
    assert gauge.calls == 0 and not floor.enabled


async def test_crossing_the_floor_is_logged_once_each_way(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    gauge = Gauge(1 * MIB)
    floor = FreeSpaceFloor(tmp_path, 8 * MIB, label="data dir", measure=gauge)
    with caplog.at_level(logging.INFO, logger="vecpipe.diskspace"):
        for _ in range(3):
            with pytest.raises(StorageFull):
                await floor.check()
        gauge.free = 100 * MIB
        await floor.check()
        await floor.check()
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2, messages
    assert "refusing writes" in messages[0] and "taking writes" in messages[1]


async def test_a_disk_that_cannot_be_measured_is_a_store_error(tmp_path: Path) -> None:
    def broken(path: Path) -> int:
        raise OSError(errno.EIO, "Input/output error")

    with pytest.raises(StoreError, match="cannot measure the free space"):
        await FreeSpaceFloor(tmp_path, MIB, measure=broken).check()


def test_free_bytes_of_a_dir_not_made_yet_is_its_parents(tmp_path: Path) -> None:
    assert free_bytes(tmp_path / "not" / "yet") == free_bytes(tmp_path) > 0


def test_the_floor_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().min_free_bytes == 128 * MIB
    monkeypatch.setenv("VECPIPE_MIN_FREE_BYTES", "0")
    assert Settings().min_free_bytes == 0
    monkeypatch.setenv("VECPIPE_MIN_FREE_BYTES", "-1")
    with pytest.raises(ValueError, match="min_free_bytes"):
        Settings()


@pytest.mark.parametrize(
    "error",
    [
        sqlite3.OperationalError("database or disk is full"),
        sa.exc.OperationalError("INSERT", {}, sqlite3.OperationalError("database or disk is full")),
        OSError(errno.ENOSPC, "No space left on device"),
        OSError(errno.EDQUOT, "Disk quota exceeded"),
        RuntimeError("Service internal error: No space left on device (os error 28)"),
    ],
    ids=["sqlite", "sqlalchemy", "enospc", "quota", "engine"],
)
def test_disk_full_errors_are_recognised(error: Exception) -> None:
    assert is_disk_full(error)


def test_a_disk_full_cause_is_recognised_through_wrappers() -> None:
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as cause:
            raise StoreError("edge upsert failed") from cause
    except StoreError as wrapped:
        assert is_disk_full(wrapped)


def test_postgres_disk_full_is_recognised() -> None:
    class DiskFullError(Exception):  # asyncpg's, by its SQLSTATE
        sqlstate = "53100"

    assert is_disk_full(sa.exc.OperationalError("INSERT ...", {}, DiskFullError("no space")))


@pytest.mark.parametrize(
    "error",
    [
        sqlite3.OperationalError("disk I/O error"),
        sqlite3.OperationalError("database is locked"),
        OSError(errno.EACCES, "Permission denied"),
        StoreError("edge flush failed"),
    ],
)
def test_other_failures_are_not_a_full_disk(error: Exception) -> None:
    assert not is_disk_full(error)


def test_disk_full_becomes_storage_full_and_other_errors_pass() -> None:
    full = pytest.raises(StorageFull, match="database write: the disk is full")
    with full, disk_full_as_storage_full("database write"):
        raise sqlite3.OperationalError("database or disk is full")
    locked = pytest.raises(sqlite3.OperationalError, match="locked")
    with locked, disk_full_as_storage_full("database write"):
        raise sqlite3.OperationalError("database is locked")


def test_sparse_bytes_counts_holes_and_skips_what_it_is_told(tmp_path: Path) -> None:
    (tmp_path / "wal").mkdir()
    for path in (tmp_path / "sparse", tmp_path / "wal" / "open-1"):
        with path.open("wb") as file:
            file.truncate(8 * MIB)  # all hole
    (tmp_path / "dense").write_bytes(b"x" * MIB)
    holes = sparse_bytes(tmp_path, skip=frozenset({"wal"}))
    assert 8 * MIB - 64 * 1024 <= holes <= 8 * MIB
    assert sparse_bytes(tmp_path) >= 2 * holes - 64 * 1024


def test_memory_backed_file_systems_fill_holes_on_read(tmp_path: Path) -> None:
    kinds = _mount_types()
    assert fills_holes_on_read(tmp_path) == (kinds.get(_mount_of(tmp_path)) == "tmpfs")
    shm = Path("/dev/shm")
    if kinds.get(shm) != "tmpfs":
        pytest.skip("no tmpfs at /dev/shm to compare with")
    assert fills_holes_on_read(shm / "not-made-yet")


def _mount_types() -> dict[Path, str]:
    kinds = {}
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields, _, after = line.partition(" - ")
        kinds[Path(fields.split()[4])] = after.split()[0]
    return kinds


def _mount_of(path: Path) -> Path:
    path = path.resolve()
    while not os.path.ismount(path):
        path = path.parent
    return path
