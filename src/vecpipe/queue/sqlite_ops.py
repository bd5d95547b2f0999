"""The SQLite queue's statements: plain synchronous functions on one `sqlite3.Connection`.

They run on the queue's own thread (see sqlite.py), never on the event loop. Every write is a
short `BEGIN IMMEDIATE` transaction: the writer takes the database's write lock up front and
waits for it in `busy_timeout`, instead of reading a snapshot that another process's write
makes stale (`SQLITE_BUSY_SNAPSHOT`, which no timeout cures). Taking the lock before choosing
which rows to lease is what keeps two receivers, in this process or another, from leasing
the same message.

Times are wall-clock seconds (`time.time()`), because several processes share the file.
A lease token is kept after its lease expires, so a slow holder whose lease ran out may still
ack the message as long as nobody has leased it since; once re-leased, the old token matches
nothing and the old holder's ack, retry, release, dead-letter or extend is a no-op.
"""

from __future__ import annotations

import secrets
import sqlite3
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from vecpipe.errors import ConfigError
from vecpipe.queue.base import DeadLetter, Purged, tenant_of

SCHEMA_VERSION = 1
MAX_REASON_CHARS = 4000
_ID_CHUNK = 500  # stays far below SQLite's limit on bound parameters

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    body BLOB NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    available_at REAL NOT NULL,
    lease_until REAL,
    lease_token TEXT,
    enqueued_at REAL NOT NULL,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS messages_due ON messages (available_at, id);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY,
    body BLOB NOT NULL,
    reason TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    failed_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letters_failed ON dead_letters (failed_at, id);
"""

_DUE = "available_at <= :now AND (lease_until IS NULL OR lease_until <= :now)"


@dataclass(frozen=True)
class SqliteTag:
    """Delivery.tag of the SQLite queue: the row and the lease that delivered it."""

    id: int
    token: str


@dataclass(frozen=True)
class Leased:
    id: int
    token: str
    body: bytes
    attempts: int


@contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[None]:
    """A write transaction that holds the write lock from its first statement."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.rollback()
        raise


