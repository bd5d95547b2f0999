"""`vecpipe jobs`: recent jobs with progress, or `--follow JOB` until it completes.

Without `--url` only the database is opened (not the store); the default SQLite database
lives in the data dir, so that takes the data dir's lock and works only while no
`vecpipe serve` owns it. With `--url` (or VECPIPE_URL) it asks the server.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, Protocol

import httpx
import typer
from rich.console import Console
from rich.table import Column, Table
from rich.text import Text

from vecpipe.api.schemas import JobResponse
from vecpipe.cli.common import load_settings, run
from vecpipe.cli.records import progress_reporter
from vecpipe.cli.remote import UrlOption, remote_client, remote_get
from vecpipe.cli.status import JsonOption
from vecpipe.db.engine import Database
from vecpipe.errors import NotFound
from vecpipe.settings import Settings


class JobSource(Protocol):
    async def list(self, tenant: str | None, limit: int) -> list[JobResponse]: ...
    async def get(self, job_id: str) -> JobResponse: ...


class _DatabaseJobs:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def list(self, tenant: str | None, limit: int) -> list[JobResponse]:
        return [JobResponse.from_status(s) for s in await self._db.jobs.list(tenant, limit)]

    async def get(self, job_id: str) -> JobResponse:
        tenant_id = await self._db.jobs.tenant_of(job_id)
        found = await self._db.jobs.get(tenant_id, job_id) if tenant_id else None
        if found is None:
            raise NotFound(f"job {job_id} not found")
        return JobResponse.from_status(found)


class _HttpJobs:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def list(self, tenant: str | None, limit: int) -> list[JobResponse]:
        body = await remote_get(self._client, "/v1/jobs", tenant=tenant, limit=limit)
        return [JobResponse.model_validate(item) for item in body]

    async def get(self, job_id: str) -> JobResponse:
        return JobResponse.model_validate(await remote_get(self._client, f"/v1/jobs/{job_id}"))


@asynccontextmanager
async def open_jobs(settings: Settings, url: str | None) -> AsyncIterator[JobSource]:
    if url:
        async with remote_client(url, settings) as client:
            yield _HttpJobs(client)
        return
    from vecpipe.db.engine import open_database
    from vecpipe.resources import claim_database

    with claim_database(settings):
        async with open_database(
            settings.resolved_database_url, min_free_bytes=settings.min_free_bytes
        ) as database:
            yield _DatabaseJobs(database)


async def follow_job(source: JobSource, job_id: str, interval: float) -> JobResponse:
    """Poll until the job completes, showing its progress (bar on a terminal, else lines)."""
    job = await source.get(job_id)
    if job.status == "completed":  # nothing to watch: one line, no rate (it would mean nothing)
        counted = job.done + job.unchanged + job.not_found + job.failed
        typer.echo(f"job {job_id[:8]}: {counted}/{job.total} records (100%), completed", err=True)
        return job
    with progress_reporter(f"job {job_id[:8]}", job.total, resumed=True) as progress:
        while True:
            progress.update(job.done + job.unchanged + job.not_found + job.failed)
            if job.status == "completed":
                return job
            await asyncio.sleep(interval)
            job = await source.get(job_id)


def jobs(
    follow: Annotated[
        str | None, typer.Option("--follow", "-f", metavar="JOB", help="follow one job")
    ] = None,
    tenant: Annotated[str | None, typer.Option("--tenant", "-t", help="one tenant's")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 20,
    interval: Annotated[float, typer.Option(min=0.05, help="seconds between polls")] = 1.0,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """List recent jobs with progress, or follow one until it completes."""
    settings = load_settings()

    async def main() -> None:
        async with open_jobs(settings, url) as source:
            if follow:
                job = await follow_job(source, follow, interval)
                typer.echo(json.dumps(_summary(job)))
                return
            found = await source.list(tenant, limit)
        if as_json:
            typer.echo(json.dumps([j.model_dump(mode="json") for j in found]))
        else:
            render(found, Console(highlight=False))

    run(main())


def _summary(job: JobResponse) -> dict[str, object]:
    keys = ("job_id", "tenant_id", "status", "total", "done", "unchanged", "not_found", "failed")
    summary: dict[str, object] = {key: getattr(job, key) for key in keys}
    summary["failures"] = [f.model_dump() for f in job.failures[:10]]
    return summary


def render(found: Sequence[JobResponse], out: Console) -> None:
    if not found:
        out.print("no jobs")
        return
    # the job id whole, on one line, whatever the width: it is meant to be pasted (--follow)
    id_column = Column("job", no_wrap=True, min_width=32, overflow="ignore")
    table = Table(id_column, "tenant", "status", "progress", "unchanged", "failed", "rate", "eta")
    for job in found:
        counted = job.done + job.unchanged + job.not_found + job.failed
        table.add_row(
            job.job_id,
            Text(job.tenant_id or "-"),
            Text(job.status, style=_STATUS_STYLE[job.status]),
            f"{counted}/{job.total}",
            str(job.unchanged),
            Text(str(job.failed), style="red" if job.failed else ""),
            "-" if job.rate is None else f"{job.rate:,.1f}/s",
            "-" if job.eta_seconds is None else f"{job.eta_seconds:,.0f}s",
        )
    out.print(table)


_STATUS_STYLE = {"queued": "yellow", "running": "cyan", "completed": "green"}


def register(app: typer.Typer) -> None:
    app.command()(jobs)
