"""`vecpipe tenant delete T --yes`: offboarding from the CLI, and after a SIGKILL mid-way."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from typer.testing import CliRunner, Result

from tests.core.test_offboard import (
    NOTHING,
    A,
    B,
    populate,
    queue_a_job,
    reachable,
    scan,
    settings_for,
    start_migration,
)
from tests.support.app import FakeFactory
from vecpipe.cli import app
from vecpipe.resources import open_resources

ROOT = Path(__file__).resolve().parents[2]


def invoke(args: list[str], data_dir: Path) -> Result:
    env = {"VECPIPE_DATA_DIR": str(data_dir), "VECPIPE_LOG_LEVEL": "WARNING", "COLUMNS": "200"}
    return CliRunner().invoke(app, args, env=env)


def _deleting(db: Path) -> bool:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.1) as conn:
            return conn.execute("SELECT count(*) FROM tenant_tombstones").fetchone()[0] > 0
    except sqlite3.Error:
        return False


def _kill_mid_deletion(data_dir: Path, delay: float) -> None:
    env = {
        **os.environ,
        "VECPIPE_DATA_DIR": str(data_dir),
        "VECPIPE_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT / "src"),
    }
    child = subprocess.Popen(
        [sys.executable, "-m", "vecpipe.cli", "tenant", "delete", A, "--yes"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not _deleting(data_dir / "vecpipe.db") and child.poll() is None:
            assert time.monotonic() < deadline, "the deletion never started"
            time.sleep(0.005)
        time.sleep(delay)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()


async def test_delete_needs_yes(tmp_path: Path) -> None:
    refused = invoke(["tenant", "delete", A], tmp_path / "data")
    assert refused.exit_code == 2 and "--yes" in refused.output


async def test_killed_mid_deletion_then_repeated_leaves_nothing_of_a(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    async with open_resources(settings, provider_factory=FakeFactory()) as resources:
        marks = {tenant: await populate(resources, tenant) for tenant in (A, B)}
        for tenant in (A, B):
            await queue_a_job(resources, tenant, marks[tenant])
        await start_migration(resources, A)
        before_b = await reachable(resources, B)

    await asyncio.to_thread(_kill_mid_deletion, settings.data_dir, 0.05)

    done = await asyncio.to_thread(invoke, ["tenant", "delete", A, "--yes"], settings.data_dir)
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["tenant_id"] == A
    async with open_resources(settings, provider_factory=FakeFactory()) as resources:
        assert await reachable(resources, A) == NOTHING
        assert await reachable(resources, B) == before_b
    assert scan(settings.data_dir, marks[A].strings) == []
