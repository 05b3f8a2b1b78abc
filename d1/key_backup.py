"""Server-side key backups (tables ``room_key_backup_versions`` and ``room_key_backup_sessions``).

Spec: client-server API "Server-side key backups". Version numbers are never reused (a
deleted version keeps its row, marked deleted, and loses its keys). Each version's ``etag``
grows whenever its stored keys change.
"""

from __future__ import annotations

import json
from typing import Any

from d1.database import D1Database, PreparedStatement

JsonDict = dict[str, Any]


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


async def create_version(db: D1Database, user_id: str, algorithm: str, auth_data: JsonDict) -> int:
    """Create the user's next backup version (one past any version ever made) and return it."""
    result = await db.batch([
        db.prepare(
            "INSERT INTO room_key_backup_versions (user_id, version, algorithm, auth_data)"
            " VALUES (?, (SELECT COALESCE(MAX(version), 0) + 1 FROM room_key_backup_versions"
            " WHERE user_id = ?), ?, ?) RETURNING version"
        ).bind(user_id, user_id, algorithm, _dumps(auth_data))
    ])
    return int(result[0].results[0]["version"])


def _version_json(row: dict[str, Any]) -> JsonDict:
    return {
        "version": str(row["version"]),
        "algorithm": row["algorithm"],
        "auth_data": json.loads(row["auth_data"]),
        "etag": str(row["etag"]),
        "count": int(row["count"]),
    }


_VERSION_SELECT = (
    "SELECT v.version, v.algorithm, v.auth_data, v.etag,"
    " (SELECT COUNT(*) FROM room_key_backup_sessions s WHERE s.user_id = v.user_id"
    " AND s.version = v.version) AS count FROM room_key_backup_versions v"
    " WHERE v.user_id = ? AND v.deleted = 0"
)


async def current_version(db: D1Database, user_id: str) -> JsonDict | None:
    """The latest version that is not deleted, as the spec's GET response, or None."""
    row = await db.prepare(_VERSION_SELECT + " ORDER BY v.version DESC LIMIT 1").bind(user_id).first()
    return None if row is None else _version_json(row)


async def get_version(db: D1Database, user_id: str, version: int) -> JsonDict | None:
    row = await db.prepare(_VERSION_SELECT + " AND v.version = ?").bind(user_id, version).first()
    return None if row is None else _version_json(row)


async def update_auth_data(db: D1Database, user_id: str, version: int, auth_data: JsonDict) -> None:
    await db.prepare(
        "UPDATE room_key_backup_versions SET auth_data = ? WHERE user_id = ? AND version = ?"
    ).bind(_dumps(auth_data), user_id, version).run()


async def delete_version(db: D1Database, user_id: str, version: int) -> None:
    await db.batch([
        db.prepare(
            "DELETE FROM room_key_backup_sessions WHERE user_id = ? AND version = ?"
        ).bind(user_id, version),
        db.prepare(
            "UPDATE room_key_backup_versions SET deleted = 1 WHERE user_id = ? AND version = ?"
        ).bind(user_id, version),
    ])


def _session_json(row: dict[str, Any]) -> JsonDict:
    return {
        "first_message_index": row["first_message_index"],
        "forwarded_count": row["forwarded_count"],
        "is_verified": bool(row["is_verified"]),
        "session_data": json.loads(row["session_data"]),
    }


async def get_sessions(
    db: D1Database,
    user_id: str,
    version: int,
    room_id: str | None = None,
    session_id: str | None = None,
) -> dict[str, dict[str, JsonDict]]:
    """room_id -> session_id -> KeyBackupData, narrowed to a room and a session if given."""
    sql = (
        "SELECT room_id, session_id, first_message_index, forwarded_count, is_verified,"
        " session_data FROM room_key_backup_sessions WHERE user_id = ? AND version = ?"
    )
    args: list[Any] = [user_id, version]
    if room_id is not None:
        sql += " AND room_id = ?"
        args.append(room_id)
        if session_id is not None:
            sql += " AND session_id = ?"
            args.append(session_id)
    rows = (await db.prepare(sql + " ORDER BY room_id, session_id").bind(*args).all()).results
    out: dict[str, dict[str, JsonDict]] = {}
    for row in rows:
        out.setdefault(row["room_id"], {})[row["session_id"]] = _session_json(row)
    return out


def put_session(
    db: D1Database, user_id: str, version: int, room_id: str, session_id: str, data: JsonDict
) -> PreparedStatement:
    return db.prepare(
        "INSERT INTO room_key_backup_sessions (user_id, version, room_id, session_id,"
        " first_message_index, forwarded_count, is_verified, session_data)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (user_id, version, room_id, session_id)"
        " DO UPDATE SET first_message_index = excluded.first_message_index,"
        " forwarded_count = excluded.forwarded_count, is_verified = excluded.is_verified,"
        " session_data = excluded.session_data"
    ).bind(
        user_id, version, room_id, session_id, int(data["first_message_index"]),
        int(data["forwarded_count"]), 1 if data["is_verified"] else 0, _dumps(data["session_data"]),
    )


def delete_sessions(
    db: D1Database, user_id: str, version: int, room_id: str | None = None, session_id: str | None = None
) -> PreparedStatement:
    sql = "DELETE FROM room_key_backup_sessions WHERE user_id = ? AND version = ?"
    args: list[Any] = [user_id, version]
    if room_id is not None:
        sql += " AND room_id = ?"
        args.append(room_id)
        if session_id is not None:
            sql += " AND session_id = ?"
            args.append(session_id)
    return db.prepare(sql).bind(*args)


def bump_etag(db: D1Database, user_id: str, version: int) -> PreparedStatement:
    return db.prepare(
        "UPDATE room_key_backup_versions SET etag = etag + 1 WHERE user_id = ? AND version = ?"
    ).bind(user_id, version)
