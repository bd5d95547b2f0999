"""`vecpipe tenant …`: a tenant's AI config, its API tokens, and secret-key rotation.

Each command but `rotate-secrets` takes `--url` (or VECPIPE_URL) to ask a running server
(`…/ai-config`, `…/tokens`, with VECPIPE_ADMIN_TOKEN) instead of opening the data dir,
which the running server owns. `rotate-secrets` re-encrypts the database under a new key:
it runs with the server stopped (SQLite) or beside it (PostgreSQL), never over HTTP.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated

import typer

from vecpipe.cli.common import load_settings, run
from vecpipe.cli.remote import (
    UrlOption,
    remote_client,
    remote_delete,
    remote_get,
    remote_post,
    remote_put,
)
from vecpipe.core.ai_config import AIConfigService
from vecpipe.db.engine import open_database
from vecpipe.errors import ValidationError
from vecpipe.models import TENANT_ID_PATTERN
from vecpipe.providers.kind import ProviderContext
from vecpipe.resources import claim_database, open_pipeline, secret_box

app = typer.Typer(help="Show or set a tenant's AI config; manage its tokens.", no_args_is_help=True)
token_app = typer.Typer(help="Issue, revoke and list tenant API tokens.", no_args_is_help=True)
app.add_typer(token_app, name="token")


def _path(tenant: str, rest: str) -> str:
    return f"/v1/tenants/{_tenant(tenant)}/{rest}"


@app.command("show")
def show(tenant: str, url: UrlOption = None) -> None:
    """Print a tenant's AI config (secrets redacted)."""

    async def main() -> None:
        settings = load_settings()
        if url:
            async with remote_client(url, settings) as client:
                answer = await remote_get(client, _path(tenant, "ai-config"))
            config, configured = answer["config"], answer["configured"]
        else:
            async with open_pipeline(settings) as pipeline:
                config, configured = await pipeline.configs.show(tenant)
        typer.echo(json.dumps({"tenant_id": tenant, "configured": configured, "config": config}))

    run(main())


@app.command("set")
def set_config(
    tenant: str, config_file: Annotated[Path, typer.Argument(exists=True)], url: UrlOption = None
) -> None:
    """Set a tenant's AI config from a JSON file."""

    async def main() -> None:
        settings = load_settings()
        config = json.loads(config_file.read_text())
        if url:
            async with remote_client(url, settings) as client:
                space = (await remote_put(client, _path(tenant, "ai-config"), config))["space"]
            model, dimension = space["model"], space["dimension"]
        else:
            async with open_pipeline(settings) as pipeline:
                found = await pipeline.set_ai_config(tenant, config)
            model, dimension = found.model, found.dimension
        typer.echo(json.dumps({"tenant_id": tenant, "model": model, "dimension": dimension}))

    run(main())


@app.command("delete")
def delete_tenant(
    tenant: str,
    yes: Annotated[
        bool, typer.Option("--yes", help="confirm: every record, token and job of it goes")
    ] = False,
    url: UrlOption = None,
) -> None:
    """Offboard a tenant: delete its records in every space, AI config, tokens, jobs, queued
    messages and dead letters, and print what went. Safe to repeat (after a crash too)."""
    if not yes:
        typer.echo(f"this deletes everything of tenant {tenant!r}: pass --yes", err=True)
        raise typer.Exit(2)

    async def main() -> None:
        settings = load_settings()
        if url:
            async with remote_client(url, settings) as client:
                removed = await remote_delete(client, f"/v1/tenants/{_tenant(tenant)}")
        else:
            from vecpipe.core.offboard import offboard_tenant
            from vecpipe.resources import open_resources

            async with open_resources(settings) as resources:
                removed = await offboard_tenant(
                    resources.pipeline, resources.database, _tenant(tenant)
                )
                removed = {"tenant_id": tenant, **removed}
        typer.echo(json.dumps(removed))

    run(main())


@app.command("migrate-status")
def migrate_status(tenant: str, url: UrlOption = None) -> None:
    """Print the tenant's latest model migration: state, spaces, progress (or null)."""

    async def main() -> None:
        from vecpipe.core.reindex import describe

        settings = load_settings()
        if url:
            async with remote_client(url, settings) as client:
                answer = await remote_get(client, _path(tenant, "ai-config"))
            typer.echo(json.dumps({"tenant_id": tenant, "migration": answer["migration"]}))
            return
        with claim_database(settings):
            async with open_database(
                settings.resolved_database_url, min_free_bytes=settings.min_free_bytes
            ) as db:
                row = await db.reindexes.get(_tenant(tenant))
        shown = describe(row) if row is not None else None
        typer.echo(json.dumps({"tenant_id": tenant, "migration": shown}))

    run(main())