def connect(path: Path, busy_timeout: float) -> sqlite3.Connection:
    """Open (creating if needed) the queue file: WAL, synchronous=FULL, schema in place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None)
    try:
        (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
        if str(mode).lower() != "wal":
            raise ConfigError(f"queue file {path.name} cannot use WAL (journal_mode={mode})")
        # FULL: every commit is on disk before publish/ack return, not just before the
        # next checkpoint; the queue's promises are about power loss, not only crashes.
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA secure_delete = ON")  # an offboarded tenant's bodies are erased
        _create_schema(conn, path)
    except BaseException:
        conn.close()
        raise
    return conn


def _create_schema(conn: sqlite3.Connection, path: Path) -> None:
    """Create or upgrade the schema; writes nothing when it is current (a queue file must
    open on a full disk: reads and acks go on there)."""
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if version == SCHEMA_VERSION:
        return
    with immediate(conn):
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            raise ConfigError(
                f"queue file {path.name} has schema version {version}; "
                f"this vecpipe knows up to {SCHEMA_VERSION}"
            )
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def insert(conn: sqlite3.Connection, bodies: Sequence[bytes]) -> None:
    with immediate(conn):
        now = time.time()
        conn.executemany(
            "INSERT INTO messages (body, attempts, available_at, enqueued_at) VALUES (?, 0, ?, ?)",
            [(bytes(body), now, now) for body in bodies],
        )


def lease(conn: sqlite3.Connection, max_messages: int, lease_seconds: float) -> list[Leased]:
    """Lease up to `max_messages` due messages, oldest due first, counting one attempt each."""
    now = time.time()
    # A lock-free look first: an idle poll must not take the write lock every time.
    if not conn.execute(f"SELECT 1 FROM messages WHERE {_DUE} LIMIT 1", {"now": now}).fetchall():
        return []
    token = secrets.token_hex(16)
    with immediate(conn):
        now = time.time()
        rows = conn.execute(
            "UPDATE messages SET lease_token = :token, lease_until = :until,"
            " attempts = attempts + 1"
            f" WHERE id IN (SELECT id FROM messages WHERE {_DUE}"
            "  ORDER BY available_at, id LIMIT :limit)"
            " RETURNING id, body, attempts, available_at",
            {"token": token, "until": now + lease_seconds, "now": now, "limit": max_messages},
        ).fetchall()
    rows.sort(key=lambda row: (row[3], row[0]))
    return [Leased(row[0], token, row[1], row[2]) for row in rows]


def _held(tag: SqliteTag) -> dict[str, object]:
    return {"id": tag.id, "token": tag.token}


_HELD = "id = :id AND lease_token = :token"


def delete(conn: sqlite3.Connection, tags: Sequence[SqliteTag]) -> list[SqliteTag]:
    """Delete acknowledged messages; returns the tags whose lease was lost (nothing done)."""
    lost = []
    with immediate(conn):
        for tag in tags:
            if conn.execute(f"DELETE FROM messages WHERE {_HELD}", _held(tag)).rowcount == 0:
                lost.append(tag)
    return lost


def extend(
    conn: sqlite3.Connection, tags: Sequence[SqliteTag], lease_seconds: float
) -> list[SqliteTag]:
    """Leases end `lease_seconds` from now; returns the tags whose lease was lost (nothing done).

    One UPDATE per lease token (a receive's batch shares one) and up to _ID_CHUNK rows. A
    lease that ran out but that nobody took since still has its token, and is kept.
    """
    ids_by_token: dict[str, list[int]] = defaultdict(list)
    for tag in tags:
        ids_by_token[tag.token].append(tag.id)
    kept: set[SqliteTag] = set()
    with immediate(conn):
        until = time.time() + lease_seconds
        for token, ids in ids_by_token.items():
            for start in range(0, len(ids), _ID_CHUNK):
                chunk = ids[start : start + _ID_CHUNK]
                rows = conn.execute(
                    "UPDATE messages SET lease_until = ?"
                    f" WHERE lease_token = ? AND id IN ({', '.join('?' * len(chunk))})"
                    " RETURNING id",
                    (until, token, *chunk),
                ).fetchall()
                kept.update(SqliteTag(row[0], token) for row in rows)
    return [tag for tag in tags if tag not in kept]


def reschedule(conn: sqlite3.Connection, tag: SqliteTag, delay: float, reason: str) -> bool:
    with immediate(conn):
        params = {**_held(tag), "at": time.time() + max(delay, 0.0), "error": _clip(reason)}
        cursor = conn.execute(
            "UPDATE messages SET lease_token = NULL, lease_until = NULL,"
            f" available_at = :at, last_error = :error WHERE {_HELD}",
            params,
        )
    return cursor.rowcount == 1


def unlease(conn: sqlite3.Connection, tags: Sequence[SqliteTag]) -> list[SqliteTag]:
    """Give leases back uncounted; returns the tags whose lease was lost (nothing done)."""
    lost = []
    with immediate(conn):
        for tag in tags:
            cursor = conn.execute(
                "UPDATE messages SET lease_token = NULL, lease_until = NULL,"
                f" attempts = MAX(attempts - 1, 0) WHERE {_HELD}",
                _held(tag),
            )
            if cursor.rowcount == 0:
                lost.append(tag)
    return lost


def bury(conn: sqlite3.Connection, tag: SqliteTag, reason: str) -> bool:
    """Move a held message to dead_letters, in one transaction."""
    with immediate(conn):
        rows = conn.execute(
            f"DELETE FROM messages WHERE {_HELD} RETURNING body, attempts", _held(tag)
        ).fetchall()
        if not rows:
            return False
        (row,) = rows
        conn.execute(
            "INSERT INTO dead_letters (id, body, reason, attempts, failed_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (tag.id, row[0], _clip(reason), row[1], time.time()),
        )
    return True


def dead_letters(conn: sqlite3.Connection, limit: int) -> list[DeadLetter]:
    rows = conn.execute(
        "SELECT id, body, reason, attempts, failed_at FROM dead_letters"
        " ORDER BY failed_at, id LIMIT ?",
        (max(limit, 0),),
    ).fetchall()
    return [
        DeadLetter(str(id_), body, reason, attempts, datetime.fromtimestamp(failed_at, UTC))
        for id_, body, reason, attempts, failed_at in rows
    ]


def replay(conn: sqlite3.Connection, ids: Sequence[str] | None) -> int:
    """Move dead letters back as new messages (attempts reset, reason kept as last_error)."""
    with immediate(conn):
        now = time.time()
        if ids is None:
            return _replay_where(conn, "", (), now)
        wanted = sorted({int(i) for i in ids if str(i).strip().isdecimal()})
        replayed = 0
        for start in range(0, len(wanted), _ID_CHUNK):
            chunk = wanted[start : start + _ID_CHUNK]
            where = f"WHERE id IN ({', '.join('?' * len(chunk))})"
            replayed += _replay_where(conn, where, chunk, now)
        return replayed


def _replay_where(conn: sqlite3.Connection, where: str, args: Sequence[int], now: float) -> int:
    moved = conn.execute(
        "INSERT INTO messages (body, attempts, available_at, enqueued_at, last_error)"
        f" SELECT body, 0, ?, ?, reason FROM dead_letters {where} ORDER BY failed_at, id",
        (now, now, *args),
    ).rowcount
    conn.execute(f"DELETE FROM dead_letters {where}", tuple(args))
    return moved


def count(conn: sqlite3.Connection) -> int:
    (n,) = conn.execute("SELECT COUNT(*) FROM messages").fetchone()
    return int(n)


def count_dead(conn: sqlite3.Connection) -> int:
    (found,) = conn.execute("SELECT COUNT(*) FROM dead_letters").fetchone()
    return int(found)


def _clip(reason: str) -> str:
    return reason if len(reason) <= MAX_REASON_CHARS else reason[: MAX_REASON_CHARS - 1] + "…"


def purge_tenant(conn: sqlite3.Connection, tenant_id: str) -> Purged:
    """Delete the tenant's messages (leased ones too: their acks become no-ops) and dead
    letters, overwriting the freed pages, then truncate the WAL, which still holds them."""
    counts = []
    for table in ("messages", "dead_letters"):
        doomed = [
            row_id
            for row_id, body in conn.execute(f"SELECT id, body FROM {table}")
            if tenant_of(bytes(body)) == tenant_id
        ]
        with immediate(conn):
            for chunk in range(0, len(doomed), _ID_CHUNK):
                ids = doomed[chunk : chunk + _ID_CHUNK]
                marks = ",".join("?" * len(ids))
                conn.execute(f"DELETE FROM {table} WHERE id IN ({marks})", ids)
        counts.append(len(doomed))
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return Purged(messages=counts[0], dead_letters=counts[1])
