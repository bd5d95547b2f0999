"""The one vector check every backend applies, to queries and to points."""

from __future__ import annotations

import math

import pytest

from vecpipe.errors import ValidationError
from vecpipe.store.vectors import checked_vector


def test_vectors_are_checked() -> None:
    assert checked_vector([1, 2], 2) == [1.0, 2.0]
    with pytest.raises(ValidationError):
        checked_vector([1.0], 2)
    with pytest.raises(ValidationError):
        checked_vector([1.0, math.nan], 2)
