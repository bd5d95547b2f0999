"""`vecpipe …`: the service, the worker, and operator commands over the library API.

Each group of commands lives in its own module and registers itself on `app`.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    help="vecpipe: keeps a vector index in step with your records.", no_args_is_help=True
)

from vecpipe.cli import dlq, records, service, tenant  # noqa: E402  (registers commands)

app.add_typer(tenant.app, name="tenant")
app.add_typer(dlq.app, name="dlq")
service.register(app)
records.register(app)

__all__ = ["app"]
