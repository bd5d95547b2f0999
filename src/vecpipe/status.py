"""What an operator asks first: tenants, points per tenant and space, queue, dead letters,
provider health and jobs. `GET /v1/status` and `vecpipe status` both answer with this.

Counts are the store's: records (as the record quota counts them) and chunk points (a record
is one point or more when chunked). A
tenant's space is its chain's, so a tenant whose provider cannot be opened shows the error.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable
from typing import TypeVar

from pydantic import BaseModel

from vecpipe.errors import VecpipeError
from vecpipe.models import EmbeddingSpace
from vecpipe.resources import Resources

DEFAULT_TENANT_LIMIT = 100
T = TypeVar("T")


class TenantStatus(BaseModel):
    tenant_id: str
    configured: bool
    space: str | None = None
    points: int | None = None
    records: int | None = None  # the store's count_records: what the record quota counts
    error: str | None = None


class SpaceStatus(BaseModel):
    space: str
    model: str
    dimension: int
    points: int


class ProviderStatus(BaseModel):
    name: str
    breaker: str  # closed | half_open | open


class StatusReport(BaseModel):
    tenants: list[TenantStatus]
    tenants_truncated: bool = False
    spaces: list[SpaceStatus]
    queue_depth: int | None
    dead_letters: int | None
    dead_letters_capped: bool = False  # kept for clients: the count is exact on both queues
    providers: list[ProviderStatus]
    jobs: dict[str, int]
    # points in these spaces of tenants not listed: beyond --limit, or with records only in
    # a space that is not the default one and neither a config nor a job naming them
    unlisted_points: int = 0
    errors: list[str] = []


async def collect_status(resources: Resources, limit: int = DEFAULT_TENANT_LIMIT) -> StatusReport:
    errors: list[str] = []
    spaces: dict[str, EmbeddingSpace] = {}
    default = await _default_space(resources, errors)
    if default is not None:
        spaces[default.key] = default
    configured = set(await resources.database.configs.list_tenants())
    found = configured | set(await resources.database.jobs.tenants())
    known = sorted(found | await _stored_tenants(resources, default))
    tenants = [
        await _tenant(resources, tenant_id, tenant_id in configured, spaces)
        for tenant_id in known[:limit]
    ]
    space_list = [await _space(resources, space) for _, space in sorted(spaces.items())]
    depth = await _attempt(errors, "queue depth", resources.queue.depth())
    dead = await _attempt(errors, "dead letters", resources.queue.dead_letter_count())
    breakers = resources.providers.breaker_states()
    return StatusReport(
        tenants=tenants,
        tenants_truncated=len(known) > limit,
        spaces=space_list,
        queue_depth=depth,
        dead_letters=dead,
        providers=[ProviderStatus(name=n, breaker=s) for n, s in sorted(breakers.items())],
        jobs=await _attempt(errors, "jobs", resources.database.jobs.counts_by_state()) or {},
        unlisted_points=_unlisted(tenants, space_list),
        errors=errors,
    )


async def _default_space(resources: Resources, errors: list[str]) -> EmbeddingSpace | None:
    try:
        async with resources.providers.lease(None) as chain:
            return chain.space
    except VecpipeError as exc:
        errors.append(f"default provider: {exc.message}")
        return None


async def _stored_tenants(resources: Resources, space: EmbeddingSpace | None) -> set[str]:
    """Tenants with records in the default space: the store knows some that neither a
    config nor a job names (records written with the default chain, then left alone)."""
    if space is None:
        return set()
    return set(await resources.store.tenants(space))


def _unlisted(tenants: list[TenantStatus], spaces: list[SpaceStatus]) -> int:
    listed = Counter[str]()
    for tenant in tenants:
        if tenant.space and tenant.points:
            listed[tenant.space] += tenant.points
    return sum(max(0, space.points - listed[space.space]) for space in spaces)


async def _tenant(
    resources: Resources, tenant_id: str, configured: bool, spaces: dict[str, EmbeddingSpace]
) -> TenantStatus:
    status = TenantStatus(tenant_id=tenant_id, configured=configured)
    try:
        space = await resources.pipeline.space_of(tenant_id)
        spaces[space.key] = space
        status.space = space.key
        status.points = await resources.store.count(space, tenant_id)
        status.records = await resources.store.count_records(space, tenant_id)
    except VecpipeError as exc:
        status.error = exc.message
    return status


async def _space(resources: Resources, space: EmbeddingSpace) -> SpaceStatus:
    points = await resources.store.count(space, None)
    return SpaceStatus(space=space.key, model=space.model, dimension=space.dimension, points=points)


async def _attempt(errors: list[str], what: str, work: Awaitable[T]) -> T | None:
    try:
        return await work
    except Exception as exc:  # one backend down must not hide the rest of the report
        message = exc.message if isinstance(exc, VecpipeError) else type(exc).__name__
        errors.append(f"{what}: {message}")
        return None
