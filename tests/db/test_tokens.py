"""TokenRepo: tokens shown once, stored as hashes, revocable."""

from __future__ import annotations

import sqlalchemy as sa

from vecpipe.db import Database
from vecpipe.db.tables import api_tokens


async def test_create_verify_revoke_list(db: Database) -> None:
    info, token = await db.tokens.create("acme")
    _, other_token = await db.tokens.create("zeta")
    assert token.startswith("vp_") and token != other_token
    assert await db.tokens.verify(token) == "acme"
    assert await db.tokens.verify(other_token) == "zeta"
    assert await db.tokens.verify(token + "x") is None

    assert [t.id for t in await db.tokens.list("acme")] == [info.id]
    assert len(await db.tokens.list()) == 2

    assert await db.tokens.revoke(info.id, tenant_id="zeta") is False  # not zeta's
    assert await db.tokens.revoke(info.id) is True
    assert await db.tokens.revoke(info.id) is False
    assert await db.tokens.verify(token) is None
    (listed,) = await db.tokens.list("acme")
    assert listed.revoked_at is not None
    assert await db.tokens.verify(other_token) == "zeta"


async def test_only_the_hash_is_stored(db: Database) -> None:
    _, token = await db.tokens.create("acme")
    async with db.engine.connect() as conn:
        stored = (await conn.execute(sa.select(api_tokens))).one()
    assert token not in [str(value) for value in stored]
