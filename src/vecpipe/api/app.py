"""The FastAPI app factory. The lifespan opens the shared resources (or borrows them) and
yields the typed state the requests read (state.py)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from vecpipe.api.body_limit import BodyLimitMiddleware
from vecpipe.api.docs import install_docs
from vecpipe.api.errors import install_error_handlers
from vecpipe.api.openapi import install_openapi
from vecpipe.api.routes import (
    ai_config,
    dead_letters,
    embeddings,
    health,
    jobs,
    records,
    search,
    sync,
    tenants,
    tokens,
)
from vecpipe.api.routes import status as operator_routes
from vecpipe.api.state import AppState, BackgroundHook
from vecpipe.core.quotas import QuotaService
from vecpipe.providers.manager import ProviderFactory
from vecpipe.resources import Resources, open_resources, warm_up
from vecpipe.settings import Settings


def create_app(
    settings: Settings | None = None,
    *,
    provider_factory: ProviderFactory | None = None,
    owner_url: str | None = None,
    resources: Resources | None = None,
    background: BackgroundHook | None = None,
) -> FastAPI:
    """An app whose lifespan opens every resource and runs `background` beside the routes.

    `owner_url` is where it is served, noted in the data dir's lock (datadir.py).
    Given `resources` (opened and warmed up by the caller, as `vecpipe serve` does so that
    a startup error is its own one-line message, not a traceback from the server's
    lifespan), the app borrows them and leaves closing them to the caller.
    `background` (`vecpipe serve` passes the in-process worker) is entered once the
    resources are open and left before they close; readiness asks it whether it still runs.
    """
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, AppState]]:
        async with contextlib.AsyncExitStack() as stack:
            served = resources
            if served is None:
                opened = open_resources(
                    settings, provider_factory=provider_factory, owner_url=owner_url
                )
                served = await stack.enter_async_context(opened)
                await warm_up(served)
            running = None
            if background is not None:
                running = await stack.enter_async_context(background(served))
            state = AppState(served, QuotaService(served.settings.quotas), running)
            yield state.as_lifespan_state()

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
    for module in (health, ai_config, records, sync, jobs, search, embeddings, tokens, tenants):
        app.include_router(module.router)
    app.include_router(operator_routes.router)
    app.include_router(dead_letters.router)
    install_docs(app)
    install_openapi(app, settings)
    return app
