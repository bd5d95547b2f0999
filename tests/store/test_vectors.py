"""The one vector check every backend applies, to queries and to points."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from vecpipe.errors import ValidationError
from vecpipe.store.vectors import check_vector, checked_vector


def test_vectors_are_checked() -> None:
    assert checked_vector([1, 2], 2) == [1.0, 2.0]
    with pytest.raises(ValidationError):
        checked_vector([1.0], 2)
    with pytest.raises(ValidationError):
        checked_vector([1.0, math.nan], 2)


def _outcome(check: Callable[[Sequence[float], int], object], vector: list[Any]) -> object:
    try:
        check(vector, 2)
    except Exception as exc:
        return type(exc)
    return None


@pytest.mark.parametrize(
    "vector",
    [
        [1.0, 2.0],
        [1, 2],
        [True, 0.5],
        [1e308, 1e308],  # a sum that overflows: finite values all the same
        [1.0],
        [1.0, math.nan],
        [math.inf, 1.0],
        [-math.inf, math.inf],
        [1.0, "x"],
        [10**400, 1.0],
        [1.0, 10**400],
        [1.0, None],
    ],
)
def test_the_quick_check_says_what_the_full_one_says(vector: list[Any]) -> None:
    assert _outcome(check_vector, vector) == _outcome(checked_vector, vector)
