"""`vecpipe status`: on the data dir, over HTTP (`--url`), and when `serve` holds the store."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import httpx
from typer.testing import CliRunner, Result

from tests.cli.conftest import serving
from tests.support.processes import THIS_COMMAND
from vecpipe.cli import app
from vecpipe.models import Record
from vecpipe.resources import open_resources
from vecpipe.settings import Settings
from vecpipe.worker.background import worker_for

WIDE = {"COLUMNS": "200"}  # rich tables wrap at 80 columns off a terminal
LOCAL = {"primary": {"kind": "local", "model": "all-MiniLM-L6-v2"}}
SPACE = "all-minilm-l6-v2-32"  # the fake providers' 32-dimension space of the default model


def invoke(args: list[str], env: dict[str, str]) -> Result:
    return CliRunner().invoke(app, args, env={**WIDE, **env})


def records(prefix: str, n: int) -> list[Record]:
    return [Record(id=f"{prefix}{i}", text=f"{prefix} document number {i}") for i in range(n)]


async def _populate(settings: Settings) -> None:
    """acme: configured, 3 records; globex: a job of 2 records; quiet: 1 record, neither a
    config nor a job (nothing but the store knows it); one poison message."""
    async with open_resources(settings) as resources:
        pipeline = resources.pipeline
        await pipeline.set_ai_config("acme", LOCAL)
        await pipeline.ingest("acme", records("a", 3))
        await pipeline.ingest("quiet", records("q", 1))
        await pipeline.submit_job("globex", upserts=records("g", 2))
        await resources.queue.publish([b"{not json"])
        await worker_for(resources, settings=settings).run_until_idle()


async def test_status_on_the_data_dir(fake_cli: dict[str, str]) -> None:
    await _populate(Settings(data_dir=Path(fake_cli["VECPIPE_DATA_DIR"])))

    shown = await asyncio.to_thread(invoke, ["status"], fake_cli)
    assert shown.exit_code == 0, shown.output
    out = shown.stdout
    assert "queue: 0 waiting or in flight · dead letters: 1 · jobs: 0 queued, 0 running" in out
    assert "1 completed" in out
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in out.splitlines()]
    assert ["acme", "yes", SPACE, "3", "3"] in rows and ["globex", "no", SPACE, "2", "2"] in rows
    assert ["quiet", "no", SPACE, "1", "1"] in rows  # known to the store alone, listed all the same
    assert "fake:all-MiniLM-L6-v2" in out and "closed" in out
    assert "tenants not listed" not in out

    as_json = await asyncio.to_thread(invoke, ["status", "--json"], fake_cli)
    report = json.loads(as_json.stdout)
    tenants = report["tenants"]
    assert [(t["tenant_id"], t["configured"], t["records"], t["points"]) for t in tenants] == [
        ("acme", True, 3, 3),
        ("globex", False, 2, 2),
        ("quiet", False, 1, 1),
    ]
    assert report["spaces"] == [
        {"space": SPACE, "model": "all-MiniLM-L6-v2", "dimension": 32, "points": 6}
    ]
    assert (report["queue_depth"], report["dead_letters"], report["unlisted_points"]) == (0, 1, 0)
    assert report["jobs"] == {"queued": 0, "running": 0, "completed": 1}
    assert report["providers"] == [{"name": "fake:all-MiniLM-L6-v2", "breaker": "closed"}]


async def test_status_explains_a_store_held_by_another_process(fake_cli: dict[str, str]) -> None:
    settings = Settings(data_dir=Path(fake_cli["VECPIPE_DATA_DIR"]))
    async with open_resources(settings) as resources:  # stands in for a running `serve`
        await resources.pipeline.ingest("acme", records("a", 1))
        shown = await asyncio.to_thread(invoke, ["status"], fake_cli)
    assert shown.exit_code == 2
    said = " ".join(shown.stderr.split())
    assert f"is in use by process {os.getpid()} ({THIS_COMMAND})" in said  # who, then what to do
    assert "stop it first" in said and "--url" in said and "VECPIPE_URL" in said


async def test_status_over_http_with_the_admin_token(tmp_path: Path) -> None:
    token = "status-admin-token-123"
    with serving(tmp_path / "served", admin_token=token) as server:
        async with httpx.AsyncClient(base_url=server.url) as http:
            headers = {"Authorization": f"Bearer {token}"}
            body = {"upsert": [{"id": "r1", "text": "a shipping note"}]}
            posted = await http.post("/v1/tenants/acme/jobs", json=body, headers=headers)
            assert posted.status_code == 202
        env = {"VECPIPE_URL": server.url, "VECPIPE_DATA_DIR": str(tmp_path / "elsewhere")}
        refused = await asyncio.to_thread(invoke, ["status"], env)
        assert refused.exit_code == 2
        assert f"{server.url} answered 401" in refused.stderr
        shown = await asyncio.to_thread(
            invoke, ["status", "--json"], {**env, "VECPIPE_ADMIN_TOKEN": token}
        )
    assert shown.exit_code == 0, shown.output
    report = json.loads(shown.stdout)
    assert [t["tenant_id"] for t in report["tenants"]] == ["acme"]
    assert report["jobs"]["queued"] + report["jobs"]["running"] + report["jobs"]["completed"] == 1
    assert not (tmp_path / "elsewhere").exists()  # --url never touches a data dir


async def test_status_routes_are_for_the_admin_only(tmp_path: Path) -> None:
    data_dir = tmp_path / "served"
    admin = {"Authorization": "Bearer admin-token-abcdef"}
    with serving(data_dir, admin_token="admin-token-abcdef") as server:
        async with httpx.AsyncClient(base_url=server.url) as http:
            created = await http.post("/v1/tenants/acme/tokens", headers=admin)
            assert created.status_code == 201, created.text
            tenant_token = created.json()["token"]
            assert (await http.get("/v1/status")).status_code == 401
            tenant = {"Authorization": f"Bearer {tenant_token}"}
            for path in ("/v1/status", "/v1/jobs", "/v1/jobs/x"):
                assert (await http.get(path, headers=tenant)).status_code == 403
