"""DatabaseHandle: closed gate and the retry of idempotent writes after a deadlock."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from vecpipe.db import Database
from vecpipe.db.handle import DatabaseHandle


class _Orig(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def _db_error(sqlstate: str) -> sa.exc.DBAPIError:
    return sa.exc.DBAPIError("UPDATE ...", {}, _Orig(sqlstate))


async def test_deadlock_is_retried_other_errors_are_not(db: Database) -> None:
    handle = DatabaseHandle(db.engine)
    calls: list[int] = []

    async def deadlocks_twice(conn: AsyncConnection) -> int:
        calls.append(1)
        if len(calls) < 3:
            raise _db_error("40P01")
        return (await conn.execute(sa.text("SELECT 7"))).scalar_one()

    assert await handle.write_retrying(deadlocks_twice) == 7
    assert len(calls) == 3

    async def broken(conn: AsyncConnection) -> int:
        calls.append(1)
        raise _db_error("23505")

    calls.clear()
    with pytest.raises(sa.exc.DBAPIError):
        await handle.write_retrying(broken)
    assert len(calls) == 1
