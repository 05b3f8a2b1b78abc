"""Local user accounts and their global profiles (tables ``users`` and ``profiles``).

Spec: client-server API "Account registration and management" and "Profiles".
"""

from __future__ import annotations

from typing import Any

from d1.database import D1Database, PreparedStatement


def insert_user(
    db: D1Database,
    user_id: str,
    localpart: str,
    password_hash: str | None,
    now_ms: int,
    *,
    is_guest: bool = False,
) -> list[PreparedStatement]:
    """Statements creating the user and its profile (displayname defaults to the localpart,
    as the spec suggests for new accounts)."""
    return [
        db.prepare(
            "INSERT INTO users (user_id, localpart, password_hash, is_guest, created_ts)"
            " VALUES (?, ?, ?, ?, ?)"
        ).bind(user_id, localpart, password_hash, int(is_guest), now_ms),
        db.prepare("INSERT INTO profiles (user_id, displayname) VALUES (?, ?)").bind(
            user_id, localpart
        ),
    ]


async def get_user(db: D1Database, user_id: str) -> dict[str, Any] | None:
    return await db.prepare(
        "SELECT user_id, localpart, password_hash, is_guest, deactivated, created_ts"
        " FROM users WHERE user_id = ?"
    ).bind(user_id).first()


async def user_exists(db: D1Database, user_id: str) -> bool:
    """Whether the ID is taken (deactivated accounts keep their ID forever)."""
    row = await db.prepare("SELECT 1 AS one FROM users WHERE user_id = ?").bind(user_id).first()
    return row is not None


def set_password_hash(db: D1Database, user_id: str, password_hash: str | None) -> PreparedStatement:
    return db.prepare("UPDATE users SET password_hash = ? WHERE user_id = ?").bind(
        password_hash, user_id
    )


def mark_deactivated(db: D1Database, user_id: str) -> list[PreparedStatement]:
    """Deactivation: the password is wiped, the profile cleared and the account flagged."""
    return [
        db.prepare(
            "UPDATE users SET deactivated = 1, password_hash = NULL WHERE user_id = ?"
        ).bind(user_id),
        db.prepare(
            "UPDATE profiles SET displayname = NULL, avatar_url = NULL WHERE user_id = ?"
        ).bind(user_id),
    ]


async def get_profile(db: D1Database, user_id: str) -> dict[str, Any] | None:
    """``{"displayname", "avatar_url"}`` of a local user (values may be None), or None."""
    return await db.prepare(
        "SELECT p.displayname, p.avatar_url FROM profiles p JOIN users u ON u.user_id = p.user_id"
        " WHERE p.user_id = ?"
    ).bind(user_id).first()


async def set_profile_field(
    db: D1Database, user_id: str, field: str, value: str | None
) -> None:
    if field not in ("displayname", "avatar_url"):
        raise ValueError(f"not a profile field: {field}")
    await db.prepare(f"UPDATE profiles SET {field} = ? WHERE user_id = ?").bind(
        value, user_id
    ).run()
