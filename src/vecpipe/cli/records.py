"""`vecpipe ingest` and `vecpipe search`: in-process on the data dir, or `--url` over HTTP.

In-process they open the whole resource stack, which takes the data dir's lock (datadir.py):
beside a running `vecpipe serve` they fail at once and say so; with `--url` (or VECPIPE_URL)
they send the same work to that server (`POST /v1/tenants/{t}/records`, `…/jobs`,
`…/search`) with VECPIPE_ADMIN_TOKEN.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Protocol
from urllib.parse import quote

import httpx
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from vecpipe.cli.common import console, load_settings, run
from vecpipe.cli.remote import UrlOption, remote_client, remote_post
from vecpipe.models import Record, SearchHit
from vecpipe.settings import Settings

if TYPE_CHECKING:
    from vecpipe.core.pipeline import Pipeline


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


class Reporter(Protocol):
    def update(self, completed: int) -> None: ...


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("-- records/s" if speed is None else f"{speed:,.1f} records/s")


class _BarReporter:
    """A live bar on a terminal: done/total, records/s, elapsed, ETA."""

    def __init__(self, progress: Progress, label: str, total: int) -> None:
        self._progress = progress
        self._task = progress.add_task(label, total=total)

    def update(self, completed: int) -> None:
        self._progress.update(self._task, completed=completed)


class _LineReporter:
    """Plain lines for logs and pipes: the first, then at most one a second, and the last."""

    def __init__(
        self, label: str, total: int, interval: float = 1.0, *, resumed: bool = False
    ) -> None:
        self.label, self.total, self.interval = label, total, interval
        self._started = time.monotonic()
        self._last = float("-inf")
        self._completed = -1
        # resumed (a job followed after it started): what the first update finds done is not
        # counted in the rate, which starts then
        self._first: int | None = None if resumed else 0

    def update(self, completed: int) -> None:
        now = time.monotonic()
        finished = completed >= self.total
        if completed == self._completed or (not finished and now - self._last < self.interval):
            return
        if self._first is None:
            self._first, self._started = completed, now
        self._completed, self._last = completed, now
        line = progress_line(
            self.label, completed, self.total, now - self._started, since=self._first
        )
        typer.echo(line, err=True)


def progress_line(label: str, completed: int, total: int, elapsed: float, since: int = 0) -> str:
    """`since`: records done before `elapsed` began, left out of the rate."""
    rate = (completed - since) / elapsed if elapsed > 0 else 0.0
    percent = 100 * completed // total if total else 100
    eta = f"{(total - completed) / rate:.0f}s" if rate > 0 else "?"
    shown = f"{rate:.1f} records/s" if elapsed > 0 else "-- records/s"
    return f"{label}: {completed}/{total} records ({percent}%), {shown}, eta {eta}"


@contextmanager
def progress_reporter(label: str, total: int, *, resumed: bool = False) -> Iterator[Reporter]:
    """A bar on a terminal (stderr), plain progress lines otherwise; `resumed`: work that
    started before (its rate counts only what happens from the first update on)."""
    if not console.is_terminal:
        yield _LineReporter(label, total, resumed=resumed)
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _RateColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as progress:
        yield _BarReporter(progress, label, total)


class RecordsTarget(Protocol):
    """Where ingest and search go: the pipeline in this process, or a server."""

    async def ingest(self, tenant: str, batch: list[Record]) -> dict[str, int]: ...
    async def submit(self, tenant: str, batch: list[Record]) -> str: ...
    async def search(
        self, tenant: str, query: str | None, limit: int, options: SearchOptions
    ) -> tuple[list[SearchHit], dict[str, list[tuple[str, int]]]]: ...


@dataclass(frozen=True)
class SearchOptions:
    """`vecpipe search`'s flags, as the HTTP API's search body names them."""

    filter: dict[str, Any] | None = None
    mode: str = "dense"
    diversity: float = 0.0
    like: str | None = None
    facets: tuple[str, ...] = ()

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"mode": self.mode, "diversity": self.diversity}
        if self.filter is not None:
            body["filter"] = self.filter
        if self.like is not None:
            body["like"] = {"record_id": self.like}
        if self.facets:
            body["facets"] = list(self.facets)
        return body


class _LocalTarget:
    def __init__(self, pipeline: Pipeline) -> None:
        self._pipeline = pipeline

    async def ingest(self, tenant: str, batch: list[Record]) -> dict[str, int]:
        result = await self._pipeline.ingest(tenant, batch)
        counts = {key: len(getattr(result, key)) for key in ("upserted", "unchanged", "deleted")}
        return counts | {"failed": len(result.failed)}

    async def submit(self, tenant: str, batch: list[Record]) -> str:
        return await self._pipeline.submit_job(tenant, upserts=batch)

    async def search(
        self, tenant: str, query: str | None, limit: int, options: SearchOptions
    ) -> tuple[list[SearchHit], dict[str, list[tuple[str, int]]]]:
        hits = await self._pipeline.search(
            tenant,
            query,
            limit,
            options.filter,
            like=options.like,
            mode=options.mode,  # type: ignore[arg-type]  # the pipeline checks it
            diversity=options.diversity,
        )
        facets = {}
        if options.facets:
            facets = await self._pipeline.facets(tenant, options.facets, options.filter)
        return hits, facets


class _HttpTarget:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def ingest(self, tenant: str, batch: list[Record]) -> dict[str, int]:
        body = {"upsert": [_wire(r) for r in batch]}
        answer = await remote_post(self._client, f"{_tenant_path(tenant)}/records", body)
        counts = {key: int(answer[key]) for key in ("upserted", "unchanged", "deleted")}
        return counts | {"failed": len(answer["failed"])}

    async def submit(self, tenant: str, batch: list[Record]) -> str:
        body = {"upsert": [_wire(r) for r in batch]}
        answer = await remote_post(self._client, f"{_tenant_path(tenant)}/jobs", body)
        return str(answer["job_id"])

    async def search(
        self, tenant: str, query: str | None, limit: int, options: SearchOptions
    ) -> tuple[list[SearchHit], dict[str, list[tuple[str, int]]]]:
        body: dict[str, Any] = {"limit": limit, **options.body()}
        if query is not None:
            body["query"] = query
        answer = await remote_post(self._client, f"{_tenant_path(tenant)}/search", body)
        hits = [SearchHit.model_validate(hit) for hit in answer["results"]]
        facets = {
            key: [(str(item["value"]), int(item["count"])) for item in values]
            for key, values in (answer.get("facets") or {}).items()
        }
        return hits, facets


def _tenant_path(tenant: str) -> str:
    return f"/v1/tenants/{quote(tenant, safe='')}"


def _wire(record: Record) -> dict[str, object]:
    return record.model_dump(mode="json", exclude_none=True)


@asynccontextmanager
async def open_target(settings: Settings, url: str | None) -> AsyncIterator[RecordsTarget]:
    if url:
        async with remote_client(url, settings) as client:
            yield _HttpTarget(client)
        return
    from vecpipe.resources import open_pipeline  # the whole stack: only on this path

    async with open_pipeline(settings) as pipeline:
        yield _LocalTarget(pipeline)


def ingest(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="JSON lines")],
    tenant: Annotated[str, typer.Option("--tenant", "-t")],
    queue: Annotated[bool, typer.Option("--queue", help="submit jobs for the worker")] = False,
    batch_size: Annotated[int, typer.Option(min=1, max=1000)] = 256,
    url: UrlOption = None,
) -> None:
    """Ingest a JSON-lines file of {"id", "text", "metadata"} records."""
    settings = load_settings()
    with file.open(encoding="utf-8") as lines:
        total = sum(1 for line in lines if line.strip())

    async def main() -> None:
        counts = {"upserted": 0, "unchanged": 0, "deleted": 0, "failed": 0}
        async with open_target(settings, url) as target:
            with progress_reporter("ingest", total) as progress:
                completed = 0
                for batch in _batches(_read_jsonl(file), batch_size):
                    if queue:
                        job_id = await target.submit(tenant, batch)
                        typer.echo(
                            f"job {job_id}: {len(batch)} records queued "
                            f"(follow: vecpipe jobs --follow {job_id})",
                            err=True,
                        )
                    else:
                        for key, count in (await target.ingest(tenant, batch)).items():
                            counts[key] += count
                    completed += len(batch)
                    progress.update(completed)
        if not queue:
            typer.echo(json.dumps(counts))
            if counts["failed"]:
                raise typer.Exit(1)  # some records were not stored: a script must notice

    run(main())


def search(
    tenant: Annotated[str, typer.Option("--tenant", "-t")],
    query: Annotated[str | None, typer.Argument()] = None,
    limit: Annotated[int, typer.Option(min=1, max=100)] = 10,
    filter: Annotated[
        str | None, typer.Option("--filter", help="JSON filter (docs/search.md)")
    ] = None,
    mode: Annotated[str, typer.Option(help="dense, keyword or hybrid")] = "dense",
    diversity: Annotated[float, typer.Option(min=0.0, max=1.0, help="MMR, 0 = off")] = 0.0,
    facet: Annotated[list[str] | None, typer.Option("--facet", help="count per value")] = None,
    like: Annotated[str | None, typer.Option("--like", help="more like this record id")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    url: UrlOption = None,
) -> None:
    """Search a tenant's records: a QUERY text, or --like a stored record."""
    settings = load_settings()
    try:
        parsed = json.loads(filter) if filter is not None else None
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"not JSON: {exc}", param_hint="--filter") from None
    options = SearchOptions(parsed, mode, diversity, like, tuple(facet or ()))

    async def main() -> None:
        async with open_target(settings, url) as target:
            hits, facets = await target.search(tenant, query, limit, options)
        if as_json:
            payload: Any = [h.model_dump() for h in hits]
            if facets:
                payload = {"results": payload, "facets": facets}
            typer.echo(json.dumps(payload))
            return
        out = Console(highlight=False)
        room = max(30, out.width - 34)  # what "#", score, a typical id and borders leave
        table = Table(
            title=Text(f"{tenant}: {query if query is not None else 'like ' + str(like)}")
        )
        table.add_column("#", justify="right")
        table.add_column("score", justify="right")
        table.add_column("id")
        table.add_column("text", no_wrap=True, overflow="ellipsis", max_width=room * 2 // 3)
        table.add_column("metadata", no_wrap=True, overflow="ellipsis", max_width=room // 3)
        for rank, hit in enumerate(hits, 1):
            table.add_row(
                str(rank),
                f"{hit.score:.3f}",
                Text(hit.id),  # Text: brackets in data are not rich markup
                Text(_clip(hit.text, 200)),
                Text(_clip(json.dumps(hit.metadata, ensure_ascii=False), 200)),
            )
        out.print(table if hits else "no results")
        for key, counts in facets.items():
            out.print(Text(f"{key}: " + ", ".join(f"{v} ({n})" for v, n in counts)))

    run(main())


def _clip(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def register(app: typer.Typer) -> None:
    app.command()(ingest)
    app.command()(search)
