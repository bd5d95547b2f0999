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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from vecpipe import metrics
from vecpipe.core.filters import parse_filter
from vecpipe.core.pipeline import Pipeline, check_tenant_id
from vecpipe.errors import ValidationError
from vecpipe.models import Record, StoredRecord
from vecpipe.record_checks import check_record
from vecpipe.text.hashing import content_hash

BATCH = 256
PAGE = 1000
DEFAULT_SAMPLE = 10


@dataclass
class Drift:
    missing: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)

    def report(self, sample: int, dry_run: bool, failed: dict[str, str]) -> dict[str, Any]:
        kinds = ("missing", "changed", "unchanged", "extra")
        return {
            "dry_run": dry_run,
            "counts": {kind: len(getattr(self, kind)) for kind in kinds},
            "sample": {kind: getattr(self, kind)[:sample] for kind in kinds},
            "failed": [{"id": i, "error": e} for i, e in sorted(failed.items())[:sample]],
            "failed_count": len(failed),
        }


async def sync_records(
    pipeline: Pipeline,
    tenant_id: str,
    records: Sequence[Record],
    *,
    scope: Any = None,
    dry_run: bool = False,
    sample: int = DEFAULT_SAMPLE,
) -> dict[str, Any]:
    check_tenant_id(tenant_id)
    where = parse_filter(scope)
    if not records and where is None and not dry_run:
        raise ValidationError(
            "an empty set without a scope would delete every record: refused (give a scope, "
            "or offboard the tenant with DELETE /v1/tenants/{tenant_id})"
        )
    _check_unique(records)
    for record in records:  # as every write checks them, before anything is compared
        check_record(record, pipeline.settings.limits)
    drift = await _drift(pipeline, tenant_id, records, where)
    failed: dict[str, str] = {}
    if not dry_run:
        wanted = set(drift.missing) | set(drift.changed)
        todo = [r for r in records if r.id in wanted]
        for start in range(0, len(todo), BATCH):
            result = await pipeline.apply(tenant_id, upserts=todo[start : start + BATCH])
            failed.update(result.failed)
        for start in range(0, len(drift.extra), BATCH):
            result = await pipeline.apply(tenant_id, deletes=drift.extra[start : start + BATCH])
            failed.update(result.failed)
        metrics.count_lifecycle(tenant_id, "synced_deleted", len(drift.extra))
    return drift.report(sample, dry_run, failed)


async def _drift(
    pipeline: Pipeline, tenant_id: str, records: Sequence[Record], where: Any
) -> Drift:
    space = await pipeline.space_of(tenant_id)
    await pipeline.store.ensure_space(space)
    drift = Drift()
    for start in range(0, len(records), BATCH):
        batch = records[start : start + BATCH]
        stored = await pipeline.store.stored_records(space, tenant_id, [r.id for r in batch])
        for record in batch:
            kind = _kind(record, stored.get(record.id))
            getattr(drift, kind).append(record.id)
    given = {r.id for r in records}
    cursor: str | None = None
    while True:
        page, cursor = await pipeline.store.scroll_records(space, tenant_id, cursor, PAGE, where)
        drift.extra += [r.record_id for r in page if r.record_id not in given]
        if cursor is None:
            return drift


def _kind(record: Record, stored: StoredRecord | None) -> str:
    if stored is None:
        return "missing"
    if record.version is not None and stored.version > record.version:
        return "unchanged"  # a newer version is stored: an upsert would change nothing
    same = stored.content_hash == content_hash(record.text) and stored.metadata == record.metadata
    return "unchanged" if same else "changed"


def _check_unique(records: Sequence[Record]) -> None:
    seen: set[str] = set()
    for record in records:
        if record.id in seen:
            raise ValidationError(f"record id appears twice in the set: {record.id!r}")
        seen.add(record.id)
