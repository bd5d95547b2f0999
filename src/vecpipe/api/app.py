"""The FastAPI app factory. The lifespan opens the shared resources (or borrows them)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI

from vecpipe.api.body_limit import BodyLimitMiddleware
from vecpipe.api.docs import install_docs
from vecpipe.api.errors import install_error_handlers
from vecpipe.api.routes import (
    ai_config,
    dead_letters,
    embeddings,
    health,
    jobs,
    records,
    search,
    tokens,
)
from vecpipe.api.routes import status as operator_routes
from vecpipe.providers.manager import ProviderFactory
from vecpipe.resources import Resources, open_resources
from vecpipe.settings import Settings
from vecpipe.worker.worker import VectorizationWorker

log = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None,
    *,
    provider_factory: ProviderFactory | None = None,
    run_worker: bool = False,
    owner_url: str | None = None,
    resources: Resources | None = None,
) -> FastAPI:
    """An app whose lifespan opens every resource and, with run_worker, a worker too.

    `owner_url` is where it is served, noted in the data dir's lock (datadir.py).
    Given `resources` (opened and warmed up by the caller, as `vecpipe serve` does so that
    a startup error is its own one-line message, not a traceback from the server's
    lifespan), the app borrows them and leaves closing them to the caller.
    """
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            if resources is None:
                opened = open_resources(
                    settings, provider_factory=provider_factory, owner_url=owner_url
                )
                app.state.resources = await stack.enter_async_context(opened)
                await warm_up(app.state.resources)
            else:
                app.state.resources = resources
            if run_worker:
                worker = VectorizationWorker(
                    app.state.resources.pipeline, app.state.resources.queue, settings
                )
                task = asyncio.create_task(worker.run(), name="vecpipe-worker")
                app.state.worker_task = task
                stack.push_async_callback(
                    stop_worker, worker, task, settings.shutdown_grace_seconds
                )
            yield

    app = FastAPI(
        title="vecpipe",
        version="0.1.0",
        summary="Keeps a vector index in step with an application's records, for many tenants.",
        lifespan=lifespan,
        docs_url=None,  # served by install_docs, with local assets
        redoc_url=None,
    )
    app.add_middleware(BodyLimitMiddleware, limits=settings.limits)
    install_error_handlers(app)
    for module in (health, ai_config, records, jobs, search, embeddings, tokens):
        app.include_router(module.router)
    app.include_router(operator_routes.router)
    app.include_router(dead_letters.router)
    install_docs(app)
    return app


async def warm_up(resources: Resources) -> None:
    """Load the default model before reporting ready, so the first request is not slow."""
    async with resources.providers.lease(None):
        pass


async def stop_worker(
    worker: VectorizationWorker, task: asyncio.Task[None], grace_seconds: float
) -> None:
    """Stop taking work; let the batch in flight finish within the grace period, else cancel."""
    worker.request_stop()
    try:
        await asyncio.wait_for(asyncio.shield(task), grace_seconds)
    except TimeoutError:
        log.warning("worker did not finish within %.1fs; releasing in-flight work", grace_seconds)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    except Exception:
        log.exception("worker stopped with an error")
