"""`vecpipe export` / `vecpipe sync` (issue 15): an export reads back unchanged through
`vecpipe ingest` after the tenant was deleted, and a sync's dry run reports the drift."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from vecpipe.cli import app


def invoke(args: list[str], env: dict[str, str]) -> Result:
    return CliRunner().invoke(app, args, env={"COLUMNS": "200", **env})


def write(path: Path, records: Sequence[Mapping[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_export_delete_ingest_round_trip(fake_cli: dict[str, str], tmp_path: Path) -> None:
    source: list[dict[str, Any]] = [
        {"id": f"doc{i}", "text": f"note {i} about invoices é", "metadata": {"n": i, "tag": ["a"]}}
        for i in range(25)
    ]
    ingested = invoke(["ingest", str(write(tmp_path / "in.jsonl", source)), "-t", "acme"], fake_cli)
    assert ingested.exit_code == 0, ingested.output
    exported = tmp_path / "export.jsonl"
    out = invoke(["export", "-t", "acme", "-o", str(exported)], fake_cli)
    assert out.exit_code == 0, out.output
    before = exported.read_text(encoding="utf-8")
    first = [json.loads(line) for line in before.splitlines()]
    assert sorted(r["id"] for r in first) == sorted(str(r["id"]) for r in source)
    assert all(r["version"] > 0 for r in first)
    hits = invoke(["search", "invoices 7", "-t", "acme", "--json"], fake_cli).stdout

    deleted = invoke(["tenant", "delete", "acme", "--yes"], fake_cli)
    assert deleted.exit_code == 0, deleted.output
    assert json.loads(deleted.stdout)["records"] == 25
    assert invoke(["export", "-t", "acme"], fake_cli).stdout == ""

    back = invoke(["ingest", str(exported), "-t", "acme"], fake_cli)
    assert back.exit_code == 0, back.output
    again = invoke(["export", "-t", "acme"], fake_cli).stdout
    assert again == before  # ids, texts, metadata and versions, in the same order
    assert invoke(["search", "invoices 7", "-t", "acme", "--json"], fake_cli).stdout == hits
    jira = invoke(["export", "-t", "acme", "--filter", '{"n": [1, 2]}'], fake_cli).stdout
    assert sorted(json.loads(line)["id"] for line in jira.splitlines()) == ["doc1", "doc2"]


def test_sync_dry_run_then_for_real(fake_cli: dict[str, str], tmp_path: Path) -> None:
    old = [{"id": f"r{i}", "text": f"text {i}"} for i in range(10)]
    ingested = invoke(["ingest", str(write(tmp_path / "old.jsonl", old)), "-t", "acme"], fake_cli)
    assert ingested.exit_code == 0, ingested.output
    new = [*old[2:8], {"id": "r8", "text": "changed"}, {"id": "r10", "text": "new"}]
    file = write(tmp_path / "new.jsonl", new)
    dry = invoke(["sync", str(file), "-t", "acme", "--dry-run"], fake_cli)
    assert dry.exit_code == 0, dry.output
    report = json.loads(dry.stdout)
    assert report["counts"] == {"missing": 1, "changed": 1, "unchanged": 6, "extra": 3}
    assert sorted(report["sample"]["extra"]) == ["r0", "r1", "r9"]
    done = json.loads(invoke(["sync", str(file), "-t", "acme"], fake_cli).stdout)
    assert done["counts"] == report["counts"] and not done["dry_run"]
    ids = [
        json.loads(line)["id"]
        for line in invoke(["export", "-t", "acme"], fake_cli).stdout.splitlines()
    ]
    assert sorted(ids) == sorted(r["id"] for r in new)
    bad = invoke(["sync", str(file), "-t", "acme", "--scope", "{not json"], fake_cli)
    assert bad.exit_code != 0


def _sync_case(tmp_path: Path) -> tuple[list[dict[str, Any]], Path]:
    old = [{"id": f"r{i}", "text": f"text {i}"} for i in range(300)]
    new = [*old[30:270], *({"id": f"r{i}", "text": f"changed {i}"} for i in range(270, 300))]
    new += [{"id": f"n{i}", "text": f"new {i}"} for i in range(30)]
    return old, write(tmp_path / "new.jsonl", new)


EXPECTED = {"missing": 30, "changed": 30, "unchanged": 240, "extra": 30}


def test_sync_as_a_job_here_runs_a_worker_and_reports(
    fake_cli: dict[str, str], tmp_path: Path
) -> None:
    old, file = _sync_case(tmp_path)
    ingested = invoke(["ingest", str(write(tmp_path / "old.jsonl", old)), "-t", "acme"], fake_cli)
    assert ingested.exit_code == 0, ingested.output
    done = invoke(["sync", str(file), "-t", "acme", "--job"], fake_cli)
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["counts"] == EXPECTED and report["status"] == "completed"
    assert report["done"] == 90 and report["failed_count"] == 0
    exported = invoke(["export", "-t", "acme"], fake_cli).stdout.splitlines()
    assert len(exported) == 300 and not any('"r0"' in line for line in exported)


def test_sync_streams_the_file_to_a_server_in_both_forms(served: Any, tmp_path: Path) -> None:
    old, file = _sync_case(tmp_path)
    env = {"VECPIPE_LOG_LEVEL": "WARNING"}
    url = ["--url", served.url]
    ingested = invoke(["ingest", str(write(tmp_path / "old.jsonl", old)), "-t", "acme", *url], env)
    assert ingested.exit_code == 0, ingested.output
    dry = invoke(["sync", str(file), "-t", "acme", "--dry-run", *url], env)
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.stdout)["counts"] == EXPECTED
    embedded = served.factory.texts_embedded
    done = invoke(["sync", str(file), "-t", "acme", "--job", *url], env)
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["status"] == "completed" and report["done"] == 90
    assert served.factory.texts_embedded - embedded == 60  # the new and changed texts only
    again = invoke(["sync", str(file), "-t", "acme", "--dry-run", *url], env)
    assert json.loads(again.stdout)["counts"] == {
        "missing": 0,
        "changed": 0,
        "unchanged": 300,
        "extra": 0,
    }
    bad = write(tmp_path / "bad.jsonl", [{"id": "a", "text": "x"}, {"id": "a", "text": "y"}])
    refused = invoke(["sync", str(bad), "-t", "acme", *url], env)
    assert refused.exit_code != 0 and "line 2" in refused.output
