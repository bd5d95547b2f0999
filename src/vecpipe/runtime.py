"""Process entry points: `serve` (API + worker) and `worker`, each on one event loop.

Startup checks what it can before anything slow: the settings (read_settings), where the
API may listen (check_bind), the data dir (check_data_dir), and the listening sockets,
which are bound before the model loads and handed to uvicorn. Each failure is one
ConfigError line; the CLI prints it and exits 2. `serve` then opens the resources and
warms the model up itself, so a failure there is a VecpipeError of ours too, not a
traceback from inside uvicorn's lifespan.

SIGTERM/SIGINT stop taking work, let in-flight work finish or be released within the grace
period, close every resource on the loop, and the process exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import ipaddress
import logging
import os
import signal
import socket
import sys
from collections.abc import Iterator
from typing import NoReturn

import uvicorn

from vecpipe import datadir
from vecpipe.api.app import create_app
from vecpipe.errors import ConfigError
from vecpipe.heap import freeze_long_lived
from vecpipe.resources import check_data_dir_free, open_resources, warm_up
from vecpipe.settings import Settings, check_data_dir
from vecpipe.worker.background import ShutdownClock, in_process_worker, stop_worker, worker_for
from vecpipe.worker.metrics_server import serve_worker_metrics
from vecpipe.worker.worker import VectorizationWorker

log = logging.getLogger(__name__)
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _Server(uvicorn.Server):
    """uvicorn re-raises the captured signal after a graceful shutdown, which would kill the
    process with it; we have shut down cleanly by then, so we exit 0 instead. Its shutdown
    starts `clock`, so that the worker stops beside the draining connections."""

    def __init__(self, config: uvicorn.Config, clock: ShutdownClock) -> None:
        super().__init__(config)
        self.clock = clock

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.clock.start()
        await super().shutdown(sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        previous = {s: signal.signal(s, self.handle_exit) for s in STOP_SIGNALS}
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


def bind_listeners(host: str, port: int) -> list[socket.socket]:
    """Sockets bound to every address `host` names (as asyncio's create_server would), not
    yet listening: a port in use is found now, not after the model has loaded."""
    try:
        found = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise ConfigError(f"VECPIPE_HOST {host!r} cannot be resolved: {exc.strerror}") from None
    listeners: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(found):
            sock = socket.socket(family, kind, proto)
            listeners.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
    except OSError as exc:
        for sock in listeners:
            sock.close()
        raise ConfigError(_bind_problem(host, port, exc)) from None
    return listeners


def _bind_problem(host: str, port: int, exc: OSError) -> str:
    where = f"cannot listen on {host}:{port}"
    if exc.errno == errno.EADDRINUSE:
        return f"{where}: the port is in use; stop what holds it or set VECPIPE_PORT (--port)"
    if exc.errno == errno.EACCES:
        return f"{where}: permission denied; set VECPIPE_PORT (--port) to 1024 or above"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"{where}: VECPIPE_HOST is not an address of this machine"
    return f"{where}: {exc.strerror or exc}"


def serve(settings: Settings, *, with_worker: bool = True) -> None:
    check_data_dir(settings)
    check_data_dir_free(settings)
    check_bind(settings)
    listeners = bind_listeners(settings.host, settings.port)
    try:
        if settings.admin_token is None:
            log.warning("no VECPIPE_ADMIN_TOKEN: listening on loopback %s only", settings.host)
        started = asyncio.run(_serve(settings, listeners, with_worker=with_worker))
    finally:
        for sock in listeners:
            sock.close()
    if not started:
        raise SystemExit(1)


async def _serve(settings: Settings, listeners: list[socket.socket], *, with_worker: bool) -> bool:
    """Open and warm up, then serve on `listeners`; False when uvicorn could not start.

    A stop signal while the model loads is kept and honoured once it has loaded (as uvicorn
    does during a lifespan startup): the resources close and the process exits 0.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    try:
        owner_url = datadir.serving_url(settings.host, settings.port)
        async with open_resources(settings, owner_url=owner_url) as resources:
            await warm_up(resources)
            for sig in STOP_SIGNALS:
                loop.remove_signal_handler(sig)
            if stop.is_set():
                return True
            clock = ShutdownClock(settings.shutdown_grace_seconds)
            background = functools.partial(in_process_worker, clock=clock) if with_worker else None
            app = create_app(settings, resources=resources, background=background)
            config = uvicorn.Config(
                app,
                host=settings.host,
                port=settings.port,
                log_level=settings.log_level.lower(),
                log_config=None,  # uvicorn's loggers propagate to the root: vecpipe.logs
                timeout_graceful_shutdown=max(1, int(settings.shutdown_grace_seconds)),
                lifespan="on",
            )
            server = _Server(config, clock)
            await server.serve(sockets=listeners)
            if server.started and _shutdown_failed(server):
                # uvicorn logged "Application shutdown failed" and returns as if all went well
                raise ConfigError("the application's shutdown failed (see the log above)")
            return server.started
    finally:
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)


def _shutdown_failed(server: uvicorn.Server) -> bool:
    lifespan = getattr(server, "lifespan", None)
    return bool(getattr(lifespan, "shutdown_failed", False))


def leave_process(code: int = 0) -> NoReturn:
    """End the process now, once everything it opened is closed and flushed.

    Measured under load (SIGTERM with a 3 s grace, the local model mid-encode): the server
    has closed every resource 0.6 s after `Finished server process`, and then the
    interpreter's own finalization (freeing torch, tokenizers and Edge objects, the native
    libraries' exit handlers) held the process 3-5 s more. None of it writes anything
    ours, so it is skipped: the logs and streams are flushed, and the process exits.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def run_worker(settings: Settings, *, once: bool = False) -> None:
    check_data_dir(settings)
    check_data_dir_free(settings)
    if not asyncio.run(_worker_main(settings, once=once)):
        raise SystemExit(1)  # the worker failed, no one stopped it: a supervisor restarts it


async def _worker_main(settings: Settings, *, once: bool) -> bool:
    """Run the worker; False when it ended by itself (a failure) rather than on a signal."""
    async with open_resources(settings) as resources:
        freeze_long_lived()
        worker = worker_for(resources)
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
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop_requested.set)
    waiter = asyncio.create_task(stop_requested.wait())
    try:
        await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)
        await stop_worker(worker, task, settings.shutdown_grace_seconds)
    log.info("worker stopped: %s", worker.stats)
    return stop_requested.is_set()
