"""`--url` on `vecpipe ingest`, `search` and `dlq list|replay`, against a running server.

The server (the real app under uvicorn, with its worker and fake providers) owns its data
dir; the commands get another data dir in their environment, which they must never touch:
with `--url` (or VECPIPE_URL) they only talk HTTP. Without it, beside the owner, they fail
with the lock's message (exit 2).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
from typer.testing import CliRunner, Result

from tests.cli.conftest import Served, serving
from tests.support.processes import eventually
from vecpipe.cli import app

TOKEN = "remote-cli-admin-token-0123456789"
TENANT = "acme"


def invoke(args: list[str], env: dict[str, str]) -> Result:
    return CliRunner().invoke(app, args, env={"COLUMNS": "200", **env})


async def vecpipe(env: dict[str, str], *args: str) -> Result:
    return await asyncio.to_thread(invoke, list(args), env)


def json_lines(result: Result) -> list[Any]:
    assert result.exit_code == 0, (result.output, result.exception)
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def remote_env(server: Served, tmp_path: Path) -> dict[str, str]:
    return {
        "VECPIPE_URL": server.url,
        "VECPIPE_ADMIN_TOKEN": TOKEN,
        "VECPIPE_DATA_DIR": str(tmp_path / "never-opened"),
        "VECPIPE_LOG_LEVEL": "WARNING",
    }


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


async def test_ingest_and_search_over_http(tmp_path: Path) -> None:
    records: list[dict[str, Any]] = [
        {"id": f"n{i}", "text": f"shipping note number {i}"} for i in range(40)
    ]
    records.append({"id": "invoice", "text": "invoices are due in thirty days", "metadata": {}})
    source = write_jsonl(tmp_path / "records.jsonl", records)
    with serving(tmp_path / "served", admin_token=TOKEN) as server:
        env = remote_env(server, tmp_path)
        ingested = json_lines(await vecpipe(env, "ingest", str(source), "-t", TENANT))
        assert ingested == [{"upserted": 41, "unchanged": 0, "deleted": 0, "failed": 0}]
        again = json_lines(await vecpipe(env, "ingest", str(source), "-t", TENANT))
        assert again == [{"upserted": 0, "unchanged": 41, "deleted": 0, "failed": 0}]

        [hits] = json_lines(
            await vecpipe(env, "search", str(records[-1]["text"]), "-t", TENANT, "--json")
        )
        assert hits[0]["id"] == "invoice" and hits[0]["text"] == records[-1]["text"]
        table = await vecpipe(env, "search", "shipping note", "-t", TENANT, "--limit", "3")
        assert table.exit_code == 0 and "shipping note number" in table.stdout

        queued = await vecpipe(env, "ingest", str(source), "-t", "globex", "--queue")
        assert queued.exit_code == 0, queued.output
        assert "records queued (follow: vecpipe jobs --follow" in queued.stderr

        # the same commands without --url, beside the owner: refused, never opened
        local = {k: v for k, v in env.items() if k != "VECPIPE_URL"}
        local["VECPIPE_DATA_DIR"] = str(tmp_path / "served")
        for args in (["search", "x", "-t", TENANT], ["ingest", str(source), "-t", TENANT]):
            refused = await vecpipe(local, *args)
            assert refused.exit_code == 2, refused.output
            assert "is in use by process" in " ".join(refused.stderr.split())
        wrong = await vecpipe(
            env | {"VECPIPE_ADMIN_TOKEN": "not-the-admin-token-at-all"}, "search", "x", "-t", TENANT
        )
        assert wrong.exit_code == 2 and "answered 401" in wrong.stderr
    assert not (tmp_path / "never-opened").exists()


async def dead_letters(server: Served, count: int) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=server.url, headers=headers) as http:
        found: list[dict[str, Any]] = []

        async def reached() -> bool:
            nonlocal found
            response = await http.get("/v1/dead-letters")
            assert response.status_code == 200, response.text
            found = response.json()
            return len(found) == count

        await eventually(reached, f"{count} dead letters")
        return found


async def test_dlq_list_and_replay_over_http(tmp_path: Path) -> None:
    with serving(tmp_path / "served", admin_token=TOKEN) as server:
        env = remote_env(server, tmp_path)
        server.factory.built[0].reject_texts_containing = "POISON"  # a refusal for good
        body = {
            "upsert": [
                {"id": "good", "text": "a fine record"},
                {"id": "bad-1", "text": "POISON one"},
                {"id": "bad-2", "text": "POISON two"},
            ]
        }
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(base_url=server.url, headers=headers) as http:
            accepted = await http.post(f"/v1/tenants/{TENANT}/jobs", json=body)
            assert accepted.status_code == 202, accepted.text
        served_letters = await dead_letters(server, 2)
        assert all(letter["body_bytes"] >= len(letter["body"]) for letter in served_letters)

        listed = json_lines(await vecpipe(env, "dlq", "list"))
        assert sorted(json.loads(letter["body"])["record"]["id"] for letter in listed) == [
            "bad-1",
            "bad-2",
        ]
        assert all("rejected an input" in letter["reason"] for letter in listed)
        first = next(letter for letter in listed if '"bad-1"' in letter["body"])

        server.factory.built[0].reject_texts_containing = None  # fixed: replay one by id
        assert json_lines(await vecpipe(env, "dlq", "replay", first["id"])) == [{"replayed": 1}]
        [left] = await dead_letters(server, 1)
        assert '"bad-2"' in left["body"]
        assert json_lines(await vecpipe(env, "dlq", "replay")) == [{"replayed": 1}]
        await dead_letters(server, 0)
        assert json_lines(await vecpipe(env, "dlq", "list")) == []

        local = {k: v for k, v in env.items() if k != "VECPIPE_URL"}
        refused = await vecpipe(
            local | {"VECPIPE_DATA_DIR": str(tmp_path / "served")}, "dlq", "list"
        )
        assert refused.exit_code == 2 and "is in use by process" in " ".join(refused.stderr.split())
    assert not (tmp_path / "never-opened").exists()


async def test_dead_letter_routes_are_for_the_admin_only(tmp_path: Path) -> None:
    with serving(tmp_path / "served", admin_token=TOKEN) as server:
        async with httpx.AsyncClient(base_url=server.url) as http:
            assert (await http.get("/v1/dead-letters")).status_code == 401
            admin = {"Authorization": f"Bearer {TOKEN}"}
            created = await http.post(f"/v1/tenants/{TENANT}/tokens", headers=admin)
            tenant = {"Authorization": f"Bearer {created.json()['token']}"}
            assert (await http.get("/v1/dead-letters", headers=tenant)).status_code == 403
            replay = await http.post("/v1/dead-letters/replay", json={}, headers=tenant)
            assert replay.status_code == 403
            bad_limit = await http.get("/v1/dead-letters?limit=0", headers=admin)
            assert bad_limit.status_code == 422
            none = await http.post("/v1/dead-letters/replay", json={"ids": []}, headers=admin)
            assert none.json() == {"replayed": 0}
