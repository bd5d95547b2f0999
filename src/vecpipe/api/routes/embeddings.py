"""POST /v1/embeddings in OpenAI's request and response shapes.

A tenant token embeds with its own tenant's chain; the admin picks a tenant with the
`X-Vecpipe-Tenant` header, and without it the default local model serves. `model` must
name the served model.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
from fastapi import APIRouter, Depends

from vecpipe.api.deps import EmbeddingsTenantDep, PipelineDep, require_token
from vecpipe.api.json_body import JSONBodyRoute
from vecpipe.api.schemas import EmbeddingsRequest
from vecpipe.errors import LimitExceeded, ValidationError

router = APIRouter(
    tags=["embeddings"], dependencies=[Depends(require_token)], route_class=JSONBodyRoute
)

MAX_INPUTS = 2048


@router.post("/v1/embeddings")
async def create_embeddings(
    body: EmbeddingsRequest,
    pipeline: PipelineDep,
    tenant_id: EmbeddingsTenantDep,
) -> dict[str, Any]:
    inputs = [body.input] if isinstance(body.input, str) else body.input
    _check_inputs(inputs, pipeline.settings.limits.max_text_bytes)
    space = await pipeline.space_of(tenant_id) if tenant_id else None
    served = space.model if space else pipeline.configs.default.primary.model
    if body.model not in _aliases(served):
        raise ValidationError(f"model {body.model!r} is not served here; use {served!r}")
    vectors = await pipeline.embed(inputs, tenant_id=tenant_id)
    if body.dimensions is not None and body.dimensions != len(vectors[0]):
        raise ValidationError(f"dimensions must be {len(vectors[0])} for {served}")
    tokens = sum(len(text.split()) for text in inputs)
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": _encode(v, body.encoding_format)}
            for i, v in enumerate(vectors)
        ],
        "model": served,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def _check_inputs(inputs: list[str], max_bytes: int) -> None:
    if not inputs:
        raise ValidationError("input must not be empty")
    if len(inputs) > MAX_INPUTS:
        raise LimitExceeded(f"at most {MAX_INPUTS} inputs per request")
    for text in inputs:
        if not text:
            raise ValidationError("input strings must not be empty")
        if len(text.encode("utf-8", "surrogatepass")) > max_bytes:
            raise LimitExceeded(f"an input is larger than {max_bytes} bytes")


def _aliases(model: str) -> set[str]:
    return {model, model.split("/")[-1], f"sentence-transformers/{model.split('/')[-1]}"}


def _encode(vector: list[float], encoding_format: str) -> list[float] | str:
    if encoding_format == "base64":
        return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")
    return vector
