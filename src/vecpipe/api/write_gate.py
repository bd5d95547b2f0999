"""Writes for a tenant being offboarded are refused with 409, and none is left half-done.

Offboarding (core/offboard.py) writes a `deleting` tombstone first and turns it `deleted`
once everything of the tenant is gone; its queued messages are dropped and counted by the
worker meanwhile. The HTTP write routes (records, bulk jobs, sync, ai-config, tokens) take
`WritableTenantDep`, which refuses a write with 409 `tenant_offboarding` while:

- an offboarding of the tenant runs in this process (`WriteGate.offboarding`), or
- the tenant's tombstone is `deleting`: an offboarding runs in another process, or one was
  cut short by a crash and not repeated yet (repeat `DELETE /v1/tenants/{t}` to finish it).

A finished offboarding (`deleted`) refuses nothing: a tenant may come back (new config, new
records, an export ingested again).

In this process, no write can slip past: a write is counted in flight *before* it checks,
and an offboarding closes the gate *before* it waits for the writes in flight to end
(`DRAIN_SECONDS` at most) and deletes anything. A write that checked before the gate closed
finishes first, and is deleted with the rest; one that checks after is refused. A write
admitted by another API process just before the tombstone appeared may land after the
offboarding's first pass; its second pass over the store (core/offboard.py step 6) removes
it unless it lands later still: one process serving the tenant's writes is exact, several
are best effort within that window.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from vecpipe.db.tombstones import TombstoneRepo
from vecpipe.errors import TenantOffboarding
from vecpipe.in_flight import InFlight

log = logging.getLogger(__name__)

DRAIN_SECONDS = 30.0


def refusal(tenant_id: str) -> TenantOffboarding:
    log.info("write refused for tenant %s: it is being offboarded", tenant_id)
    return TenantOffboarding(
        f"tenant {tenant_id} is being offboarded (DELETE /v1/tenants/{tenant_id}): writes are "
        "refused until it has finished; a call cut short by a crash is finished by repeating it"
    )


class WriteGate:
    """Per process (one event loop): the tenants whose offboarding runs here, and the
    writes in flight per tenant."""

    def __init__(self) -> None:
        self._closed: set[str] = set()
        self._in_flight = InFlight()

    @contextlib.asynccontextmanager
    async def write(self, tenant_id: str, tombstones: TombstoneRepo) -> AsyncIterator[None]:
        """Hold while writing for the tenant; TenantOffboarding (409) when it may not be."""
        async with self._in_flight.hold(tenant_id):  # first: an offboarding closing now waits
            if tenant_id in self._closed:
                raise refusal(tenant_id)
            tombstone = await tombstones.get(tenant_id)
            if tombstone is not None and tombstone.state == "deleting":
                raise refusal(tenant_id)
            yield

    def check_open(self, tenant_id: str) -> None:
        """Refuse now if an offboarding of the tenant started here meanwhile: a long write
        (a sync streaming its set) calls it again just before it writes anything."""
        if tenant_id in self._closed:
            raise refusal(tenant_id)

    def in_flight(self, tenant_id: str) -> int:
        return self._in_flight.count(tenant_id)

    @contextlib.asynccontextmanager
    async def offboarding(
        self, tenant_id: str, drain_seconds: float = DRAIN_SECONDS
    ) -> AsyncIterator[None]:
        """Refuse the tenant's writes from now on, and wait for those in flight to end."""
        self._closed.add(tenant_id)
        try:
            try:
                await asyncio.wait_for(self._in_flight.idle(tenant_id), drain_seconds)
            except TimeoutError:  # the offboarding's second pass removes what lands
                log.warning(
                    "offboarding %s: %d writes still in flight after %.0f s",
                    tenant_id,
                    self._in_flight.count(tenant_id),
                    drain_seconds,
                )
            yield
        finally:
            self._closed.discard(tenant_id)
