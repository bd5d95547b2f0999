"""`vecpipe tenant … --url`: the tenant commands ask a running server, which owns the data dir."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner, Result

from tests.cli.conftest import Served
from vecpipe.cli import app


def invoke(args: list[str], url: str) -> Result:
    return CliRunner().invoke(app, [*args, "--url", url], env={"COLUMNS": "200"})


def test_tenant_commands_take_url(served: Served, tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"primary": {"kind": "local"}}))
    set_ = invoke(["tenant", "set", "acme", str(config)], served.url)
    assert set_.exit_code == 0, set_.output
    assert json.loads(set_.stdout)["tenant_id"] == "acme"
    shown = json.loads(invoke(["tenant", "show", "acme"], served.url).stdout)
    assert shown["configured"] is True and shown["config"]["primary"]["kind"] == "local"
    status = json.loads(invoke(["tenant", "migrate-status", "acme"], served.url).stdout)
    assert status == {"tenant_id": "acme", "migration": None}

    created = invoke(["tenant", "token", "create", "acme"], served.url)
    assert created.exit_code == 0, created.output
    issued = json.loads(created.stdout)
    assert issued["token"].startswith("vp_") and issued["tenant_id"] == "acme"
    listed = [
        json.loads(line)
        for line in invoke(["tenant", "token", "list", "acme"], served.url).stdout.splitlines()
    ]
    assert [entry["token_id"] for entry in listed] == [issued["token_id"]]
    revoked = invoke(["tenant", "token", "revoke", "acme", issued["token_id"]], served.url)
    assert revoked.exit_code == 0 and json.loads(revoked.stdout) == {"revoked": issued["token_id"]}
    again = invoke(["tenant", "token", "revoke", "acme", issued["token_id"]], served.url)
    assert again.exit_code == 2 and "answered 404" in again.stderr
