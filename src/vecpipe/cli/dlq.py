"""`vecpipe dlq …`: dead letters, on either queue backend."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from vecpipe.cli.common import load_settings, run
from vecpipe.core.pipeline import Pipeline

app = typer.Typer(help="Dead letters, on either queue backend.", no_args_is_help=True)


@app.command("list")
def list_letters(limit: int = 100) -> None:
    """Show dead letters with their reasons, one JSON object per line."""

    async def main() -> None:
        async with Pipeline.open(load_settings()) as pipeline:
            letters = await pipeline.queue.list_dead_letters(limit)
        for letter in letters:
            typer.echo(
                json.dumps(
                    {
                        "id": letter.id,
                        "reason": letter.reason,
                        "attempts": letter.attempts,
                        "failed_at": letter.failed_at.isoformat() if letter.failed_at else None,
                        "body": letter.body.decode("utf-8", "replace")[:200],
                    }
                )
            )

    run(main())


@app.command("replay")
def replay(ids: Annotated[list[str] | None, typer.Argument()] = None) -> None:
    """Requeue dead letters (all, or the given ids)."""

    async def main() -> None:
        async with Pipeline.open(load_settings()) as pipeline:
            count = await pipeline.queue.replay_dead_letters(ids or None)
        typer.echo(json.dumps({"replayed": count}))

    run(main())
