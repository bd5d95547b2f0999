"""Which records a sole writer's batches are writing at the same time.

A store that makes every write to its points (the Edge store: the data-dir lock lets one
process open it, and every write goes through its `write`) can skip the older-version
cleanup and the post-write re-read for a record no other batch wrote meanwhile: see
versioned.py. These claims tell such records apart.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

Key = tuple[str, str]  # (tenant_id, record_id)


class Claim:
    """One batch's hold on its records while it writes them."""

    def __init__(self) -> None:
        self.contended: set[Key] = set()  # records another batch wrote meanwhile
        self.settled: set[Key] = set()  # records written and settled with full checks


class WriteClaims:
    """The records being written by the store's batches, to tell contended ones apart.

    A batch interrupted (cancelled, failed) may leave a store call running that lands later:
    its records count as contended until a later batch has written and settled them.
    """

    def __init__(self) -> None:
        self._claims: dict[Key, list[Claim]] = {}
        self._interrupted: set[Key] = set()

    @contextlib.contextmanager
    def claim(self, keys: set[Key]) -> Iterator[Claim]:
        mine = Claim()
        mine.contended.update(keys & self._interrupted)
        for key in keys:
            others = self._claims.setdefault(key, [])
            if others:
                mine.contended.add(key)
                for other in others:
                    other.contended.add(key)
            others.append(mine)
        try:
            yield mine
        except BaseException:
            self._interrupted.update(keys)
            raise
        else:
            self._interrupted.difference_update(mine.settled)
        finally:
            for key in keys:
                others = self._claims[key]
                others.remove(mine)
                if not others:
                    del self._claims[key]
