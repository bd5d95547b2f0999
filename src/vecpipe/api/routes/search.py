"""Semantic search within one tenant: one hit per record."""

from __future__ import annotations

from fastapi import APIRouter

from vecpipe import metrics
from vecpipe.api.deps import PipelineDep, TenantDep
from vecpipe.api.json_body import JSONBodyRoute
from vecpipe.api.limits import check_query
from vecpipe.api.responses import BODY, EMBEDS, TENANT, errors
from vecpipe.api.schemas import FacetCount, SearchRequest, SearchResponse, SearchResult

router = APIRouter(
    prefix="/v1/tenants/{tenant_id}/search", tags=["search"], route_class=JSONBodyRoute
)


@router.post(
    "",
    response_model=SearchResponse,
    response_model_exclude_none=True,
    responses=errors(*TENANT, *BODY, *EMBEDS),
)
async def search(
    tenant_id: TenantDep, body: SearchRequest, pipeline: PipelineDep
) -> SearchResponse:
    """One hit per record, best first. A `like` record the tenant does not have is a 404."""
    if body.query is not None:
        check_query(body.query, body.limit, pipeline.settings.limits)
    else:
        check_query("-", body.limit, pipeline.settings.limits)
    with metrics.SEARCH_SECONDS.time():
        hits = await pipeline.search(
            tenant_id,
            body.query,
            body.limit,
            body.filter,
            offset=body.offset,
            vector=body.vector,
            like=None if body.like is None else body.like.record_id,
            score_threshold=body.score_threshold,
            mode=body.mode,
            fusion_k=body.fusion_k,
            diversity=body.diversity,
        )
        facets = None
        if body.facets:
            counts = await pipeline.facets(tenant_id, body.facets, body.filter, body.facet_top)
            facets = {
                key: [FacetCount(value=value, count=count) for value, count in values]
                for key, values in counts.items()
            }
    metrics.SEARCHES.labels(metrics.tenant_label(tenant_id)).inc()
    results = [SearchResult.of(hit, body.fields) for hit in hits]
    return SearchResponse(results=results, facets=facets)
