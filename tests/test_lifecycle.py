"""lifecycle.AsyncResource: one state machine, unopened -> open -> closed."""

from __future__ import annotations

import pytest

from vecpipe.errors import ClosedError
from vecpipe.lifecycle import AsyncResource


class Counted(AsyncResource):
    """Counts its hooks; `use()` stands for any public method."""

    def __init__(self, fail_open: bool = False) -> None:
        self.opened = 0
        self.closes = 0
        self.fail_open = fail_open

    async def _open(self) -> None:
        self.opened += 1
        if self.fail_open:
            raise OSError("cannot connect")

    async def _close(self) -> None:
        self.closes += 1

    def use(self) -> str:
        self._check_open()
        return "used"


async def test_async_with_opens_then_closes_once() -> None:
    resource = Counted()
    assert resource.resource_state == "unopened"
    async with resource as entered:
        assert entered is resource
        assert resource.resource_state == "open" and resource.use() == "used"
    assert resource.resource_state == "closed"
    await resource.aclose()  # idempotent
    assert (resource.opened, resource.closes) == (1, 1)


async def test_use_before_open_and_after_close_is_refused() -> None:
    resource = Counted()
    with pytest.raises(ClosedError, match="not open"):
        resource.use()
    async with resource:
        pass
    with pytest.raises(ClosedError, match="closed"):
        resource.use()


async def test_entering_twice_or_after_close_is_refused() -> None:
    resource = Counted()
    async with resource:
        with pytest.raises(ClosedError):
            async with resource:
                pass
        assert resource.use() == "used"  # the refused second entry closed nothing
    with pytest.raises(ClosedError):
        async with resource:
            pass
    assert (resource.opened, resource.closes) == (1, 1)


async def test_a_failed_open_closes_and_raises() -> None:
    resource = Counted(fail_open=True)
    with pytest.raises(OSError, match="cannot connect"):
        async with resource:
            pytest.fail("the body must not run")
    assert resource.resource_state == "closed" and resource.closes == 1


async def test_closing_an_unopened_resource_closes_it_for_good() -> None:
    resource = Counted()
    await resource.aclose()
    with pytest.raises(ClosedError):
        async with resource:
            pass
    assert resource.opened == 0


class OwnFlags(AsyncResource):
    """The compatible mode: handed out open, with its own flag and close."""

    def __init__(self) -> None:
        self.is_closed = False

    async def aclose(self) -> None:
        self.is_closed = True

    def _check_open(self) -> None:
        if self.is_closed:
            raise ClosedError("closed")


async def test_a_resource_with_its_own_flags_refuses_entry_once_closed() -> None:
    resource = OwnFlags()
    async with resource:
        pass
    assert resource.is_closed
    closed_early = OwnFlags()
    await closed_early.aclose()
    with pytest.raises(ClosedError):
        async with closed_early:
            pass
