"""`vecpipe sync` and `vecpipe export`: a tenant's records against a JSON-lines file.

`export` writes the JSON lines `ingest` reads (id, text, metadata, version): a round trip.
`sync FILE` makes the tenant's records equal to the file (under `--scope`), or with
`--dry-run` reports the drift. Both take `--url` to ask a running server instead.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import typer

from vecpipe.cli.common import load_settings, run
from vecpipe.cli.remote import UrlOption, remote_client, remote_get
from vecpipe.cli.sync_file import JOB_LINES, count_lines, sync_here, sync_remote
from vecpipe.models import Record

ScopeOption = Annotated[
    str | None, typer.Option("--scope", help="a filter (JSON): only what it selects may go")
]
FilterOption = Annotated[str | None, typer.Option("--filter", help="a filter (JSON)")]


def _json_option(value: str | None, name: str) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except ValueError:
        raise typer.BadParameter(f"{name} must be JSON") from None


def _path(tenant: str, rest: str) -> str:
    return f"/v1/tenants/{quote(tenant, safe='')}/{rest}"


def sync(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="JSON lines")],
    tenant: Annotated[str, typer.Option("--tenant", "-t")],
    scope: ScopeOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="report the drift only")] = False,
    sample: Annotated[int, typer.Option(min=0, max=1000)] = 10,
    job: Annotated[
        bool | None,
        typer.Option(
            "--job/--no-job",
            help=f"queue the writes as a job and follow its progress (default: above "
            f"{JOB_LINES:,} lines)",
        ),
    ] = None,
    url: UrlOption = None,
) -> None:
    """Make the tenant's records equal to FILE: upsert what is missing or changed, delete
    what is stored (in --scope) but not in FILE. Prints counts and sample ids as JSON.
    FILE is streamed, never loaded whole; a large one runs as a job, with progress."""
    settings = load_settings()
    where = _json_option(scope, "--scope")
    as_job = not dry_run and (count_lines(file) > JOB_LINES if job is None else job)

    async def main() -> None:
        if url:
            report = await sync_remote(
                url, settings, file, tenant, where, dry_run=dry_run, sample=sample, job=as_job
            )
        else:
            report = await sync_here(
                settings, file, tenant, where, dry_run=dry_run, sample=sample, job=as_job
            )
        typer.echo(json.dumps(report))
        if report["failed_count"] or report.get("status") == "failed":
            raise typer.Exit(1)

    run(main())


def export(
    tenant: Annotated[str, typer.Option("--tenant", "-t")],
    filter: FilterOption = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="a file (default: stdout)")
    ] = None,
    url: UrlOption = None,
) -> None:
    """Write the tenant's records as JSON lines that `vecpipe ingest` reads back."""
    settings = load_settings()
    where = _json_option(filter, "--filter")

    async def main() -> None:
        out = output.open("w", encoding="utf-8") if output else sys.stdout
        try:
            if url:
                async with remote_client(url, settings) as client:
                    await _export_remote(client, tenant, where, out)
            else:
                from vecpipe.resources import open_pipeline

                async with open_pipeline(settings) as pipeline:
                    cursor = None
                    while True:
                        page = await pipeline.list_records(
                            tenant, limit=1000, cursor=cursor, filter=where
                        )
                        for r in page.records:
                            _write(
                                out,
                                Record(
                                    id=r.record_id,
                                    text=r.text,
                                    metadata=r.metadata,
                                    version=r.version or None,
                                    expires_at=r.expiry_time(),
                                ),
                            )
                        cursor = page.next_cursor
                        if cursor is None:
                            break
        finally:
            if output:
                out.close()

    run(main())


async def _export_remote(client: Any, tenant: str, where: Any, out: Any) -> None:
    cursor = None
    while True:
        page = await remote_get(
            client,
            _path(tenant, "records"),
            limit=1000,
            cursor=cursor,
            filter=None if where is None else json.dumps(where),
        )
        for r in page["records"]:
            _write(
                out,
                Record(
                    id=r["id"],
                    text=r["text"],
                    metadata=r["metadata"],
                    version=r["version"] or None,
                    expires_at=r.get("expires_at"),
                ),
            )
        cursor = page["next_cursor"]
        if cursor is None:
            return


def _write(out: Any, record: Record) -> None:
    out.write(json.dumps(record.model_dump(mode="json", exclude_none=True), ensure_ascii=False))
    out.write("\n")


def register(app: typer.Typer) -> None:
    app.command()(sync)
    app.command()(export)
