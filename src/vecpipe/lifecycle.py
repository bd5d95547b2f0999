"""The shape every owned async resource shares: `async with` closes it on the same loop."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class AsyncResource:
    """Subclasses implement `aclose()` (idempotent) and may refuse use after it in
    `_check_open()`, which entering the context calls too."""

    def _check_open(self) -> None:
        """Raise ClosedError when the resource was closed; nothing to check by default."""

    async def aclose(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        self._check_open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
