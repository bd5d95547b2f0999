"""`vecpipe sync FILE`: the file streamed (never loaded whole), in this process or to a server.

Small files sync in one call. Above JOB_LINES lines (or with `--job`) the sync runs as a job
(core/sync_job.py): the drift is computed, the writes are queued, and the command follows
the job with a progress bar until it completes. In this process that means running a worker
here on the data dir's queue (no other process may hold it); with `--url` the server's
worker does the writes and the command polls the job. A command stopped while a job runs
loses nothing: the queued writes stay queued for the next `vecpipe serve` or `worker`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from vecpipe.cli.records import _read_jsonl, progress_reporter
from vecpipe.cli.remote import remote_client, remote_get
from vecpipe.errors import VecpipeError
from vecpipe.settings import Settings

JOB_LINES = 10_000
POLL_SECONDS = 0.5
CHUNK_BYTES = 256 * 1024


def count_lines(path: Path) -> int:
    """Non-blank lines, read in chunks."""
    count = 0
    with path.open("rb") as lines:
        for line in lines:
            count += bool(line.strip())
    return count


async def sync_here(
    settings: Settings,
    file: Path,
    tenant: str,
    scope: Any,
    *,
    dry_run: bool,
    sample: int,
    job: bool,
) -> dict[str, Any]:
    from vecpipe.core.full_sync import SyncSet, sync_set
    from vecpipe.core.sync_job import submit_sync_job
    from vecpipe.resources import open_resources
    from vecpipe.worker.background import worker_for

    async with open_resources(settings) as resources:
        pipeline = resources.pipeline
        with SyncSet(pipeline.settings.limits) as sset:
            for number, record in enumerate(_read_jsonl(file), 1):
                sset.add(record, f"{file}: record {number}")
            if not job:
                return await sync_set(
                    pipeline, tenant, sset, scope=scope, dry_run=dry_run, sample=sample
                )
            accepted = await submit_sync_job(pipeline, tenant, sset, scope=scope, sample=sample)
        worker = worker_for(resources)
        task = asyncio.create_task(worker.run())
        try:

            async def status() -> dict[str, Any]:
                return (await pipeline.job(tenant, accepted["job_id"])).model_dump(mode="json")

            final = await follow(status, accepted["total"])
        finally:
            worker.request_stop()
            await task
        return job_report(accepted, final)


async def sync_remote(
    url: str,
    settings: Settings,
    file: Path,
    tenant: str,
    scope: Any,
    *,
    dry_run: bool,
    sample: int,
    job: bool,
) -> dict[str, Any]:
    import json

    path = f"/v1/tenants/{quote(tenant, safe='')}/sync"
    params: dict[str, str] = {"dry_run": str(dry_run).lower(), "sample": str(sample)}
    if scope is not None:
        params["scope"] = json.dumps(scope)
    if job:
        params["job"] = "true"
    async with remote_client(url, settings) as client:
        request = client.build_request(
            "POST",
            path,
            params=params,
            content=_chunks(file),
            headers={"content-type": "application/x-ndjson"},
            timeout=httpx.Timeout(60, read=None),  # a large set's drift takes its time
        )
        try:
            response = await client.send(request)
        except httpx.HTTPError as exc:
            raise VecpipeError(f"cannot reach {url}: {type(exc).__name__}") from None
        if response.status_code not in (200, 202):
            raise VecpipeError(f"{url} answered {response.status_code}: {_reason(response)}")
        answer: dict[str, Any] = response.json()
        if response.status_code == 200:
            return answer
        job_path = f"/v1/tenants/{quote(tenant, safe='')}/jobs/{answer['job_id']}"

        async def status() -> dict[str, Any]:
            found: dict[str, Any] = await remote_get(client, job_path)
            return found

        return job_report(answer, await follow(status, answer["total"]))


async def follow(status: Callable[[], Awaitable[dict[str, Any]]], total: int) -> dict[str, Any]:
    """Poll the job with a progress bar until it is completed (or failed)."""
    with progress_reporter("sync", total, resumed=True) as progress:
        while True:
            current = await status()
            progress.update(
                current["done"]
                + current["unchanged"]
                + current.get("not_found", 0)
                + current["failed"]
            )
            if current["status"] in ("completed", "failed"):
                return current
            await asyncio.sleep(POLL_SECONDS)


def job_report(accepted: dict[str, Any], final: dict[str, Any]) -> dict[str, Any]:
    """What `vecpipe sync` prints for a job: the drift, then the job's outcome."""
    failures = final.get("failures", [])
    return {
        "dry_run": False,
        "job_id": accepted["job_id"],
        "status": final["status"],
        "counts": accepted["counts"],
        "sample": accepted["sample"],
        "done": final["done"],
        "failed": failures,
        "failed_count": final["failed"],
    }


async def _chunks(file: Path) -> AsyncIterator[bytes]:
    with file.open("rb") as lines:
        while chunk := lines.read(CHUNK_BYTES):
            yield chunk


def _reason(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.reason_phrase or "error"
