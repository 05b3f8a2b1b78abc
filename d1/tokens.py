"""Access and refresh tokens (tables ``access_tokens`` and ``refresh_tokens``).

Tokens are stored only as their SHA-256 hex digest (``token_hash``); callers hash first.
Spec: client-server API "Using access tokens", "Refreshing access tokens".
"""

from __future__ import annotations

from typing import Any

from d1.database import D1Database, PreparedStatement


async def lookup_access_token(db: D1Database, token_hash: str) -> dict[str, Any] | None:
    """The token row joined with its user (is_guest, deactivated) and device (last_seen_ts)."""
    return await db.prepare(
        "SELECT t.id, t.user_id, t.device_id, t.expires_ts, t.refresh_token_id, t.used,"
        " u.is_guest, u.deactivated, d.last_seen_ts"
        " FROM access_tokens t JOIN users u ON u.user_id = t.user_id"
        " LEFT JOIN devices d ON d.user_id = t.user_id AND d.device_id = t.device_id"
        " WHERE t.token_hash = ?"
    ).bind(token_hash).first()


def insert_access_token(
    db: D1Database,
    token_hash: str,
    user_id: str,
    device_id: str | None,
    now_ms: int,
    expires_ts: int | None = None,
    refresh_token_hash: str | None = None,
) -> PreparedStatement:
    """Insert an access token; ``refresh_token_hash`` links it to the refresh token issued
    with it (which may be inserted earlier in the same batch)."""
    return db.prepare(
        "INSERT INTO access_tokens (token_hash, user_id, device_id, created_ts, expires_ts,"
        " refresh_token_id) VALUES (?, ?, ?, ?, ?,"
        " (SELECT id FROM refresh_tokens WHERE token_hash = ?))"
    ).bind(token_hash, user_id, device_id, now_ms, expires_ts, refresh_token_hash)


def insert_refresh_token(
    db: D1Database, token_hash: str, user_id: str, device_id: str, now_ms: int
) -> PreparedStatement:
    return db.prepare(
        "INSERT INTO refresh_tokens (token_hash, user_id, device_id, created_ts)"
        " VALUES (?, ?, ?, ?)"
    ).bind(token_hash, user_id, device_id, now_ms)


def retire_predecessors(db: D1Database, refresh_token_id: int) -> list[PreparedStatement]:
    """Statements run when the pair issued with refresh token ``refresh_token_id`` is first
    used: the refresh token it replaced, and that token's access tokens, are revoked."""
    return [
        db.prepare(
            "DELETE FROM access_tokens WHERE refresh_token_id IN"
            " (SELECT id FROM refresh_tokens WHERE next_id = ?)"
        ).bind(refresh_token_id),
        db.prepare("DELETE FROM refresh_tokens WHERE next_id = ?").bind(refresh_token_id),
    ]


async def mark_access_token_used(db: D1Database, token_id: int, refresh_token_id: int | None) -> None:
    statements = [db.prepare("UPDATE access_tokens SET used = 1 WHERE id = ?").bind(token_id)]
    if refresh_token_id is not None:
        statements.extend(retire_predecessors(db, refresh_token_id))
    await db.batch(statements)


def replace_refresh_token(
    db: D1Database, old_id: int, previous_next_id: int | None, new_token_hash: str
) -> list[PreparedStatement]:
    """Point refresh token ``old_id`` at its successor ``new_token_hash``. A successor issued
    by an earlier use of the same token (``previous_next_id``) was never used (else the old
    token would be gone), so it and its access tokens are dropped."""
    statements = []
    if previous_next_id is not None:
        statements += [
            db.prepare("DELETE FROM access_tokens WHERE refresh_token_id = ?").bind(previous_next_id),
            db.prepare("DELETE FROM refresh_tokens WHERE id = ?").bind(previous_next_id),
        ]
    statements.append(
        db.prepare(
            "UPDATE refresh_tokens SET next_id = (SELECT id FROM refresh_tokens WHERE token_hash = ?)"
            " WHERE id = ?"
        ).bind(new_token_hash, old_id)
    )
    return statements


async def lookup_refresh_token(db: D1Database, token_hash: str) -> dict[str, Any] | None:
    return await db.prepare(
        "SELECT r.id, r.user_id, r.device_id, r.next_id, u.deactivated"
        " FROM refresh_tokens r JOIN users u ON u.user_id = r.user_id WHERE r.token_hash = ?"
    ).bind(token_hash).first()


def delete_access_token(db: D1Database, token_id: int) -> PreparedStatement:
    return db.prepare("DELETE FROM access_tokens WHERE id = ?").bind(token_id)


def delete_device_tokens(db: D1Database, user_id: str, device_id: str) -> list[PreparedStatement]:
    return [
        db.prepare("DELETE FROM access_tokens WHERE user_id = ? AND device_id = ?").bind(
            user_id, device_id
        ),
        db.prepare("DELETE FROM refresh_tokens WHERE user_id = ? AND device_id = ?").bind(
            user_id, device_id
        ),
    ]


def delete_user_tokens(db: D1Database, user_id: str) -> list[PreparedStatement]:
    return [
        db.prepare("DELETE FROM access_tokens WHERE user_id = ?").bind(user_id),
        db.prepare("DELETE FROM refresh_tokens WHERE user_id = ?").bind(user_id),
    ]
