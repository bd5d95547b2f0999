"""vecpipe: keeps a vector index in step with an application's records, for many tenants.

Exports are lazy so that importing one part (a queue, a store) does not import them all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vecpipe.core.pipeline import Pipeline
    from vecpipe.models import Record, SearchHit
    from vecpipe.providers.config import AIConfig
    from vecpipe.resources import open_pipeline
    from vecpipe.settings import Settings

__all__ = ["AIConfig", "Pipeline", "Record", "SearchHit", "Settings", "open_pipeline"]

_WHERE = {
    "open_pipeline": "vecpipe.resources",
    "Pipeline": "vecpipe.core.pipeline",
    "AIConfig": "vecpipe.providers.config",
    "Record": "vecpipe.models",
    "SearchHit": "vecpipe.models",
    "Settings": "vecpipe.settings",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'vecpipe' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_WHERE[name]), name)
