"""Tenant tokens over HTTP and the CLI; loopback mode; the metrics token; the bind rule."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from tests.security.conftest import ADMIN_TOKEN, METRICS_TOKEN, bearer, data_bytes, open_client
from tests.support.app import make_settings
from vecpipe.cli import app as cli
from vecpipe.db.engine import open_database
from vecpipe.db.tokens import hash_token
from vecpipe.errors import ConfigError
from vecpipe.runtime import check_bind
from vecpipe.settings import Settings

ADMIN = bearer(ADMIN_TOKEN)


async def _issue(http: httpx.AsyncClient, tenant_id: str, headers: dict[str, str]) -> Any:
    response = await http.post(f"/v1/tenants/{tenant_id}/tokens", headers=headers)
    assert response.status_code == 201, response.text
    return response


async def test_issue_use_list_and_revoke(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", admin_token=ADMIN_TOKEN)
    async with open_client(settings) as http:
        issued = await _issue(http, "acme", ADMIN)
        body = issued.json()
        assert set(body) == {"token", "token_id", "tenant_id", "created_at"}
        assert body["token"].startswith("vp_") and len(body["token"]) > 40
        assert issued.headers["cache-control"] == "no-store"
        token, token_id = body["token"], body["token_id"]
        mine = bearer(token)
        assert (await http.get("/v1/tenants/acme/ai-config", headers=mine)).status_code == 200
        listed = await http.get("/v1/tenants/acme/tokens", headers=ADMIN)
        assert [t["token_id"] for t in listed.json()["tokens"]] == [token_id]
        assert token not in listed.text
        other = (await _issue(http, "beta", ADMIN)).json()
        through_acme = await http.delete(
            f"/v1/tenants/acme/tokens/{other['token_id']}", headers=ADMIN
        )
        assert through_acme.status_code == 404  # beta's token id under acme's path
        beta_ok = await http.get("/v1/tenants/beta/ai-config", headers=bearer(other["token"]))
        assert beta_ok.status_code == 200
        revoke = await http.delete(f"/v1/tenants/acme/tokens/{token_id}", headers=ADMIN)
        assert revoke.status_code == 204
        assert (await http.get("/v1/tenants/acme/ai-config", headers=mine)).status_code == 401
        again = await http.delete(f"/v1/tenants/acme/tokens/{token_id}", headers=ADMIN)
        assert again.status_code == 404
        listed = await http.get("/v1/tenants/acme/tokens", headers=ADMIN)
        assert listed.json()["tokens"][0]["revoked_at"] is not None
    stored = b"".join(data_bytes(p) for p in settings.data_dir.rglob("*") if p.is_file())
    assert hash_token(token).encode() in stored  # the hash is kept (positive control) ...
    assert token.encode() not in stored  # ... the token never


async def test_tenant_tokens_cannot_issue_tokens(tmp_path: Path) -> None:
    async with open_client(make_settings(tmp_path / "data", admin_token=ADMIN_TOKEN)) as http:
        mine = bearer((await _issue(http, "acme", ADMIN)).json()["token"])
        own = await http.post("/v1/tenants/acme/tokens", headers=mine)
        assert own.status_code == 403 and own.json()["error"]["code"] == "forbidden"
        other = await http.post("/v1/tenants/beta/tokens", headers=mine)
        assert other.status_code == 404
        assert (await http.post("/v1/tenants/bad id/tokens", headers=ADMIN)).status_code == 422


async def test_loopback_mode_without_an_admin_token(tmp_path: Path) -> None:
    """No admin token: no token (or any non-`vp_` one, as the openai client must send) acts
    as admin; a tenant token still confines; an unknown or revoked one is refused."""
    async with open_client(make_settings(tmp_path / "data")) as http:
        assert (await http.get("/v1/tenants/acme/ai-config")).status_code == 200
        unused = await http.get("/v1/tenants/acme/ai-config", headers=bearer("unused"))
        assert unused.status_code == 200
        issued = (await _issue(http, "acme", {})).json()
        mine = bearer(issued["token"])
        assert (await http.get("/v1/tenants/acme/ai-config", headers=mine)).status_code == 200
        assert (await http.get("/v1/tenants/beta/ai-config", headers=mine)).status_code == 404
        assert (await http.post("/v1/tenants/acme/tokens", headers=mine)).status_code == 403
        forged = await http.get("/v1/tenants/acme/ai-config", headers=bearer("vp_forged"))
        assert forged.status_code == 401
        await http.delete(f"/v1/tenants/acme/tokens/{issued['token_id']}")
        assert (await http.get("/v1/tenants/acme/ai-config", headers=mine)).status_code == 401


@pytest.mark.parametrize("metrics_token", [METRICS_TOKEN, None])
async def test_metrics_token_and_health_endpoints(
    tmp_path: Path, metrics_token: str | None
) -> None:
    settings = make_settings(
        tmp_path / "data", admin_token=ADMIN_TOKEN, metrics_token=metrics_token
    )
    async with open_client(settings) as http:
        tenant = bearer((await _issue(http, "secret-tenant-name", ADMIN)).json()["token"])
        records = {"upsert": [{"id": "r1", "text": "hello"}]}
        await http.post("/v1/tenants/secret-tenant-name/records", json=records, headers=tenant)
        refused = [None, bearer("wrong"), tenant]
        for headers in refused:
            response = await http.get("/metrics", headers=headers)
            assert response.status_code == (401 if metrics_token else 200), headers
        for token in (METRICS_TOKEN, ADMIN_TOKEN):
            assert (await http.get("/metrics", headers=bearer(token))).status_code == 200
        for path in ("/healthz", "/readyz"):
            response = await http.get(path)
            assert response.status_code == 200 and "secret-tenant-name" not in response.text


def test_serve_without_an_admin_token_binds_only_to_loopback() -> None:
    for host in ("127.0.0.1", "127.0.0.2", "::1", "localhost"):
        check_bind(Settings(host=host))
    for host in ("0.0.0.0", "::", "10.0.0.5", "example.com"):
        with pytest.raises(ConfigError, match="VECPIPE_ADMIN_TOKEN"):
            check_bind(Settings(host=host))
        check_bind(Settings(host=host, admin_token=ADMIN_TOKEN))  # type: ignore[arg-type]


def _cli(env: dict[str, str], *args: str) -> tuple[int, list[dict[str, Any]]]:
    result = CliRunner().invoke(cli, ["tenant", "token", *args], env=env)
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return result.exit_code, lines


async def test_cli_creates_lists_and_revokes_tokens(tmp_path: Path) -> None:
    env = {"VECPIPE_DATA_DIR": str(tmp_path / "data"), "VECPIPE_LOG_LEVEL": "WARNING"}
    code, [created] = await asyncio.to_thread(_cli, env, "create", "acme")
    assert code == 0 and created["token"].startswith("vp_") and created["tenant_id"] == "acme"
    code, listed = await asyncio.to_thread(_cli, env, "list")
    assert code == 0 and [row["token_id"] for row in listed] == [created["token_id"]]
    assert created["token"] not in json.dumps(listed)
    settings = make_settings(tmp_path / "data")
    async with open_database(settings.resolved_database_url) as db:
        assert await db.tokens.verify(created["token"]) == "acme"
    code, _ = await asyncio.to_thread(_cli, env, "revoke", "beta", created["token_id"])
    assert code == 2  # not beta's
    code, _ = await asyncio.to_thread(_cli, env, "revoke", "acme", created["token_id"])
    assert code == 0
    assert (await asyncio.to_thread(_cli, env, "create", "bad tenant!"))[0] == 2
    async with open_database(settings.resolved_database_url) as db:
        assert await db.tokens.verify(created["token"]) is None
