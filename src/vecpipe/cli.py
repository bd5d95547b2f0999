"""`vecpipe …`: the service, the worker, and operator commands over the library API."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from vecpipe.core.pipeline import Pipeline
from vecpipe.errors import VecpipeError
from vecpipe.models import Record
from vecpipe.settings import Settings

app = typer.Typer(
    help="vecpipe: keeps a vector index in step with your records.", no_args_is_help=True
)
tenant_app = typer.Typer(help="Show or set a tenant's AI config.", no_args_is_help=True)
dlq_app = typer.Typer(help="Dead letters, on either queue backend.", no_args_is_help=True)
app.add_typer(tenant_app, name="tenant")
app.add_typer(dlq_app, name="dlq")
console = Console(stderr=True)


def _settings() -> Settings:
    settings = Settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    return settings


def _run(coro: Any) -> Any:
    try:
        return asyncio.run(coro)
    except VecpipeError as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(2) from None


@app.command()
def serve(
    no_worker: Annotated[bool, typer.Option("--no-worker", help="API only")] = False,
    host: Annotated[str | None, typer.Option(help="overrides VECPIPE_HOST")] = None,
    port: Annotated[int | None, typer.Option(help="overrides VECPIPE_PORT")] = None,
) -> None:
    """Run the HTTP API and, unless --no-worker, an in-process worker."""
    from vecpipe.runtime import serve as run_serve

    settings = _settings()
    if host:
        settings.host = host
    if port:
        settings.port = port
    try:
        run_serve(settings, with_worker=not no_worker)
    except VecpipeError as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(2) from None


@app.command()
def worker(
    once: Annotated[bool, typer.Option("--once", help="drain what is ready, then exit")] = False,
) -> None:
    """Run a worker alone (scale-out: many workers on one broker)."""
    from vecpipe.runtime import run_worker

    try:
        run_worker(_settings(), once=once)
    except VecpipeError as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(2) from None


def _read_jsonl(path: Path) -> Iterator[Record]:
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                yield Record.model_validate_json(line)
            except ValueError as exc:
                raise typer.BadParameter(f"{path}:{number}: {exc}") from None


def _batches(records: Iterator[Record], size: int) -> Iterator[list[Record]]:
    batch: list[Record] = []
    for record in records:
        batch.append(record)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


@app.command()
def ingest(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="JSON lines")],
    tenant: Annotated[str, typer.Option("--tenant", "-t")],
    queue: Annotated[bool, typer.Option("--queue", help="submit jobs for the worker")] = False,
    batch_size: Annotated[int, typer.Option(min=1, max=1000)] = 256,
) -> None:
    """Ingest a JSON-lines file of {"id", "text", "metadata"} records."""
    settings = _settings()
    total = sum(1 for line in file.open(encoding="utf-8") if line.strip())

    async def main() -> None:
        counts = {"upserted": 0, "unchanged": 0, "deleted": 0, "failed": 0}
        async with Pipeline.open(settings) as pipeline:
            with _progress() as progress:
                task = progress.add_task("ingest", total=total)
                for batch in _batches(_read_jsonl(file), batch_size):
                    if queue:
                        job_id = await pipeline.submit_job(tenant, upserts=batch)
                        console.print(f"job {job_id}: {len(batch)} records queued")
                    else:
                        result = await pipeline.ingest(tenant, batch)
                        for key in ("upserted", "unchanged", "deleted"):
                            counts[key] += len(getattr(result, key))
                        counts["failed"] += len(result.failed)
                    progress.advance(task, len(batch))
        if not queue:
            typer.echo(json.dumps(counts))

    _run(main())


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not sys.stderr.isatty(),
    )


@app.command()
def search(
    query: Annotated[str, typer.Argument()],
    tenant: Annotated[str, typer.Option("--tenant", "-t")],
    limit: Annotated[int, typer.Option(min=1, max=100)] = 10,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Search a tenant's records."""
    settings = _settings()

    async def main() -> None:
        async with Pipeline.open(settings) as pipeline:
            hits = await pipeline.search(tenant, query, limit)
        if as_json:
            typer.echo(json.dumps([h.model_dump() for h in hits]))
            return
        table = Table("score", "id", "text")
        for hit in hits:
            table.add_row(f"{hit.score:.3f}", hit.id, hit.text[:80].replace("\n", " "))
        Console().print(table)

    _run(main())


@tenant_app.command("show")
def tenant_show(tenant: str) -> None:
    """Print a tenant's AI config (secrets redacted)."""

    async def main() -> None:
        async with Pipeline.open(_settings()) as pipeline:
            config, configured = await pipeline.configs.show(tenant)
        typer.echo(json.dumps({"tenant_id": tenant, "configured": configured, "config": config}))

    _run(main())


@tenant_app.command("set")
def tenant_set(tenant: str, config_file: Annotated[Path, typer.Argument(exists=True)]) -> None:
    """Set a tenant's AI config from a JSON file."""

    async def main() -> None:
        async with Pipeline.open(_settings()) as pipeline:
            space = await pipeline.set_ai_config(tenant, json.loads(config_file.read_text()))
        typer.echo(
            json.dumps({"tenant_id": tenant, "model": space.model, "dimension": space.dimension})
        )

    _run(main())


@dlq_app.command("list")
def dlq_list(limit: int = 100) -> None:
    """Show dead letters with their reasons."""

    async def main() -> None:
        async with Pipeline.open(_settings()) as pipeline:
            letters = await pipeline.queue.list_dead_letters(limit)
        for letter in letters:
            typer.echo(
                json.dumps(
                    {
                        "id": letter.id,
                        "reason": letter.reason,
                        "attempts": letter.attempts,
                        "body": letter.body.decode("utf-8", "replace")[:200],
                    }
                )
            )

    _run(main())


@dlq_app.command("replay")
def dlq_replay(ids: Annotated[list[str] | None, typer.Argument()] = None) -> None:
    """Requeue dead letters (all, or the given ids)."""

    async def main() -> None:
        async with Pipeline.open(_settings()) as pipeline:
            count = await pipeline.queue.replay_dead_letters(ids or None)
        typer.echo(json.dumps({"replayed": count}))

    _run(main())


if __name__ == "__main__":
    app()
