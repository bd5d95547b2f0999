"""ConfigRepo: tenant AI configs stored and returned as plain JSON dicts."""

from __future__ import annotations

from vecpipe.db import Database

CONFIG = {
    "primary": {"kind": "openai", "base_url": "https://gw.example/v1", "model": "m"},
    "fallbacks": [{"kind": "local", "model": "all-MiniLM-L6-v2"}],
    "note": "ünïcode ✓",
}


async def test_put_get_replace_delete(db: Database) -> None:
    assert await db.configs.get("acme") is None
    await db.configs.put("acme", CONFIG)
    assert await db.configs.get("acme") == CONFIG

    first = await db.configs.get_entry("acme")
    await db.configs.put("acme", {"primary": {"kind": "local"}})
    second = await db.configs.get_entry("acme")
    assert first is not None and second is not None
    assert second.config == {"primary": {"kind": "local"}}
    assert second.updated_at >= first.updated_at
    assert second.updated_at.tzinfo is not None

    assert await db.configs.delete("acme") is True
    assert await db.configs.delete("acme") is False
    assert await db.configs.get("acme") is None


async def test_tenants_are_separate_and_listed_in_order(db: Database) -> None:
    await db.configs.put("zeta", {"primary": {"kind": "local"}})
    await db.configs.put("acme", CONFIG)
    assert await db.configs.list_tenants() == ["acme", "zeta"]
    assert await db.configs.get("zeta") == {"primary": {"kind": "local"}}
    await db.configs.delete("zeta")
    assert await db.configs.list_tenants() == ["acme"]
    assert await db.configs.get("acme") == CONFIG
