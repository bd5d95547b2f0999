"""`vecpipe …`: the service, the worker, and operator commands over the library API.

Each group of commands lives in its own module and registers itself on `app`.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    help="vecpipe: keeps a vector index in step with your records.", no_args_is_help=True
)

from vecpipe.cli import (  # noqa: E402  (each registers its commands)
    dlq,
    jobs,
    lifecycle,
    records,
    service,
    status,
    tenant,
)

app.add_typer(tenant.app, name="tenant")
app.add_typer(dlq.app, name="dlq")
service.register(app)
records.register(app)
status.register(app)
jobs.register(app)
lifecycle.register(app)

__all__ = ["app"]
