"""Exponential backoff with jitter, shared by the queue backends and the worker."""

from __future__ import annotations

import math
import random

_MAX_EXPONENT = 60  # 2**60 seconds is already far beyond any cap; avoids float overflow


def backoff_delay(
    attempt: int,
    base: float,
    cap: float,
    retry_after: float | None = None,
    *,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before delivering a message again after `attempt` failed deliveries.

    The ceiling doubles per attempt (`base`, `2*base`, `4*base`, ...) up to `cap`, and the
    delay is drawn uniformly from the upper half of it ("equal jitter"): never zero, so a
    failing dependency always gets a breather, yet spread out so that many workers retrying
    after one outage do not return in lockstep.

    A server's `Retry-After` (seconds) is honoured as a lower bound, but `cap` bounds every
    delay, the server's included, so a misbehaving gateway cannot park a message for hours.
    """
    if base < 0 or cap < 0:
        raise ValueError("backoff base and cap must not be negative")
    exponent = min(max(attempt, 1) - 1, _MAX_EXPONENT)
    ceiling = min(cap, base * 2.0**exponent)
    draw = (rng or random).uniform(ceiling / 2, ceiling)
    if retry_after is not None and math.isfinite(retry_after) and retry_after > 0:
        draw = max(draw, retry_after)
    return min(draw, cap)
