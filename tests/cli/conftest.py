"""Fixtures for running `vecpipe …` commands in-process, and a server for their `--url` mode.

`fake_cli` makes commands that open the data dir build fake providers (no model to load);
`served` runs the real app (API + worker, fake providers) under uvicorn on a loopback port in
a background thread, as `vecpipe serve` would, for the commands that talk HTTP.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI

from tests.support.app import FakeFactory, make_settings
from vecpipe.api.app import create_app
from vecpipe.logs import reset_logging
from vecpipe.settings import Settings
from vecpipe.worker.background import in_process_worker


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Commands configure logging for the process; give the next test the root it had."""
    root = logging.getLogger()
    level = root.level
    yield
    reset_logging()
    root.setLevel(level)


@pytest.fixture
def fake_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment for a command on a fresh data dir, with fake providers."""
    factory = FakeFactory()
    monkeypatch.setattr("vecpipe.resources.default_provider_factory", lambda *_: factory)
    return {"VECPIPE_DATA_DIR": str(tmp_path / "data"), "VECPIPE_LOG_LEVEL": "WARNING"}


@dataclass
class Served:
    url: str
    settings: Settings
    factory: FakeFactory
    app: FastAPI


@contextmanager
def run_app_in_thread(app: Any, start_timeout: float = 20.0) -> Iterator[str]:
    """uvicorn on 127.0.0.1:<ephemeral>, lifespan on; yields the base URL; stops cleanly."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        loop="asyncio",
        http="h11",
        lifespan="on",
        log_config=None,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="test-vecpipe-server", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + start_timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=start_timeout)
        if thread.is_alive():
            raise RuntimeError("the test server did not stop")


@contextmanager
def serving(data_dir: Path, **overrides: object) -> Iterator[Served]:
    """The API with an in-process worker on its own data dir, as `vecpipe serve` runs it."""
    settings = make_settings(data_dir, **overrides)
    factory = FakeFactory()
    app = create_app(settings, provider_factory=factory, background=in_process_worker)
    with run_app_in_thread(app) as url:
        yield Served(url, settings, factory, app)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    with serving(tmp_path / "served") as server:
        yield server
