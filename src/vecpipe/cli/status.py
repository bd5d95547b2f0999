"""`vecpipe status`: tenants, points per tenant and space, queue, dead letters, providers.

With `--url` (or VECPIPE_URL) it asks a running server (`GET /v1/status`, with
VECPIPE_ADMIN_TOKEN as the bearer token); without, it opens the data dir itself, which only
works while no other process (a running `vecpipe serve`) owns it (datadir.py).
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from vecpipe.cli.common import load_settings, run
from vecpipe.cli.remote import UrlOption, remote_client, remote_get
from vecpipe.settings import Settings
from vecpipe.status import DEFAULT_TENANT_LIMIT, StatusReport, collect_status

JsonOption = Annotated[bool, typer.Option("--json", help="print JSON")]


async def fetch_status(settings: Settings, url: str | None, limit: int) -> StatusReport:
    if url:
        async with remote_client(url, settings) as client:
            body = await remote_get(client, "/v1/status", limit=limit)
        return StatusReport.model_validate(body)
    from vecpipe.resources import open_resources

    async with open_resources(settings) as resources:
        return await collect_status(resources, limit)


def status(
    url: UrlOption = None,
    as_json: JsonOption = False,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="tenants shown")] = (
        DEFAULT_TENANT_LIMIT
    ),
) -> None:
    """Tenants, points per tenant and space, queue depth, dead letters, provider health."""
    settings = load_settings()
    report = run(fetch_status(settings, url, limit))
    if as_json:
        typer.echo(report.model_dump_json(indent=2))
        return
    render(report, Console(highlight=False))


def render(report: StatusReport, out: Console) -> None:
    out.print(Text(summary_line(report), style="bold"))
    tenants = Table("tenant", "configured", "space", title="tenants", title_justify="left")
    tenants.add_column("records", justify="right")
    tenants.add_column("points", justify="right")
    for t in report.tenants:
        records = "-" if t.records is None else f"{t.records:,}"
        points = "-" if t.points is None else f"{t.points:,}"
        space = Text(t.space or f"error: {t.error}", style="" if t.space else "red")
        tenants.add_row(Text(t.tenant_id), "yes" if t.configured else "no", space, records, points)
    if report.unlisted_points:
        tenants.caption = (
            f"+ {report.unlisted_points:,} points of tenants not listed "
            "(beyond --limit, or in another space with neither a config nor a job)"
        )
    out.print(tenants if report.tenants else "no tenants yet (none configured, no jobs)")
    spaces = Table("space", "model", title="spaces", title_justify="left")
    spaces.add_column("dimension", justify="right")
    spaces.add_column("points", justify="right")
    for s in report.spaces:
        spaces.add_row(Text(s.space), Text(s.model), str(s.dimension), f"{s.points:,}")
    out.print(spaces)
    providers = Table("provider", "breaker", title="providers", title_justify="left")
    for p in report.providers:
        providers.add_row(Text(p.name), Text(p.breaker, style=_BREAKER_STYLE.get(p.breaker, "")))
    out.print(providers if report.providers else "no provider open")
    for error in report.errors:
        out.print(Text(f"error: {error}", style="red"))


_BREAKER_STYLE = {"closed": "green", "half_open": "yellow", "open": "red"}


def summary_line(report: StatusReport) -> str:
    depth = "?" if report.queue_depth is None else str(report.queue_depth)
    dead = "?" if report.dead_letters is None else str(report.dead_letters)
    if report.dead_letters_capped:
        dead += "+"
    jobs = ", ".join(f"{n} {state}" for state, n in report.jobs.items()) or "none"
    return f"queue: {depth} waiting or in flight · dead letters: {dead} · jobs: {jobs}"


def register(app: typer.Typer) -> None:
    app.command()(status)
