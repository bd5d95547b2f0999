"""Unconfirmed writes: remembered until a flush succeeds, bounded, newest kept."""

from __future__ import annotations

import pytest

from vecpipe.core.unconfirmed import Unconfirmed
from vecpipe.models import EmbeddingSpace


def test_unconfirmed_writes_are_bounded_and_survive_a_failed_flush() -> None:
    space = EmbeddingSpace("m", 4)
    unconfirmed = Unconfirmed(limit=3)
    for i in range(5):
        unconfirmed.wrote(space, ("t", f"r{i}"), i)
    assert [unconfirmed.version(space, ("t", f"r{i}")) for i in range(5)] == [None, None, 2, 3, 4]
    with pytest.raises(OSError), unconfirmed.flushing(space):
        unconfirmed.wrote(space, ("t", "r4"), 40)  # written while the flush runs: newer
        raise OSError("flush failed")
    assert unconfirmed.in_doubt(space)
    assert [unconfirmed.version(space, ("t", f"r{i}")) for i in (2, 3, 4)] == [2, 3, 40]
    with unconfirmed.flushing(space):
        pass
    assert not unconfirmed.in_doubt(space) and unconfirmed.version(space, ("t", "r4")) is None
