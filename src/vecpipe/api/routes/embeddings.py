"""POST /v1/embeddings as OpenAI answers it: its request, its response, its errors.

A tenant token embeds with its own tenant's chain; the admin picks a tenant with the
`X-Vecpipe-Tenant` header, and without it the default local model serves. `model` must
name the served model (404 `model_not_found` otherwise, as OpenAI answers).

What OpenAI's clients see is OpenAI's behaviour (api/errors.py): an invalid request is 400
`invalid_request_error`; an input longer than the model reads is 400
`context_length_exceeded`, naming the limit and the count ("This model's maximum context
length is 256 tokens, however you requested 300 tokens"), never truncated; token ids are
read as cl100k_base (api/token_input.py). Inputs go through the embedding cache that
ingest uses, so a text already embedded in the space costs no model call.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
from fastapi import APIRouter, Depends

from vecpipe.api import token_input
from vecpipe.api.deps import EmbeddingsTenantDep, PipelineDep, require_token
from vecpipe.api.json_body import JSONBodyRoute
from vecpipe.api.responses import BODY, EMBEDS, errors
from vecpipe.api.schemas import (
    MAX_EMBEDDING_INPUTS,
    Embedding,
    EmbeddingsRequest,
    EmbeddingsResponse,
    EmbeddingsUsage,
)
from vecpipe.errors import LimitExceeded, NotFound, ValidationError

router = APIRouter(
    tags=["embeddings"], dependencies=[Depends(require_token)], route_class=JSONBodyRoute
)

MAX_INPUTS = MAX_EMBEDDING_INPUTS


@router.post(
    "/v1/embeddings",
    response_model=EmbeddingsResponse,
    responses=errors(401, 404, 429, *BODY, *EMBEDS, openai=True),
)
async def create_embeddings(
    body: EmbeddingsRequest,
    pipeline: PipelineDep,
    tenant_id: EmbeddingsTenantDep,
) -> EmbeddingsResponse:
    space = await pipeline.space_of(tenant_id) if tenant_id else None
    served = space.model if space else pipeline.configs.default.primary.model
    if body.model not in _aliases(served):
        missing = NotFound(
            f"The model {body.model!r} does not exist or is not served here; use {served!r}"
        )
        missing.code, missing.param = "model_not_found", "model"
        raise missing
    texts = await _texts(body)
    _check_sizes(texts, pipeline.settings.limits.max_text_bytes)
    embedded = await pipeline.embed_counted(texts, tenant_id=tenant_id)
    dimension = embedded.space.dimension
    if body.dimensions is not None and body.dimensions != dimension:
        raise _invalid(f"dimensions must be {dimension} for {served}", "dimensions")
    return EmbeddingsResponse(
        data=[
            Embedding(index=i, embedding=_encode(v, body.encoding_format))
            for i, v in enumerate(embedded.vectors)
        ],
        model=served,
        usage=EmbeddingsUsage(prompt_tokens=embedded.tokens, total_tokens=embedded.tokens),
    )


async def _texts(body: EmbeddingsRequest) -> list[str]:
    """The texts to embed: as sent, or decoded from token ids."""
    value = body.input
    if isinstance(value, str):
        return [value]
    if isinstance(value[0], str):
        return [str(item) for item in value]
    lists: list[Any] = [value] if isinstance(value[0], int) else list(value)
    return await token_input.decode(body.model, [[int(t) for t in ids] for ids in lists])


def _check_sizes(texts: list[str], max_bytes: int) -> None:
    for index, text in enumerate(texts):
        if len(text.encode("utf-8", "surrogatepass")) > max_bytes:
            raise LimitExceeded(f"input {index} is larger than {max_bytes} bytes")


def _invalid(message: str, param: str) -> ValidationError:
    error = ValidationError(message)
    error.param = param
    return error


def _aliases(model: str) -> set[str]:
    return {model, model.split("/")[-1], f"sentence-transformers/{model.split('/')[-1]}"}


def _encode(vector: list[float], encoding_format: str) -> list[float] | str:
    if encoding_format == "base64":
        return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")
    return vector
