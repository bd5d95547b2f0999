"""The library API on Qdrant Edge with a fake provider: semantics, not model quality."""

from __future__ import annotations

import pytest

from tests.support.app import FakeFactory
from vecpipe.errors import NotFound, StorageFull, ValidationError
from vecpipe.models import Record
from vecpipe.resources import Resources


def records(n: int, prefix: str = "r", words: str = "alpha beta") -> list[Record]:
    return [Record(id=f"{prefix}{i}", text=f"{words} item {i} topic{i}") for i in range(n)]


async def test_ingest_then_search_finds_each_record(resources: Resources) -> None:
    pipeline = resources.pipeline
    result = await pipeline.ingest("acme", records(20))
    assert len(result.upserted) == 20 and not result.failed
    hits = await pipeline.search("acme", "alpha beta item 7 topic7", limit=3)
    assert hits[0].id == "r7"
    assert hits[0].text == "alpha beta item 7 topic7"


async def test_unchanged_records_call_no_provider(
    resources: Resources, fake_factory: FakeFactory
) -> None:
    pipeline = resources.pipeline
    await pipeline.ingest("acme", records(10))
    before = fake_factory.texts_embedded
    again = await pipeline.ingest("acme", records(10))
    assert len(again.unchanged) == 10 and not again.upserted
    assert fake_factory.texts_embedded == before


async def test_metadata_only_change_updates_payload_without_provider(
    resources: Resources, fake_factory: FakeFactory
) -> None:
    pipeline = resources.pipeline
    await pipeline.ingest("acme", [Record(id="a", text="some text", metadata={"v": 1})])
    before = fake_factory.texts_embedded
    result = await pipeline.ingest("acme", [Record(id="a", text="some text", metadata={"v": 2})])
    assert result.upserted == ["a"]
    assert fake_factory.texts_embedded == before
    assert (await pipeline.get_record("acme", "a")).metadata == {"v": 2}


async def test_changed_text_is_reembedded_and_shrinking_drops_stale_chunks(
    resources: Resources,
) -> None:
    pipeline = resources.pipeline
    long_text = " ".join(f"word{i}" for i in range(20_000))
    await pipeline.ingest("acme", [Record(id="a", text=long_text)])
    space = await pipeline.space_of("acme")
    many = await resources.store.count(space, "acme")
    assert many > 1
    await pipeline.ingest("acme", [Record(id="a", text="short now")])
    assert await resources.store.count(space, "acme") == 1
    assert (await pipeline.get_record("acme", "a")).text == "short now"


async def test_distinctive_words_in_last_chunk_are_found(resources: Resources) -> None:
    pipeline = resources.pipeline
    filler = " ".join(f"filler{i % 50}" for i in range(30_000))
    await pipeline.ingest(
        "acme",
        [
            Record(id="long", text=filler + " zebra giraffe savanna"),
            *records(5),
        ],
    )
    hits = await pipeline.search("acme", "zebra giraffe savanna", limit=3)
    assert hits[0].id == "long"
    assert "zebra" in (hits[0].chunk or "")
    assert len({h.id for h in hits}) == len(hits)


async def test_tenants_never_see_each_other(resources: Resources) -> None:
    pipeline = resources.pipeline
    await pipeline.ingest("tenant-a", [Record(id="same", text="secret plans of tenant a")])
    await pipeline.ingest("tenant-b", [Record(id="other", text="tenant b public text")])
    hits = await pipeline.search("tenant-b", "secret plans of tenant a", limit=10)
    assert [h.id for h in hits] == ["other"]
    with pytest.raises(NotFound):
        await pipeline.get_record("tenant-b", "same")
    result = await pipeline.delete("tenant-b", ["same"])
    assert result.not_found == ["same"]
    assert (await pipeline.get_record("tenant-a", "same")).text == "secret plans of tenant a"


async def test_delete_removes_every_chunk(resources: Resources) -> None:
    pipeline = resources.pipeline
    await pipeline.ingest("acme", [Record(id="a", text=" ".join(["long"] * 20_000))])
    result = await pipeline.delete("acme", ["a", "missing"])
    assert result.deleted == ["a"] and result.not_found == ["missing"]
    space = await pipeline.space_of("acme")
    assert await resources.store.count(space, "acme") == 0


async def test_duplicate_ids_in_one_request_are_rejected(resources: Resources) -> None:
    with pytest.raises(ValidationError):
        await resources.pipeline.apply("acme", upserts=[Record(id="a", text="x")], deletes=["a"])


async def test_metadata_filter(resources: Resources) -> None:
    pipeline = resources.pipeline
    await pipeline.ingest(
        "acme",
        [
            Record(id="1", text="red apple", metadata={"color": "red"}),
            Record(id="2", text="red apple too", metadata={"color": "green"}),
        ],
    )
    hits = await pipeline.search("acme", "red apple", filter={"color": "green"})
    assert [h.id for h in hits] == ["2"]


async def test_one_bad_record_fails_alone(resources: Resources, fake_factory: FakeFactory) -> None:
    pipeline = resources.pipeline
    await pipeline.ingest("acme", [Record(id="warm", text="warm up")])
    provider = fake_factory.built[-1]
    provider.reject_texts_containing = "POISON"
    result = await pipeline.ingest(
        "acme", [Record(id="good", text="fine text"), Record(id="bad", text="POISON pill")]
    )
    assert result.upserted == ["good"]
    assert set(result.failed) == {"bad"}


async def test_a_full_disk_refuses_the_whole_call_before_embedding(
    resources: Resources, fake_factory: FakeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline = resources.pipeline
    await pipeline.ingest("acme", records(2))
    before = fake_factory.texts_embedded
    monkeypatch.setattr("vecpipe.diskspace.free_bytes", lambda path: 0)
    with pytest.raises(StorageFull, match="below the floor"):
        await pipeline.ingest("acme", records(5, prefix="new"))
    with pytest.raises(StorageFull):
        await pipeline.delete("acme", ["r0"])
    assert fake_factory.texts_embedded == before  # refused up front: nothing embedded
    assert [h.id for h in await pipeline.search("acme", "alpha beta item 1 topic1", 1)] == ["r1"]


async def test_a_disk_that_fills_during_the_call_refuses_it_whole(
    resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check before the call passed; the store's own check at the write did not: every
    record failed alike, so the caller gets StorageFull (507), not a list of failures."""
    pipeline = resources.pipeline
    await pipeline.ingest("acme", records(1))  # the space is open
    monkeypatch.setattr("vecpipe.core.pipeline.check_writable", _passes)
    monkeypatch.setattr("vecpipe.diskspace.free_bytes", lambda path: 0)
    with pytest.raises(StorageFull):
        await pipeline.ingest("acme", records(3, prefix="late"))


async def _passes(store: object) -> None:
    return None
