"""What the worker needs of the other parts, each named by the methods it calls.

The worker is given these explicitly (worker/background.py wires them from the Resources:
the Pipeline, the job repository, the store) instead of reaching through the pipeline.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from vecpipe.core.ingest import Applied, Op
from vecpipe.models import EmbeddingSpace


class BatchProcessor(Protocol):
    """What the worker needs of the core (the Pipeline): process a batch, then make what it
    wrote durable (a flush per space) before any message of it is acknowledged."""

    async def process(self, ops: Sequence[Op], *, flush: bool = True) -> Applied: ...

    async def flush(self, spaces: Iterable[EmbeddingSpace]) -> None: ...


class JobOutcomes(Protocol):
    """Where the outcome of each record of a job is counted (db.jobs.JobRepo)."""

    async def record_outcomes(
        self,
        job_id: str,
        outcomes: Mapping[str, tuple[str, str | None]],
        *,
        tenant_id: str | None = None,
    ) -> int: ...


class ReadinessCheck(Protocol):
    """The store's readiness: raises while it cannot take writes (down, or a full disk)."""

    async def check_ready(self) -> None: ...


class TenantGate(Protocol):
    """Which messages of offboarded tenants may still run (db.tombstones.TombstoneRepo)."""

    async def admit(self, messages: Sequence[tuple[str, str | None]]) -> list[bool]: ...

    async def count_dropped(self, tenant_id: str, n: int) -> None: ...
