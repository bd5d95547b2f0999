"""Full sync: "here is every record that should exist (under this scope); delete the rest".

The caller's set is compared with what is stored:

- missing: not stored -> upserted (embedded);
- changed: stored with another text or metadata -> upserted (a metadata-only change is not
  embedded again: core/ingest.py updates it in place);
- unchanged: same text (content hash) and metadata -> left alone, no provider call;
- extra: stored, selected by the scope, absent from the set -> deleted.

Records of the set outside the scope are still upserted; only deletions are confined to the
scope (LangChain's `scoped_full`). A dry run changes nothing and reports the drift: counts
and the first `sample` ids of each kind.

Memory. The set arrives into a `SyncSet`: each record is checked as it comes (a bad one
refuses the whole sync before anything is written) and spooled to an unlinked temporary
file, so memory holds the set's ids, not its texts. The drift is then computed BATCH records
at a time against the store's record heads (content hash, metadata, version), and the
missing and changed records are read back from the spool BATCH at a time to be upserted
(here) or published as a job (core/sync_job.py). The bound is: the ids of the set, the ids
to upsert and the extra ids (O(records x id length): about 10 MB for 100k ids of 20
characters), plus one batch of records; never all texts at once.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from vecpipe import metrics
from vecpipe.core.filters import parse_filter
from vecpipe.core.pipeline import Pipeline, check_tenant_id
from vecpipe.errors import ValidationError
from vecpipe.models import Record, StoredRecord
from vecpipe.record_checks import check_record
from vecpipe.settings import Limits
from vecpipe.store.conditions import Condition
from vecpipe.text.hashing import content_hash

log = logging.getLogger(__name__)

BATCH = 256
PAGE = 1000
DEFAULT_SAMPLE = 10
MAX_SAMPLE = 1000
KINDS = ("missing", "changed", "unchanged", "extra")

# called with the drift before anything is written (the API's quotas): raise to refuse
Admit = Callable[["Drift"], Awaitable[None]]


class SyncSet:
    """The caller's set, checked record by record and spooled to an unlinked temporary file.

    `add` raises ValidationError for a record that may not be stored or an id seen before,
    prefixed with `where` (a line number); nothing has been written to the store by then.
    """

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.ids: set[str] = set()
        self._file: IO[bytes] = tempfile.TemporaryFile(prefix="vecpipe-sync-")  # noqa: SIM115 (close())

    def __enter__(self) -> SyncSet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, record: Record, where: str = "") -> None:
        prefix = f"{where}: " if where else ""
        try:
            check_record(record, self.limits)
        except ValidationError as exc:
            exc.message = f"{prefix}{exc.message}"
            exc.args = (exc.message,)
            raise
        if record.id in self.ids:
            raise ValidationError(f"{prefix}record id appears twice in the set: {record.id!r}")
        self.ids.add(record.id)
        self._file.write(record.model_dump_json(exclude_none=True).encode())
        self._file.write(b"\n")

    def batches(self, size: int = BATCH) -> Iterator[list[Record]]:
        """The set in the order it arrived, `size` records at a time, read from the spool."""
        self._file.flush()
        self._file.seek(0)
        batch: list[Record] = []
        for line in self._file:
            batch.append(Record.model_validate_json(line))
            if len(batch) == size:
                yield batch
                batch = []
        if batch:
            yield batch
        self._file.seek(0, 2)  # back to the end: `add` appends


@dataclass
class Drift:
    sample_size: int = DEFAULT_SAMPLE
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    samples: dict[str, list[str]] = field(default_factory=lambda: {k: [] for k in KINDS})
    upsert: dict[str, None] = field(default_factory=dict)  # missing and changed, in set order
    extra: list[str] = field(default_factory=list)

    def add(self, kind: str, record_id: str) -> None:
        self.counts[kind] += 1
        if len(self.samples[kind]) < self.sample_size:
            self.samples[kind].append(record_id)
        if kind in ("missing", "changed"):
            self.upsert[record_id] = None
        elif kind == "extra":
            self.extra.append(record_id)

    def report(self, dry_run: bool, failed: dict[str, str]) -> dict[str, Any]:
        return {
            "dry_run": dry_run,
            "counts": dict(self.counts),
            "sample": {kind: list(ids) for kind, ids in self.samples.items()},
            "failed": [
                {"id": i, "error": e} for i, e in sorted(failed.items())[: self.sample_size]
            ],
            "failed_count": len(failed),
        }


def check_sync_request(sset: SyncSet, scope: Any, dry_run: bool) -> Condition | None:
    """The scope as a filter; an empty set without one is refused (it would wipe a tenant)."""
    where = parse_filter(scope)
    if not len(sset) and where is None and not dry_run:
        raise ValidationError(
            "an empty set without a scope would delete every record: refused (give a scope, "
            "or offboard the tenant with DELETE /v1/tenants/{tenant_id})"
        )
    return where


async def sync_records(
    pipeline: Pipeline,
    tenant_id: str,
    records: Iterable[Record],
    *,
    scope: Any = None,
    dry_run: bool = False,
    sample: int = DEFAULT_SAMPLE,
) -> dict[str, Any]:
    """The library call: `records` is any iterable (a generator streams)."""
    check_tenant_id(tenant_id)
    with SyncSet(pipeline.settings.limits) as sset:
        for record in records:
            sset.add(record)
        return await sync_set(
            pipeline, tenant_id, sset, scope=scope, dry_run=dry_run, sample=sample
        )


async def sync_set(
    pipeline: Pipeline,
    tenant_id: str,
    sset: SyncSet,
    *,
    scope: Any = None,
    dry_run: bool = False,
    sample: int = DEFAULT_SAMPLE,
    admit: Admit | None = None,
) -> dict[str, Any]:
    """Sync a set already received (checked, spooled), in this call: the report."""
    check_tenant_id(tenant_id)
    where = check_sync_request(sset, scope, dry_run)
    drift = await compute_drift(pipeline, tenant_id, sset, where, sample)
    failed: dict[str, str] = {}
    if not dry_run:
        if admit is not None:
            await admit(drift)
        for batch in sset.batches():
            todo = [r for r in batch if r.id in drift.upsert]
            if todo:
                result = await pipeline.apply(tenant_id, upserts=todo)
                failed.update(result.failed)
        for start in range(0, len(drift.extra), BATCH):
            result = await pipeline.apply(tenant_id, deletes=drift.extra[start : start + BATCH])
            failed.update(result.failed)
        metrics.count_lifecycle(tenant_id, "synced_deleted", drift.counts["extra"])
    metrics.count_lifecycle(tenant_id, "synced_dry_run" if dry_run else "synced", len(sset))
    log.info(
        "tenant %s %s: %d missing, %d changed, %d unchanged, %d extra, %d failed",
        tenant_id,
        "sync dry run" if dry_run else "synced",
        *(drift.counts[kind] for kind in KINDS),
        len(failed),
    )
    return drift.report(dry_run, failed)


async def compute_drift(
    pipeline: Pipeline, tenant_id: str, sset: SyncSet, where: Condition | None, sample: int
) -> Drift:
    space = await pipeline.space_of(tenant_id)
    await pipeline.store.ensure_space(space)
    drift = Drift(sample_size=min(sample, MAX_SAMPLE))
    for batch in sset.batches():
        stored = await pipeline.store.stored_records(space, tenant_id, [r.id for r in batch])
        for record in batch:
            drift.add(_kind(record, stored.get(record.id)), record.id)
    cursor: str | None = None
    while True:
        page, cursor = await pipeline.store.scroll_records(space, tenant_id, cursor, PAGE, where)
        for r in page:
            if r.record_id not in sset.ids:
                drift.add("extra", r.record_id)
        if cursor is None:
            return drift


def _kind(record: Record, stored: StoredRecord | None) -> str:
    if stored is None:
        return "missing"
    if record.version is not None and stored.version > record.version:
        return "unchanged"  # a newer version is stored: an upsert would change nothing
    same = stored.content_hash == content_hash(record.text) and stored.metadata == record.metadata
    return "unchanged" if same else "changed"
