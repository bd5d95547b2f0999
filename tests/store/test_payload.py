"""The shared payload layout: what a chunk point holds, and the record read back from it."""

from __future__ import annotations

from vecpipe.models import ChunkPoint
from vecpipe.store.payload import chunk_payload, full_text, metadata_payload, stored_record


def _point(index: int) -> ChunkPoint:
    return ChunkPoint("t", "r", index, 2, f"chunk {index}", "full text", "h", {"k": 1}, [1.0])


def test_only_chunk_zero_carries_the_full_text() -> None:
    first, second = chunk_payload(_point(0)), chunk_payload(_point(1))
    assert first["text"] == "full text"
    assert "text" not in second
    assert second["chunk_text"] == "chunk 1"
    record = stored_record(first)
    assert (record.text, record.metadata, record.chunk_count) == ("full text", {"k": 1}, 2)


def test_a_record_of_one_chunk_stores_its_text_once() -> None:
    whole = ChunkPoint("t", "r", 0, 1, "all of it", "all of it", "h", {}, [1.0])
    payload = chunk_payload(whole)
    assert "text" not in payload  # Edge converts every payload value: half the text's cost
    assert stored_record(payload).text == "all of it"
    assert full_text(payload) == "all of it"
    trimmed = ChunkPoint("t", "r", 0, 1, "all of it", " all of it ", "h", {}, [1.0])
    assert stored_record(chunk_payload(trimmed)).text == " all of it "  # the text as sent


def test_a_later_chunk_does_not_carry_the_text() -> None:
    assert full_text(chunk_payload(_point(1))) is None
    assert full_text(chunk_payload(_point(0))) == "full text"


def test_a_metadata_update_replaces_the_metadata_and_version() -> None:
    assert metadata_payload({"k": 2}, 7) == {"metadata": {"k": 2}, "version": 7}
