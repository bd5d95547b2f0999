"""SearchQuery: the tenant's condition always comes first; the vector is checked as every
backend checks it."""

from __future__ import annotations

import math
from unittest.mock import patch

import pytest

from vecpipe.errors import ValidationError
from vecpipe.store.conditions import TENANT, And, Eq, meta, not_expired
from vecpipe.store.query import SearchQuery


def test_the_store_runs_the_tenant_condition_with_the_callers() -> None:
    with patch("vecpipe.store.conditions.time.time", return_value=1000.0):
        live = not_expired(1000.0)  # what every read adds: expired records are invisible
        assert SearchQuery("t1").condition() == And(Eq(TENANT, "t1"), live)
        where = Eq(meta("lang"), "en")
        expected = And(Eq(TENANT, "t1"), And(live, where))
        assert SearchQuery("t1", where=where).condition() == expected


def test_limits_and_vectors_are_checked() -> None:
    with pytest.raises(ValidationError):
        SearchQuery("t1", [1.0], limit=-1)
    with pytest.raises(ValidationError):
        SearchQuery("t1", [1.0], offset=-1)
    assert SearchQuery("t1", [1, 2]).dense_vector(2) == [1.0, 2.0]
    with pytest.raises(ValidationError, match="no vector"):
        SearchQuery("t1").dense_vector(2)
    with pytest.raises(ValidationError, match="non-finite"):
        SearchQuery("t1", [1.0, math.inf]).dense_vector(2)


def test_the_later_chunk_penalty_is_bounded() -> None:
    assert SearchQuery("t", [1.0], later_chunk_penalty=0.05).later_chunk_penalty == 0.05
    for bad in (-0.1, 2.5):
        with pytest.raises(ValidationError):
            SearchQuery("t", [1.0], later_chunk_penalty=bad)
