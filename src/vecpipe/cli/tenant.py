"""`vecpipe tenant …`: a tenant's AI config."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from vecpipe.cli.common import load_settings, run
from vecpipe.core.pipeline import Pipeline

app = typer.Typer(help="Show or set a tenant's AI config.", no_args_is_help=True)


@app.command("show")
def show(tenant: str) -> None:
    """Print a tenant's AI config (secrets redacted)."""

    async def main() -> None:
        async with Pipeline.open(load_settings()) as pipeline:
            config, configured = await pipeline.configs.show(tenant)
        typer.echo(json.dumps({"tenant_id": tenant, "configured": configured, "config": config}))

    run(main())


@app.command("set")
def set_config(tenant: str, config_file: Annotated[Path, typer.Argument(exists=True)]) -> None:
    """Set a tenant's AI config from a JSON file."""

    async def main() -> None:
        async with Pipeline.open(load_settings()) as pipeline:
            space = await pipeline.set_ai_config(tenant, json.loads(config_file.read_text()))
        typer.echo(
            json.dumps({"tenant_id": tenant, "model": space.model, "dimension": space.dimension})
        )

    run(main())
