from __future__ import annotations

import random

import pytest

from vecpipe.queue.backoff import backoff_delay


def test_ceiling_doubles_and_jitter_stays_in_its_upper_half() -> None:
    rng = random.Random(7)
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (5, 16.0)]:
        for _ in range(50):
            delay = backoff_delay(attempt, base=1.0, cap=100.0, rng=rng)
            assert ceiling / 2 <= delay <= ceiling


def test_jitter_spreads_delays() -> None:
    rng = random.Random(1)
    delays = {backoff_delay(4, base=1.0, cap=100.0, rng=rng) for _ in range(20)}
    assert len(delays) > 10


def test_cap_bounds_every_delay_even_for_huge_attempts() -> None:
    assert backoff_delay(10_000, base=1.0, cap=30.0) <= 30.0
    assert backoff_delay(10_000, base=1.0, cap=30.0) >= 15.0


def test_attempt_below_one_counts_as_the_first() -> None:
    assert backoff_delay(0, base=2.0, cap=100.0) <= 2.0


def test_retry_after_is_a_lower_bound_within_the_cap() -> None:
    assert backoff_delay(1, base=1.0, cap=100.0, retry_after=42.0) == 42.0
    assert backoff_delay(1, base=1.0, cap=100.0, retry_after=10_000.0) == 100.0
    assert backoff_delay(1, base=1.0, cap=100.0, retry_after=0.1) >= 0.5
    assert backoff_delay(1, base=1.0, cap=100.0, retry_after=float("nan")) <= 1.0


def test_negative_base_or_cap_is_refused() -> None:
    with pytest.raises(ValueError):
        backoff_delay(1, base=-1.0, cap=1.0)
    with pytest.raises(ValueError):
        backoff_delay(1, base=1.0, cap=-1.0)
