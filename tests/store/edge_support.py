"""Helpers for the Edge tests: the shard directories of a space, a held optimizer child."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.store.contract import SPACE
from vecpipe.store.edge import generations as edge_generations
from vecpipe.store.edge import optimize as edge_optimize


def shards(data_dir: Path) -> Path:
    return data_dir / "shards"


def space_dirs(data_dir: Path) -> list[str]:
    return [p.name for p in edge_generations.generations(shards(data_dir), SPACE.key)]


class GatedChild:
    """The real optimizer child, held after it starts until `release()`."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.started = tmp_path / "child-started"  # holds the child's pid
        self.gate = tmp_path / "child-go"
        hold = (
            "import os, pathlib, time\n"
            f"pathlib.Path({str(self.started)!r}).write_text(str(os.getpid()))\n"
            f"while not pathlib.Path({str(self.gate)!r}).exists(): time.sleep(0.01)\n"
        )
        # after the guard: the held child already dies with its parent and holds its dir
        monkeypatch.setattr(edge_optimize, "_CHILD_WORK", hold + edge_optimize._CHILD_WORK)

    async def wait_started(self) -> None:
        for _ in range(3000):  # an interpreter start, however slow the box
            if self.started.exists() and self.started.read_text():
                return
            await asyncio.sleep(0.01)
        raise AssertionError("the optimizer child never started")

    def release(self) -> None:
        self.gate.touch()

    @property
    def pid(self) -> int:
        return int(self.started.read_text())
