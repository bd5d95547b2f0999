"""`vecpipe tenant migrate-status T`: the latest migration of a tenant, as JSON."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from typer.testing import CliRunner

from tests.support.app import FakeFactory, make_settings
from tests.support.processes import wait_until_async
from vecpipe.cli import app
from vecpipe.models import Record
from vecpipe.resources import open_resources


def migrate_status(tenant: str, data_dir: Path) -> dict[str, object]:
    env = {"VECPIPE_DATA_DIR": str(data_dir), "VECPIPE_LOG_LEVEL": "WARNING"}
    result = CliRunner().invoke(app, ["tenant", "migrate-status", tenant], env=env)
    assert result.exit_code == 0, result.output
    shown: dict[str, object] = json.loads(result.output)
    return shown


async def test_migrate_status_shows_the_latest_migration(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    settings = make_settings(data_dir, migration_grace_seconds=3600)
    async with open_resources(settings, provider_factory=FakeFactory()) as resources:
        pipeline = resources.pipeline
        await pipeline.ingest("acme", [Record(id=f"r{i}", text=f"text {i}") for i in range(5)])
        await pipeline.set_ai_config("acme", {"primary": {"kind": "local", "model": "next"}})

        async def switched() -> bool:
            return (await pipeline.migration_status("acme") or {}).get("state") == "switched"

        await wait_until_async(switched, 20, "the migration to switch")
    shown = await asyncio.to_thread(migrate_status, "acme", data_dir)
    migration = shown["migration"]
    assert isinstance(migration, dict)
    assert (migration["state"], migration["done"], migration["total"]) == ("switched", 5, 5)
    assert migration["to_space"] == {"model": "next", "dimension": 32}
    assert migration["delete_old_after"] is not None
    nothing = await asyncio.to_thread(migrate_status, "other", data_dir)
    assert nothing == {"tenant_id": "other", "migration": None}
