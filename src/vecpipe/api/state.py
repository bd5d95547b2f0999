"""What the app's lifespan yields: one typed object that every request reads.

Starlette hands the mapping a lifespan yields to each request as `request.state` (a
shallow copy of it per request); the app keeps nothing on `app.state`. Everything a
request may need that lives as long as the app is built by the lifespan, before the first
request, and lives here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from vecpipe.api.write_gate import WriteGate
from vecpipe.core.quotas import QuotaService
from vecpipe.resources import Resources

STATE_KEY = "vecpipe"


class Background(Protocol):
    """Work the app runs beside its routes: `vecpipe serve`'s in-process worker."""

    def is_running(self) -> bool:
        """False once it has stopped by itself (the app then reports not ready)."""


# Given the app's resources, runs the background work while the `async with` block lasts.
BackgroundHook = Callable[[Resources], AbstractAsyncContextManager[Background]]


@dataclass(frozen=True)
class AppState:
    resources: Resources
    quotas: QuotaService  # per-tenant buckets: plain in-process state, one per app
    background: Background | None = None
    writes: WriteGate = field(default_factory=WriteGate)  # api/write_gate.py

    def as_lifespan_state(self) -> dict[str, AppState]:
        return {STATE_KEY: self}

    @classmethod
    def of(cls, lifespan_state: Mapping[str, Any]) -> AppState:
        """The state the lifespan yielded (a request's `scope["state"]`)."""
        state = lifespan_state.get(STATE_KEY)
        if not isinstance(state, AppState):
            raise RuntimeError("the vecpipe app is used without its lifespan having run")
        return state
