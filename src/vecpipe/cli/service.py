"""`vecpipe serve` and `vecpipe worker`."""

from __future__ import annotations

from typing import Annotated

import typer

from vecpipe.cli.common import load_settings, one_line_errors


def serve(
    no_worker: Annotated[bool, typer.Option("--no-worker", help="API only")] = False,
    host: Annotated[str | None, typer.Option(help="overrides VECPIPE_HOST")] = None,
    port: Annotated[int | None, typer.Option(help="overrides VECPIPE_PORT")] = None,
) -> None:
    """Run the HTTP API and, unless --no-worker, an in-process worker."""
    flags: dict[str, tuple[str, object]] = {}
    if host is not None:
        flags["host"] = ("--host", host)
    if port is not None:
        flags["port"] = ("--port", port)
    settings = load_settings(flags)
    with one_line_errors():
        from vecpipe.runtime import leave_process
        from vecpipe.runtime import serve as run_serve

        run_serve(settings, with_worker=not no_worker)
    leave_process(0)  # closed cleanly: no interpreter teardown to wait for (runtime.py)


def worker(
    once: Annotated[bool, typer.Option("--once", help="drain what is ready, then exit")] = False,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            help="serve /metrics on this port (0: none); overrides VECPIPE_WORKER_METRICS_PORT"
        ),
    ] = None,
) -> None:
    """Run a worker alone (scale-out: many workers on one broker)."""
    flags: dict[str, tuple[str, object]] = {}
    if metrics_port is not None:
        flags["worker_metrics_port"] = ("--metrics-port", metrics_port)
    settings = load_settings(flags)
    with one_line_errors():
        from vecpipe.runtime import leave_process, run_worker

        run_worker(settings, once=once)
    leave_process(0)


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.command()(worker)
