"""OpenID tokens (table ``openid_tokens``): stored as the SHA-256 hex of the token, with an
expiry (spec: client-server "OpenID", server-server "OpenID")."""

from __future__ import annotations

from d1.database import D1Database


async def insert_openid_token(db: D1Database, token_hash: str, user_id: str, expires_ts: int) -> None:
    await db.prepare(
        "INSERT INTO openid_tokens (token_hash, user_id, expires_ts) VALUES (?,?,?)"
    ).bind(token_hash, user_id, expires_ts).run()


async def openid_token_owner(db: D1Database, token_hash: str, now_ms: int) -> str | None:
    """The user of an unexpired token whose account is still active, or None."""
    user_id = await db.prepare(
        "SELECT t.user_id FROM openid_tokens t JOIN users u ON u.user_id = t.user_id"
        " WHERE t.token_hash = ? AND t.expires_ts > ? AND u.deactivated = 0"
    ).bind(token_hash, now_ms).first("user_id")
    return None if user_id is None else str(user_id)


async def delete_expired(db: D1Database, now_ms: int) -> None:
    await db.prepare("DELETE FROM openid_tokens WHERE expires_ts <= ?").bind(now_ms).run()
