"""Splitting store calls: each backend call is kept bounded (see the adapters for why)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

from vecpipe.models import ChunkPoint

T = TypeVar("T")


def batched(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def write_batches(
    points: Sequence[ChunkPoint], size: int
) -> Iterator[tuple[int, Sequence[ChunkPoint]]]:
    """Points in batches of one version each: a conditional write carries one version.

    The order of the points is kept within a version (the writer puts chunk 0s last)."""
    by_version: dict[int, list[ChunkPoint]] = {}
    for point in points:
        by_version.setdefault(point.version, []).append(point)
    for version, same_version in by_version.items():
        for batch in batched(same_version, size):
            yield version, batch
