"""The serve helper never leaves a process behind when a start fails."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.server import ServeProcess


def test_a_start_that_times_out_kills_the_server(tmp_path: Path) -> None:
    server = ServeProcess(tmp_path / "data")
    with pytest.raises(TimeoutError):
        server.start(timeout=0.05)
    assert server.process is not None
    assert server.process.poll() is not None  # killed and reaped, not still loading
