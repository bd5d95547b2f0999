"""API tokens of tenants: only a SHA-256 of each token is stored.

A token is shown once, when created. Tokens are random (256 bits), so a plain hash is
enough: there is nothing to brute-force that a salt or a slow hash would protect.
"""

from __future__ import annotations

import builtins
import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from vecpipe.db.handle import DatabaseHandle, as_utc, utcnow
from vecpipe.db.tables import api_tokens

TOKEN_PREFIX = "vp_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class TokenInfo:
    """What is known of a token without the token itself."""

    id: str
    tenant_id: str
    created_at: datetime
    revoked_at: datetime | None


class TokenRepo:
    def __init__(self, handle: DatabaseHandle) -> None:
        self._db = handle

    async def create(self, tenant_id: str) -> tuple[TokenInfo, str]:
        """A new token for the tenant: its info and the secret, which is not stored."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        info = TokenInfo(uuid.uuid4().hex, tenant_id, utcnow(), None)
        row = {
            "id": info.id,
            "tenant_id": tenant_id,
            "token_hash": hash_token(token),
            "created_at": info.created_at,
        }
        async with self._db.write() as conn:
            await conn.execute(sa.insert(api_tokens), [row])
        return info, token

    async def verify(self, token: str) -> str | None:
        """The tenant of a valid, unrevoked token; None otherwise."""
        query = sa.select(api_tokens.c.tenant_id).where(
            api_tokens.c.token_hash == hash_token(token), api_tokens.c.revoked_at.is_(None)
        )
        async with self._db.read() as conn:
            return (await conn.execute(query)).scalar_one_or_none()

    async def revoke(self, token_id: str, tenant_id: str | None = None) -> bool:
        """Revoke a token (of that tenant, when given); False if none was active."""
        stmt = (
            sa.update(api_tokens)
            .where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
        if tenant_id is not None:
            stmt = stmt.where(api_tokens.c.tenant_id == tenant_id)
        async with self._db.write() as conn:
            return (await conn.execute(stmt)).rowcount > 0

    async def list(self, tenant_id: str | None = None) -> builtins.list[TokenInfo]:
        query = sa.select(api_tokens).order_by(api_tokens.c.created_at, api_tokens.c.id)
        if tenant_id is not None:
            query = query.where(api_tokens.c.tenant_id == tenant_id)
        async with self._db.read() as conn:
            rows = (await conn.execute(query)).all()
        return [
            TokenInfo(
                row.id,
                row.tenant_id,
                as_utc(row.created_at),
                None if row.revoked_at is None else as_utc(row.revoked_at),
            )
            for row in rows
        ]

    async def delete_tenant(self, tenant_id: str) -> int:
        """Delete every token of the tenant, revoked ones too (offboarding); how many."""
        async with self._db.write() as conn:
            stmt = sa.delete(api_tokens).where(api_tokens.c.tenant_id == tenant_id)
            return (await conn.execute(stmt)).rowcount
