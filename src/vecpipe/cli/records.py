"""`vecpipe ingest` and `vecpipe search`."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from vecpipe.cli.common import console, load_settings, run
from vecpipe.core.pipeline import Pipeline
from vecpipe.models import Record


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


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not sys.stderr.isatty(),
    )


def ingest(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="JSON lines")],
    tenant: Annotated[str, typer.Option("--tenant", "-t")],
    queue: Annotated[bool, typer.Option("--queue", help="submit jobs for the worker")] = False,
    batch_size: Annotated[int, typer.Option(min=1, max=1000)] = 256,
) -> None:
    """Ingest a JSON-lines file of {"id", "text", "metadata"} records."""
    settings = load_settings()
    with file.open(encoding="utf-8") as lines:
        total = sum(1 for line in lines if line.strip())

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

    run(main())


def search(
    query: Annotated[str, typer.Argument()],
    tenant: Annotated[str, typer.Option("--tenant", "-t")],
    limit: Annotated[int, typer.Option(min=1, max=100)] = 10,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Search a tenant's records."""
    settings = load_settings()

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

    run(main())


def register(app: typer.Typer) -> None:
    app.command()(ingest)
    app.command()(search)
