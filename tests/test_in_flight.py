"""in_flight.py: what is held per key, and `idle` waiting for exactly that key's work."""

from __future__ import annotations

import asyncio

from vecpipe.in_flight import InFlight


async def test_idle_waits_for_the_keys_work_and_no_other() -> None:
    work = InFlight()
    release = asyncio.Event()

    async def hold(key: str) -> None:
        async with work.hold(key):
            await release.wait()

    holders = [asyncio.create_task(hold("a")), asyncio.create_task(hold("a"))]
    other = asyncio.create_task(hold("b"))
    await asyncio.sleep(0)
    assert (work.count("a"), work.count("b"), work.count("c")) == (2, 1, 0)
    await asyncio.wait_for(work.idle("c"), 1)  # nothing of c: at once
    waiting = asyncio.create_task(work.idle("a"))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    release.set()
    await asyncio.wait_for(waiting, 1)
    await asyncio.gather(*holders, other)
    assert work.count("a") == 0


async def test_work_that_fails_is_no_longer_counted() -> None:
    work = InFlight()
    try:
        async with work.hold("a"):
            raise RuntimeError("the write failed")
    except RuntimeError:
        pass
    assert work.count("a") == 0
    await asyncio.wait_for(work.idle("a"), 1)
