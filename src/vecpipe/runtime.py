"""Process entry points: `serve` (API + worker) and `worker`, each on one event loop.

SIGTERM/SIGINT stop taking work, let in-flight work finish or be released within the grace
period, close every resource on the loop, and the process exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import signal
from collections.abc import Iterator

import uvicorn

from vecpipe import datadir
from vecpipe.api.app import create_app, stop_worker
from vecpipe.errors import ConfigError
from vecpipe.resources import check_data_dir_free, open_resources
from vecpipe.settings import Settings
from vecpipe.worker.metrics_server import serve_worker_metrics
from vecpipe.worker.worker import VectorizationWorker

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    """uvicorn re-raises the captured signal after a graceful shutdown, which would kill the
    process with it; we have shut down cleanly by then, so we exit 0 instead."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        previous = {s: signal.signal(s, self.handle_exit) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def check_bind(settings: Settings) -> None:
    if settings.admin_token is not None or _is_loopback(settings.host):
        return
    raise ConfigError(
        f"refusing to listen on {settings.host} without VECPIPE_ADMIN_TOKEN; "
        "set a token or bind to 127.0.0.1"
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(settings: Settings, *, with_worker: bool = True) -> None:
    check_data_dir_free(settings)
    check_bind(settings)
    if settings.admin_token is None:
        log.warning("no VECPIPE_ADMIN_TOKEN: listening on loopback %s only", settings.host)
    url = datadir.serving_url(settings.host, settings.port)
    app = create_app(settings, run_worker=with_worker, owner_url=url)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        log_config=None,  # uvicorn's loggers propagate to the root: vecpipe.logs renders them
        timeout_graceful_shutdown=max(1, int(settings.shutdown_grace_seconds)),
        lifespan="on",
    )
    server = _Server(config)
    asyncio.run(server.serve())
    if not server.started:
        raise SystemExit(1)


def run_worker(settings: Settings, *, once: bool = False) -> None:
    check_data_dir_free(settings)
    if not asyncio.run(_worker_main(settings, once=once)):
        raise SystemExit(1)  # the worker failed, no one stopped it: a supervisor restarts it


async def _worker_main(settings: Settings, *, once: bool) -> bool:
    """Run the worker; False when it ended by itself (a failure) rather than on a signal."""
    async with open_resources(settings) as resources:
        worker = VectorizationWorker(resources.pipeline, resources.queue, settings)
        if once:
            await worker.run_until_idle()
            return True
        async with serve_worker_metrics(settings, resources):
            return await _run_until_stopped(worker, settings)


async def _run_until_stopped(worker: VectorizationWorker, settings: Settings) -> bool:
    """Run the worker until SIGINT/SIGTERM (True) or until it ends by itself (False)."""
    loop = asyncio.get_running_loop()
    task = asyncio.create_task(worker.run(), name="vecpipe-worker")
    stop_requested = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop_requested.set)
    waiter = asyncio.create_task(stop_requested.wait())
    try:
        await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await stop_worker(worker, task, settings.shutdown_grace_seconds)
    log.info("worker stopped: %s", worker.stats)
    return stop_requested.is_set()
