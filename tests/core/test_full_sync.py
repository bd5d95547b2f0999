"""Full sync (issue 15): drift report, the store equal to the set, provider calls only for
new or changed texts, and a scope that confines deletions."""

from __future__ import annotations

from tests.support.app import FakeFactory
from vecpipe.core.full_sync import sync_records
from vecpipe.errors import ValidationError
from vecpipe.models import Record
from vecpipe.resources import Resources

T = "acme"


def records(ids: range, version: str = "v1", src: str = "jira") -> list[Record]:
    return [Record(id=f"r{i}", text=f"text {i} {version}", metadata={"src": src}) for i in ids]


async def stored_ids(resources: Resources) -> set[str]:
    ids: set[str] = set()
    cursor = None
    while True:
        page = await resources.pipeline.list_records(T, limit=1000, cursor=cursor)
        ids |= {r.record_id for r in page.records}
        cursor = page.next_cursor
        if cursor is None:
            return ids


async def test_sync_of_1000_with_100_changed_100_new_100_gone(
    resources: Resources, fake_factory: FakeFactory
) -> None:
    await resources.pipeline.ingest(T, records(range(1000)))
    wanted = records(range(100, 900)) + records(range(900, 1000), "v2") + records(range(1000, 1100))
    before = fake_factory.texts_embedded

    dry = await sync_records(resources.pipeline, T, wanted, dry_run=True, sample=5)
    assert dry["counts"] == {"missing": 100, "changed": 100, "unchanged": 800, "extra": 100}
    assert len(dry["sample"]["extra"]) == 5 and dry["sample"]["missing"][0] == "r1000"
    assert fake_factory.texts_embedded == before and len(await stored_ids(resources)) == 1000

    done = await sync_records(resources.pipeline, T, wanted)
    assert done["counts"] == dry["counts"] and done["failed_count"] == 0
    assert fake_factory.texts_embedded - before == 200  # only the new and changed texts
    assert await stored_ids(resources) == {r.id for r in wanted}
    again = await sync_records(resources.pipeline, T, wanted, dry_run=True)
    assert again["counts"] == {"missing": 0, "changed": 0, "unchanged": 1000, "extra": 0}


async def test_a_scoped_sync_never_touches_records_outside_its_scope(
    resources: Resources,
) -> None:
    await resources.pipeline.ingest(
        T, records(range(10), src="jira") + records(range(10, 20), src="web")
    )
    done = await sync_records(
        resources.pipeline, T, records(range(5), src="jira"), scope={"src": "jira"}
    )
    assert done["counts"]["extra"] == 5
    assert await stored_ids(resources) == {f"r{i}" for i in [*range(5), *range(10, 20)]}


async def test_bad_sets_and_scopes_are_refused_and_change_nothing(resources: Resources) -> None:
    await resources.pipeline.ingest(T, records(range(3)))
    for kwargs in ({"scope": {"bad key!": 1}}, {"scope": {"k": 1.5}}):
        try:
            await sync_records(resources.pipeline, T, [], **kwargs)
        except ValidationError:
            pass
        else:
            raise AssertionError("refused")
    twice = records(range(2)) + records(range(1, 2))
    try:
        await sync_records(resources.pipeline, T, twice)
    except ValidationError:
        pass
    else:
        raise AssertionError("refused")
    assert len(await stored_ids(resources)) == 3


async def test_an_empty_set_without_a_scope_is_refused(resources: Resources) -> None:
    await resources.pipeline.ingest(T, records(range(3)))
    try:
        await sync_records(resources.pipeline, T, [])
    except ValidationError as exc:
        assert "empty set" in exc.message
    else:
        raise AssertionError("refused")
    dry = await sync_records(resources.pipeline, T, [], dry_run=True)
    assert dry["counts"]["extra"] == 3
    assert len(await stored_ids(resources)) == 3
