"""`vecpipe jobs` lists and follows jobs; job progress over HTTP carries rate and ETA."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from typer.testing import CliRunner, Result

from tests.cli.conftest import Served
from vecpipe.api.schemas import JobResponse
from vecpipe.cli import app
from vecpipe.db.jobs import JobStatus
from vecpipe.models import Record
from vecpipe.resources import open_resources
from vecpipe.settings import Settings
from vecpipe.worker.background import worker_for


def invoke(args: list[str], env: dict[str, str]) -> Result:
    return CliRunner().invoke(app, args, env={"COLUMNS": "200", **env})


def records(prefix: str, n: int) -> list[Record]:
    return [Record(id=f"{prefix}{i}", text=f"{prefix} line {i}") for i in range(n)]


async def test_jobs_reads_the_database_and_takes_the_data_dirs_lock(
    fake_cli: dict[str, str],
) -> None:
    settings = Settings(data_dir=Path(fake_cli["VECPIPE_DATA_DIR"]))
    async with open_resources(settings) as resources:  # owns the data dir, like `serve`
        pipeline = resources.pipeline
        done = await pipeline.submit_job("acme", upserts=records("a", 3))
        await worker_for(resources, settings=settings).run_until_idle()
        waiting = await pipeline.submit_job("globex", upserts=records("g", 2))
        # the default SQLite database is the data dir's: beside its owner, only --url
        refused = await asyncio.to_thread(invoke, ["jobs"], fake_cli)
    assert refused.exit_code == 2
    assert "is in use by process" in refused.stderr and "--url" in refused.stderr

    listed = await asyncio.to_thread(invoke, ["jobs"], fake_cli)
    as_json = await asyncio.to_thread(invoke, ["jobs", "--json", "-t", "acme"], fake_cli)
    followed = await asyncio.to_thread(invoke, ["jobs", "--follow", done], fake_cli)

    assert listed.exit_code == 0, listed.output
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in listed.stdout.splitlines()]
    assert [waiting, "globex", "queued", "0/2", "0", "0", "-", "-"] in rows
    assert [done, "acme", "completed", "3/3", "0", "0", "-", "0s"] in rows
    [only] = json.loads(as_json.stdout)
    assert (only["job_id"], only["status"], only["done"], only["eta_seconds"]) == (
        done,
        "completed",
        3,
        0.0,
    )
    assert followed.exit_code == 0, followed.output
    summary = json.loads(followed.stdout)
    assert (summary["status"], summary["total"], summary["done"]) == ("completed", 3, 3)
    assert f"job {done[:8]}: 3/3 records (100%)" in followed.stderr


async def test_follow_over_http_shows_progress_until_completed(served: Served) -> None:
    body = {"upsert": [{"id": f"r{i}", "text": f"note number {i}"} for i in range(300)]}
    async with httpx.AsyncClient(base_url=served.url) as http:
        accepted = await http.post("/v1/tenants/acme/jobs", json=body)
    job_id = accepted.json()["job_id"]
    env = {"VECPIPE_URL": served.url}
    args = ["jobs", "--follow", job_id, "--interval", "0.05"]
    followed = await asyncio.to_thread(invoke, args, env)

    assert followed.exit_code == 0, followed.output
    summary = json.loads(followed.stdout)
    assert (summary["status"], summary["done"], summary["failed"]) == ("completed", 300, 0)
    # (the server runs in this process: its log lines land on the same stderr)
    lines = [line for line in followed.stderr.splitlines() if line.startswith("job ")]
    assert lines[-1].startswith(f"job {job_id[:8]}: 300/300 records (100%), ")
    pattern = re.compile(
        rf"job {job_id[:8]}: \d+/300 records \(\d+%\), (?:[\d.]+|--) records/s, eta "
    )
    assert all(pattern.match(line) for line in lines)

    listed = await asyncio.to_thread(invoke, ["jobs", "--json"], env)
    assert [j["job_id"] for j in json.loads(listed.stdout)] == [job_id]
    unknown = await asyncio.to_thread(invoke, ["jobs", "--follow", "nope"], env)
    assert unknown.exit_code == 2 and "answered 404" in unknown.stderr


async def test_job_progress_over_http_has_rate_and_eta(served: Served) -> None:
    async with httpx.AsyncClient(base_url=served.url) as http:
        body = {"upsert": [{"id": "r1", "text": "one note"}]}
        job_id = (await http.post("/v1/tenants/acme/jobs", json=body)).json()["job_id"]
        for _ in range(200):  # the in-process worker polls every 20 ms
            job = (await http.get(f"/v1/tenants/acme/jobs/{job_id}")).json()
            if job["status"] == "completed":
                break
            await asyncio.sleep(0.05)
        listed = (await http.get("/v1/tenants/acme/jobs")).json()
        admin_view = (await http.get(f"/v1/jobs/{job_id}")).json()
    assert job["status"] == "completed"
    assert {"rate", "eta_seconds", "elapsed_seconds", "created_at"} <= job.keys()
    assert job["eta_seconds"] == 0.0 and job["tenant_id"] == "acme"
    assert [j["job_id"] for j in listed] == [job_id]
    assert admin_view["job_id"] == job_id and admin_view["tenant_id"] == "acme"


def test_rate_and_eta_from_counts_and_age() -> None:
    created = datetime(2026, 1, 1, tzinfo=UTC)
    now = created + timedelta(seconds=10)

    def status(state: str, counted: int) -> JobStatus:
        return JobStatus(
            job_id="j",
            tenant_id="t",
            status=state,  # type: ignore[arg-type]
            total=100,
            done=counted,
            unchanged=0,
            failed=0,
            created_at=created,
            failures=[],
        )

    running = JobResponse.from_status(status("running", 30), now)
    assert (running.rate, running.eta_seconds, running.elapsed_seconds) == (3.0, 23.3, 10.0)
    queued = JobResponse.from_status(status("queued", 0), now)
    assert (queued.rate, queued.eta_seconds, queued.elapsed_seconds) == (None, None, 10.0)
    completed = JobResponse.from_status(status("completed", 100), now)
    assert (completed.rate, completed.eta_seconds) == (None, 0.0)
    finished = status("completed", 100).model_copy(
        update={"finished_at": created + timedelta(seconds=4)}
    )
    done = JobResponse.from_status(finished, now + timedelta(hours=1))
    # elapsed stops at completion: submission to the last outcome, however late it is read
    assert (done.elapsed_seconds, done.finished_at) == (4.0, finished.finished_at)


async def test_job_ids_in_the_table_are_whole_on_a_narrow_terminal(served: Served) -> None:
    async with httpx.AsyncClient(base_url=served.url) as http:
        body = {"upsert": [{"id": "r1", "text": "one note"}]}
        job_id = (await http.post("/v1/tenants/acme/jobs", json=body)).json()["job_id"]
    env = {"VECPIPE_URL": served.url, "COLUMNS": "60"}
    listed = await asyncio.to_thread(CliRunner().invoke, app, ["jobs"], env=env)
    assert listed.exit_code == 0, listed.output
    assert job_id in listed.stdout  # on one line, not cut or folded: it can be pasted


async def test_following_a_completed_job_shows_no_absurd_rate(served: Served) -> None:
    async with httpx.AsyncClient(base_url=served.url) as http:
        body = {"upsert": [{"id": f"r{i}", "text": f"note {i}"} for i in range(50)]}
        job_id = (await http.post("/v1/tenants/acme/jobs", json=body)).json()["job_id"]
        for _ in range(200):
            job = (await http.get(f"/v1/jobs/{job_id}")).json()
            if job["status"] == "completed":
                break
            await asyncio.sleep(0.05)
    args = ["jobs", "--follow", job_id]
    followed = await asyncio.to_thread(invoke, args, {"VECPIPE_URL": served.url})
    assert followed.exit_code == 0, followed.output
    lines = [line for line in followed.stderr.splitlines() if line.startswith("job ")]
    assert lines == [f"job {job_id[:8]}: 50/50 records (100%), completed"]
