"""The one state machine every owned async resource shares: unopened -> open -> closed.

    async with SqliteQueue(path) as queue:      # unopened -> open: the `_open()` hook
        ...                                     # use: `_check_open()` refuses unless open
                                                # exit, or `aclose()`: -> closed (`_close()`)

- `async with` opens the resource through its `_open()` hook; a failure there closes what
  was opened (`aclose()`) and is raised.
- Entering a second time, or after the close, raises ClosedError: a resource is opened once.
- `aclose()` is idempotent; `_close()` runs once, whether or not the open got through.
- Use before the open or after the close raises ClosedError (`_check_open()`, which each
  public method calls first).

Resources handed out open by a factory of their own (`LocalProvider.open(...)`, the test
FakeProvider) still subclass this, in its compatible mode: they override `aclose()` and
`_check_open()` with flags of their own, and entering them checks `_check_open()`, so a
closed one refuses to be entered again.
"""

from __future__ import annotations

from types import TracebackType
from typing import Literal, Self

from vecpipe.errors import ClosedError

ResourceState = Literal["unopened", "open", "closed"]


class AsyncResource:
    # a class default: subclasses need not call this class's __init__
    _resource_state: ResourceState = "unopened"

    @property
    def resource_state(self) -> ResourceState:
        return self._resource_state

    async def _open(self) -> None:
        """Acquire what the resource holds (connections, threads, tasks); runs once."""

    async def _close(self) -> None:
        """Release what `_open()` acquired; runs once, also after an `_open()` that failed."""

    def _check_open(self) -> None:
        """Raise ClosedError unless the resource is open."""
        if self._resource_state != "open":
            state = "closed" if self._resource_state == "closed" else "not open"
            raise ClosedError(f"{self!r} is {state}")

    async def _open_once(self) -> None:
        """unopened -> open, or ClosedError; the `open()` of resources that have one."""
        if self._resource_state != "unopened":
            state = "closed" if self._resource_state == "closed" else "open already"
            raise ClosedError(f"{self!r} is {state}: a resource is opened once")
        self._resource_state = "open"
        try:
            self._check_open()  # a subclass's own flags: closed before it was ever entered
            await self._open()
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        """-> closed; idempotent."""
        if self._resource_state == "closed":
            return
        self._resource_state = "closed"
        await self._close()

    async def __aenter__(self) -> Self:
        await self._open_once()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
