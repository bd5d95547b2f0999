"""Write claims: which records a sole writer's batches write at the same time."""

from __future__ import annotations

import pytest

from vecpipe.store.claims import WriteClaims

A, B = ("t", "a"), ("t", "b")


def test_overlapping_claims_are_contended_on_both_sides() -> None:
    claims = WriteClaims()
    with claims.claim({A, B}) as first:
        with claims.claim({B}) as second:
            assert second.contended == {B}
        assert first.contended == {B}
    with claims.claim({A, B}) as alone:
        assert alone.contended == set()


def test_an_interrupted_claim_leaves_its_records_contended_until_settled() -> None:
    claims = WriteClaims()
    with pytest.raises(RuntimeError), claims.claim({A}):
        raise RuntimeError("cancelled mid write: a store call may still land")
    with claims.claim({A}) as unsettled:
        assert unsettled.contended == {A}
    with claims.claim({A}) as settling:
        assert settling.contended == {A}
        settling.settled.add(A)
    with claims.claim({A}) as after:
        assert after.contended == set()
