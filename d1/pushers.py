"""HTTP pushers (table ``pushers``), one per (user, app_id, pushkey).

Spec: client-server API ``POST /pushers/set`` and ``GET /pushers``: setting a pusher
replaces the one with the same ``app_id`` and ``pushkey`` for the user; without ``append``
it also removes the pushers of *other* users with that ``app_id`` and ``pushkey``.
"""

from __future__ import annotations

import json
from typing import Any

from d1.database import D1Database, PreparedStatement

JsonDict = dict[str, Any]
_COLUMNS = (
    "user_id, app_id, pushkey, kind, app_display_name, device_display_name, profile_tag, lang,"
    " data, device_id, pushkey_ts"
)


def _decode(row: JsonDict) -> JsonDict:
    return {**row, "data": json.loads(row["data"])}


async def list_pushers(db: D1Database, user_id: str) -> list[JsonDict]:
    rows = (
        await db.prepare(
            f"SELECT {_COLUMNS} FROM pushers WHERE user_id = ? ORDER BY app_id, pushkey"
        ).bind(user_id).all()
    ).results
    return [_decode(r) for r in rows]


async def users_with_pushers(db: D1Database) -> list[str]:
    rows = (await db.prepare("SELECT DISTINCT user_id FROM pushers ORDER BY user_id").all()).results
    return [r["user_id"] for r in rows]


async def other_users(db: D1Database, app_id: str, pushkey: str, user_id: str) -> list[str]:
    """Users other than ``user_id`` with a pusher for this app_id and pushkey."""
    rows = (
        await db.prepare(
            "SELECT user_id FROM pushers WHERE app_id = ? AND pushkey = ? AND user_id != ?"
        ).bind(app_id, pushkey, user_id).all()
    ).results
    return [r["user_id"] for r in rows]


def upsert(db: D1Database, pusher: JsonDict) -> PreparedStatement:
    """Insert or replace the user's pusher with ``pusher``'s app_id and pushkey."""
    return db.prepare(
        f"INSERT INTO pushers ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (user_id, app_id, pushkey) DO UPDATE SET kind = excluded.kind,"
        " app_display_name = excluded.app_display_name,"
        " device_display_name = excluded.device_display_name, profile_tag = excluded.profile_tag,"
        " lang = excluded.lang, data = excluded.data, device_id = excluded.device_id,"
        " pushkey_ts = excluded.pushkey_ts"
    ).bind(
        pusher["user_id"], pusher["app_id"], pusher["pushkey"], pusher["kind"],
        pusher["app_display_name"], pusher["device_display_name"], pusher.get("profile_tag"),
        pusher["lang"], json.dumps(pusher["data"]), pusher.get("device_id"), pusher["pushkey_ts"],
    )


def delete(db: D1Database, user_id: str, app_id: str, pushkey: str) -> PreparedStatement:
    return db.prepare(
        "DELETE FROM pushers WHERE user_id = ? AND app_id = ? AND pushkey = ?"
    ).bind(user_id, app_id, pushkey)


async def delete_for_devices(db: D1Database, user_id: str, device_ids: list[str]) -> int:
    """Delete the user's pushers set by any of ``device_ids`` (their ``device_id``); return
    how many went."""
    if not device_ids:
        return 0
    marks = ",".join("?" * len(device_ids))
    rows = (
        await db.prepare(
            f"DELETE FROM pushers WHERE user_id = ? AND device_id IN ({marks}) RETURNING app_id"
        ).bind(user_id, *device_ids).all()
    ).results
    return len(rows)


def delete_for_other_users(db: D1Database, app_id: str, pushkey: str, user_id: str) -> PreparedStatement:
    return db.prepare(
        "DELETE FROM pushers WHERE app_id = ? AND pushkey = ? AND user_id != ?"
    ).bind(app_id, pushkey, user_id)
