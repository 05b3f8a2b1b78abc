"""Devices of local users (table ``devices``).

Spec: client-server API "Device management"; deleting a device also revokes its tokens
(statements from ``d1.tokens``).
"""

from __future__ import annotations

from typing import Any

from d1.database import D1Database, PreparedStatement
from d1.tokens import delete_device_tokens


def upsert_device(
    db: D1Database,
    user_id: str,
    device_id: str,
    display_name: str | None,
    now_ms: int,
    ip: str | None = None,
) -> PreparedStatement:
    """Create the device, or keep the existing one (its display name is not changed); either
    way it was last seen now, from ``ip``."""
    return db.prepare(
        "INSERT INTO devices (user_id, device_id, display_name, created_ts, last_seen_ts,"
        " last_seen_ip) VALUES (?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (user_id, device_id) DO UPDATE SET"
        " last_seen_ts = excluded.last_seen_ts, last_seen_ip = excluded.last_seen_ip"
    ).bind(user_id, device_id, display_name, now_ms, now_ms, ip)


async def get_device(db: D1Database, user_id: str, device_id: str) -> dict[str, Any] | None:
    return await db.prepare(
        "SELECT device_id, display_name, last_seen_ts, last_seen_ip FROM devices"
        " WHERE user_id = ? AND device_id = ?"
    ).bind(user_id, device_id).first()


async def list_devices(db: D1Database, user_id: str) -> list[dict[str, Any]]:
    result = await db.prepare(
        "SELECT device_id, display_name, last_seen_ts, last_seen_ip FROM devices"
        " WHERE user_id = ? ORDER BY device_id"
    ).bind(user_id).all()
    return result.results


async def set_display_name(
    db: D1Database, user_id: str, device_id: str, display_name: str | None
) -> bool:
    """Rename a device; False when the device does not exist."""
    result = await db.prepare(
        "UPDATE devices SET display_name = ? WHERE user_id = ? AND device_id = ?"
    ).bind(display_name, user_id, device_id).run()
    return bool(result.meta.get("changes"))


async def touch_device(
    db: D1Database, user_id: str, device_id: str, now_ms: int, ip: str | None
) -> None:
    await db.prepare(
        "UPDATE devices SET last_seen_ts = ?, last_seen_ip = ? WHERE user_id = ? AND device_id = ?"
    ).bind(now_ms, ip, user_id, device_id).run()


def delete_device(db: D1Database, user_id: str, device_id: str) -> list[PreparedStatement]:
    """Statements deleting the device and revoking every token bound to it."""
    return [
        *delete_device_tokens(db, user_id, device_id),
        db.prepare("DELETE FROM devices WHERE user_id = ? AND device_id = ?").bind(
            user_id, device_id
        ),
    ]


def delete_all_devices(db: D1Database, user_id: str) -> PreparedStatement:
    return db.prepare("DELETE FROM devices WHERE user_id = ?").bind(user_id)
