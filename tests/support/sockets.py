"""Counting this process's open sockets, to prove clients are closed."""

from __future__ import annotations

import contextlib
import os
import time


def open_sockets() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    return count


def wait_for_sockets_at_most(limit: int, timeout: float = 10.0) -> int:
    """The socket count once it drops to `limit` (servers close their side a bit later)."""
    deadline = time.monotonic() + timeout
    count = open_sockets()
    while count > limit and time.monotonic() < deadline:
        time.sleep(0.05)
        count = open_sockets()
    return count
