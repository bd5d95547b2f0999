"""Dead letters over HTTP (admin token only), for `vecpipe dlq list|replay --url`.

The process that owns the data dir is the only one that may open its SQLite queue, so while
`vecpipe serve` runs, the CLI reads and requeues dead letters through these routes; they
work the same on RabbitMQ.

- `GET /v1/dead-letters?limit=N` → 200 `[{"id", "reason", "attempts", "failed_at", "body",
  "body_bytes"}]`, oldest first; `body` is the message as text, cut to 4,096 characters
  (`body_bytes` is its full size). 422 for a limit outside 1-1000.
- `POST /v1/dead-letters/replay` `{"ids": [...]}` (`{}` or `{"ids": null}`: all of them)
  → 200 `{"replayed": N}`; ids that are not dead letters are skipped, not an error.
- Both: 401 without a valid token, 403 with a tenant's token.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from vecpipe.api.deps import PipelineDep
from vecpipe.api.responses import ADMIN, BODY, STORE, errors
from vecpipe.api.routes.status import require_admin
from vecpipe.queue.base import DeadLetter

BODY_CHARS = 4096
MAX_REPLAY_IDS = 10_000


router = APIRouter(
    prefix="/v1/dead-letters",
    tags=["operator"],
    dependencies=[Depends(require_admin)],
    responses=errors(*ADMIN, 422, *STORE),
)


class DeadLetterResponse(BaseModel):
    id: str
    reason: str
    attempts: int
    failed_at: datetime | None
    body: str = Field(description=f"the message as text, at most {BODY_CHARS} characters")
    body_bytes: int = Field(description="the size of the whole message")

    @classmethod
    def of(cls, letter: DeadLetter) -> DeadLetterResponse:
        return cls(
            id=letter.id,
            reason=letter.reason,
            attempts=letter.attempts,
            failed_at=letter.failed_at,
            body=letter.body[: BODY_CHARS * 4].decode("utf-8", "replace")[:BODY_CHARS],
            body_bytes=len(letter.body),
        )


class ReplayRequest(BaseModel):
    ids: list[str] | None = Field(
        default=None,
        max_length=MAX_REPLAY_IDS,
        description="the dead letters to requeue; null: all",
    )


class ReplayResponse(BaseModel):
    replayed: int


@router.get("", response_model=list[DeadLetterResponse])
async def list_dead_letters(
    pipeline: PipelineDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[DeadLetterResponse]:
    """Dead letters with their reasons (RabbitMQ or SQLite queue alike)."""
    letters = await pipeline.queue.list_dead_letters(limit)
    return [DeadLetterResponse.of(letter) for letter in letters]


@router.post("/replay", response_model=ReplayResponse, responses=errors(*BODY))
async def replay_dead_letters(pipeline: PipelineDep, body: ReplayRequest) -> ReplayResponse:
    """Requeue dead letters: the given ids, or all of them."""
    if body.ids == []:
        return ReplayResponse(replayed=0)
    return ReplayResponse(replayed=await pipeline.queue.replay_dead_letters(body.ids))
