"""The shared payload layout: what a chunk point holds, and the record read back from it."""

from __future__ import annotations

from vecpipe.models import ChunkPoint
from vecpipe.store.payload import chunk_payload, metadata_payload, stored_record


def _point(index: int) -> ChunkPoint:
    return ChunkPoint("t", "r", index, 2, f"chunk {index}", "full text", "h", {"k": 1}, [1.0])


def test_only_chunk_zero_carries_the_full_text() -> None:
    first, second = chunk_payload(_point(0)), chunk_payload(_point(1))
    assert first["text"] == "full text"
    assert "text" not in second
    assert second["chunk_text"] == "chunk 1"
    record = stored_record(first)
    assert (record.text, record.metadata, record.chunk_count) == ("full text", {"k": 1}, 2)


def test_a_metadata_update_replaces_the_metadata_and_version() -> None:
    assert metadata_payload({"k": 2}, 7) == {"metadata": {"k": 2}, "version": 7}
