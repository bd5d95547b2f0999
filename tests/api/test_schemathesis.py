"""schemathesis with every check, over every route, against a real `vecpipe serve`.

The server is the real command (uvicorn, the lifespan, the worker, the error handlers) with
fake embedding providers (tests/support/fake_serve.py), an admin token (so `ignored_auth`
has something to find) and a fresh data dir. schemathesis runs as its users run it, the
CLI with `--checks all`: every phase (examples, coverage, fuzzing, stateful), bounded
(`--max-examples`) and seeded, so a run is repeatable and takes about half a minute.
tests/api/schemathesis.toml names the two places where the schema cannot say what the
server checks. A failure prints schemathesis' own report, with a curl line per case.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.server import ServeProcess

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
CONFIG = Path(__file__).with_name("schemathesis.toml")
ADMIN_TOKEN = "schemathesis-admin-token-0123456789"
MAX_EXAMPLES = 10
SEED = 16


def test_every_check_passes_on_every_route(tmp_path: Path) -> None:
    env = {"VECPIPE_ADMIN_TOKEN": ADMIN_TOKEN}
    with ServeProcess(tmp_path / "data", extra_env=env, fake_providers=True) as server:
        started = time.monotonic()
        run = subprocess.run(
            [
                str(Path(sys.executable).with_name("schemathesis")),
                "--config-file",
                str(CONFIG),
                "--no-color",
                "run",
                f"{server.base_url}/openapi.json",
                "--checks",
                "all",
                "--max-examples",
                str(MAX_EXAMPLES),
                "--seed",
                str(SEED),
                "--generation-database",
                "none",
                "--header",
                f"Authorization: Bearer {ADMIN_TOKEN}",
                "--request-timeout",
                "30",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )
        took = time.monotonic() - started
    report = run.stdout + run.stderr
    assert run.returncode == 0, report[-20000:]
    assert "passed" in report and " failed" not in report.splitlines()[-1], report[-3000:]
    print(f"schemathesis: {report.strip().splitlines()[-1]} ({took:.0f} s)")
