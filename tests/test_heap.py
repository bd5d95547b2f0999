"""heap.py: start-up objects frozen out of the collector's sight; start-up garbage freed."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from vecpipe import resources
from vecpipe.heap import YOUNG_COLLECTION_EVERY, freeze_long_lived


@pytest.fixture(autouse=True)
def _thresholds_restored() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def test_garbage_is_collected_first_and_what_lives_is_frozen() -> None:
    garbage_a, garbage_b = Node(), Node()
    garbage_a.other, garbage_b.other = garbage_b, garbage_a  # a cycle only gc frees
    gone = weakref.ref(garbage_a)
    del garbage_a, garbage_b
    kept = Node()
    kept.other = Node()
    frozen_before = gc.get_freeze_count()
    freeze_long_lived()
    assert gone() is None  # collected, not frozen for the life of the process
    assert gc.get_freeze_count() > frozen_before
    assert kept.other is not None


def test_the_young_generation_is_collected_less_often_the_older_ones_as_before() -> None:
    gc.set_threshold(700, 11, 12)
    freeze_long_lived()
    assert gc.get_threshold() == (YOUNG_COLLECTION_EVERY, 11, 12)
    freeze_long_lived()  # again, after another model load: the same
    assert gc.get_threshold() == (YOUNG_COLLECTION_EVERY, 11, 12)


class _Lease:
    def __init__(self, calls: list[str]) -> None:
        self.calls = calls

    async def __aenter__(self) -> None:
        self.calls.append("model loaded")

    async def __aexit__(self, *args: object) -> None:
        return None


class _Resources:
    def __init__(self, calls: list[str]) -> None:
        self.providers = self
        self.calls = calls

    def lease(self, model: object) -> _Lease:
        return _Lease(self.calls)


async def test_serve_freezes_once_the_model_is_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(resources, "freeze_long_lived", lambda: calls.append("frozen"))
    await resources.warm_up(_Resources(calls))  # type: ignore[arg-type]
    assert calls == ["model loaded", "frozen"]
