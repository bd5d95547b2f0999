"""`vecpipe worker`'s own /metrics: a tiny Starlette app that uvicorn serves on the worker's loop.

Off unless VECPIPE_WORKER_METRICS_PORT is set. It answers as the API's /metrics does: the
state gauges are refreshed on each scrape, and with VECPIPE_METRICS_TOKEN set it takes that
token or the admin token. The server lives inside the worker's resources and closes before
them: no thread, and its listening socket is closed when the `async with` block ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Iterator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from vecpipe import observe
from vecpipe.errors import ConfigError
from vecpipe.resources import Resources
from vecpipe.settings import Settings

log = logging.getLogger(__name__)

GRACEFUL_SHUTDOWN_SECONDS = 1  # a scrape in flight at shutdown gets this long


class _Server(uvicorn.Server):
    """uvicorn would take over SIGINT/SIGTERM; the worker's own handlers must keep them."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def metrics_app(settings: Settings, resources: Resources) -> Starlette:
    """GET /metrics, Prometheus text; 401 without the metrics token when one is set."""

    async def scrape(request: Request) -> Response:
        if not observe.scrape_allowed(settings, request.headers.get("authorization")):
            error = {"code": "unauthorized", "message": "missing or invalid bearer token"}
            return JSONResponse(
                {"error": error}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
            )
        body = await observe.scrape(resources)  # state gauges: queue, breakers, jobs
        return Response(body, media_type=observe.CONTENT_TYPE)

    return Starlette(routes=[Route("/metrics", scrape, methods=["GET"])])


@contextlib.asynccontextmanager
async def serve_worker_metrics(
    settings: Settings, resources: Resources
) -> AsyncIterator[str | None]:
    """Serve /metrics while the block runs; yields its URL, or None when the port is 0."""
    if not settings.worker_metrics_port:
        yield None
        return
    sock = _listen(settings.worker_metrics_host, settings.worker_metrics_port)
    config = uvicorn.Config(
        metrics_app(settings, resources),
        lifespan="off",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="vecpipe-worker-metrics")
    try:
        await _until_started(server, task)
        url = _url(sock)
        log.info("worker metrics on %s", url)
        yield url
    finally:
        server.should_exit = True
        await asyncio.wait([task])
        sock.close()  # uvicorn closes it too, unless it failed before starting
        if not task.cancelled() and task.exception() is not None:
            # the worker goes on without metrics rather than stop over them
            log.warning("worker metrics server failed: %r", task.exception())


def _listen(host: str, port: int) -> socket.socket:
    """The listening socket, TCP_NODELAY set for the connections it accepts (Linux copies
    it to them). asyncio sets it itself only on sockets made with proto IPPROTO_TCP, and
    create_server's have proto 0: uvicorn's headers and body then go out as two writes,
    the second held until the client's delayed ACK, ~40 ms a scrape."""
    try:
        sock = socket.create_server((host, port))
    except OSError as exc:
        raise ConfigError(
            f"cannot serve worker metrics on {host}:{port} ({exc.strerror}); "
            "choose another VECPIPE_WORKER_METRICS_PORT"
        ) from None
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


async def _until_started(server: uvicorn.Server, task: asyncio.Task[None]) -> None:
    while not server.started:
        if task.done():
            task.result()  # raises what stopped it
            raise ConfigError("the worker metrics server stopped while starting")
        await asyncio.sleep(0.01)


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/metrics"
