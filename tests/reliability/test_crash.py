"""The crash test (scripts/crash_test.py) at a small size, on the SQLite queue and on RabbitMQ.

A queue job runs while `vecpipe worker` is SIGKILLed at random moments and restarted; a second
job rewrites some records meanwhile. The script checks that every record is stored exactly
once with its newest text and counted once by its job, and prints a JSON report.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.queue.conftest import rabbitmq_url  # noqa: F401  (the skip-or-fail fixture)

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "crash_test.py"
RECORDS = 150
KILLS = 3

pytestmark = pytest.mark.slow


def run_crash_test(queue: str, *extra: str) -> dict[str, Any]:
    seed = str(random.randrange(1_000_000))
    args = ["--records", str(RECORDS), "--kills", str(KILLS), "--queue", queue, "--seed", seed]
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args, *extra],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.stdout.strip(), f"seed {seed}: no report\n{done.stderr[-4000:]}"
    report: dict[str, Any] = json.loads(done.stdout)
    assert done.returncode == 0, f"seed {seed}: {json.dumps(report, indent=2)}"
    return report


def check(report: dict[str, Any]) -> None:
    assert report["ok"] and not report["problems"]
    assert report["kills"] == KILLS and report["incarnations"] == KILLS + 1
    updates = report["updates"]
    for name, total in (("create", RECORDS), ("update", updates)):
        job = report["jobs"][name]
        assert job["status"] == "completed" and job["failed"] == 0
        assert job["total"] == total == job["done"] + job["unchanged"]
    assert report["points"] == RECORDS  # one chunk each: no duplicate, no leftover
    assert (report["stale"], report["missing"]) == (0, 0)
    assert (report["dead_letters"], report["depth"], report["final_exit_code"]) == (0, 0, 0)


def test_sigkilled_worker_on_the_sqlite_queue() -> None:
    check(run_crash_test("sqlite"))


@pytest.mark.rabbitmq
def test_sigkilled_worker_on_rabbitmq(rabbitmq_url: str) -> None:  # noqa: F811
    check(run_crash_test("rabbitmq", "--rabbitmq-url", rabbitmq_url))
