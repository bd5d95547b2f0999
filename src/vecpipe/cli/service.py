"""`vecpipe serve` and `vecpipe worker`."""

from __future__ import annotations

from typing import Annotated

import typer

from vecpipe.cli.common import fail, load_settings
from vecpipe.errors import VecpipeError


def serve(
    no_worker: Annotated[bool, typer.Option("--no-worker", help="API only")] = False,
    host: Annotated[str | None, typer.Option(help="overrides VECPIPE_HOST")] = None,
    port: Annotated[int | None, typer.Option(help="overrides VECPIPE_PORT")] = None,
) -> None:
    """Run the HTTP API and, unless --no-worker, an in-process worker."""
    from vecpipe.runtime import serve as run_serve

    settings = load_settings()
    if host:
        settings.host = host
    if port:
        settings.port = port
    try:
        run_serve(settings, with_worker=not no_worker)
    except VecpipeError as exc:
        fail(exc)


def worker(
    once: Annotated[bool, typer.Option("--once", help="drain what is ready, then exit")] = False,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=65535,
            help="serve /metrics on this port (0: none); overrides VECPIPE_WORKER_METRICS_PORT",
        ),
    ] = None,
) -> None:
    """Run a worker alone (scale-out: many workers on one broker)."""
    from vecpipe.runtime import run_worker

    settings = load_settings()
    if metrics_port is not None:
        settings.worker_metrics_port = metrics_port
    try:
        run_worker(settings, once=once)
    except VecpipeError as exc:
        fail(exc)


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.command()(worker)