def _tenant(value: str) -> str:
    if re.fullmatch(TENANT_ID_PATTERN, value) is None:  # `$` alone accepts a final \n
        raise ValidationError(
            "invalid tenant id: 1-64 of A-Z a-z 0-9 . _ - starting with a letter or digit"
        )
    return value


@token_app.command("create")
def token_create(tenant: str, url: UrlOption = None) -> None:
    """Issue a token for the tenant; it is printed once and stored only as a hash."""

    async def main() -> None:
        settings = load_settings()
        if url:
            async with remote_client(url, settings) as client:
                issued = await remote_post(client, _path(tenant, "tokens"), None)
            shown = {k: issued[k] for k in ("token", "token_id", "tenant_id")}
            typer.echo(json.dumps(shown))
            return
        with claim_database(settings):
            async with open_database(
                settings.resolved_database_url, min_free_bytes=settings.min_free_bytes
            ) as db:
                info, token = await db.tokens.create(_tenant(tenant))
        typer.echo(json.dumps({"token": token, "token_id": info.id, "tenant_id": tenant}))

    run(main())


@token_app.command("revoke")
def token_revoke(tenant: str, token_id: str, url: UrlOption = None) -> None:
    """Revoke one of the tenant's tokens."""

    async def main() -> None:
        settings = load_settings()
        if url:
            async with remote_client(url, settings) as client:
                await remote_delete(client, _path(tenant, f"tokens/{token_id}"))
            typer.echo(json.dumps({"revoked": token_id}))
            return
        with claim_database(settings):
            async with open_database(
                settings.resolved_database_url, min_free_bytes=settings.min_free_bytes
            ) as db:
                revoked = await db.tokens.revoke(token_id, _tenant(tenant))
        if not revoked:
            raise ValidationError("no active token with that id for this tenant")
        typer.echo(json.dumps({"revoked": token_id}))

    run(main())


@token_app.command("list")
def token_list(
    tenant: Annotated[str | None, typer.Argument()] = None, url: UrlOption = None
) -> None:
    """The tokens (ids and dates, never the tokens) of one tenant or of all (all: not with
    --url, where the API lists one tenant's)."""

    async def main() -> None:
        settings = load_settings()
        if url:
            if tenant is None:
                raise ValidationError("with --url, name the tenant whose tokens to list")
            async with remote_client(url, settings) as client:
                answer = await remote_get(client, _path(tenant, "tokens"))
            for entry in answer["tokens"]:
                typer.echo(json.dumps({**entry, "tenant_id": tenant}))
            return
        with claim_database(settings):
            async with open_database(
                settings.resolved_database_url, min_free_bytes=settings.min_free_bytes
            ) as db:
                infos = await db.tokens.list(_tenant(tenant) if tenant else None)
        for info in infos:
            revoked = info.revoked_at.isoformat() if info.revoked_at else None
            row = {"token_id": info.id, "tenant_id": info.tenant_id, "revoked_at": revoked}
            typer.echo(json.dumps({**row, "created_at": info.created_at.isoformat()}))

    run(main())


@app.command("rotate-secrets")
def rotate_secrets() -> None:
    """Re-encrypt every stored gateway key under VECPIPE_SECRET_KEY.

    Run with the new key in VECPIPE_SECRET_KEY and the old one(s) in VECPIPE_SECRET_KEY_OLD.
    Only the database is opened: on PostgreSQL it may run while `vecpipe serve` does; the
    default SQLite database is the data dir's, which its owner alone opens (stop it first).
    """

    async def main() -> None:
        settings = load_settings()
        box = secret_box(settings)
        if box is None or settings.secret_key is None:
            raise ValidationError("set VECPIPE_SECRET_KEY (the new key) to rotate secrets")
        context = ProviderContext.from_settings(settings)
        with claim_database(settings):
            async with open_database(
                settings.resolved_database_url, min_free_bytes=settings.min_free_bytes
            ) as db:
                service = AIConfigService(db.configs, context, box, settings.default_model)
                rotated = await service.rotate_secrets(db.reindexes)
        typer.echo(json.dumps({"rotated": rotated}))

    run(main())
