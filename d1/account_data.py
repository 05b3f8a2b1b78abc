"""Account data, global (room_id '') and per room (table ``account_data``).

Every change takes the next position of the ``account_data`` stream (table
``stream_positions``) in the same batch, so sync can ask "what changed since N".
Spec: client-server API "Client Config".
"""

from __future__ import annotations

import json
from typing import Any

from d1.database import D1Database, PreparedStatement

STREAM = "account_data"
GLOBAL = ""


def put_statements(
    db: D1Database, user_id: str, room_id: str, type: str, content: dict[str, Any]
) -> list[PreparedStatement]:
    """Allocate a stream position and upsert the row with it (run in one ``batch``)."""
    return [
        db.prepare("UPDATE stream_positions SET position = position + 1 WHERE stream = ?").bind(
            STREAM
        ),
        db.prepare(
            "INSERT INTO account_data (user_id, room_id, type, content, stream_id)"
            " VALUES (?, ?, ?, ?, (SELECT position FROM stream_positions WHERE stream = ?))"
            " ON CONFLICT (user_id, room_id, type) DO UPDATE SET"
            " content = excluded.content, stream_id = excluded.stream_id"
        ).bind(user_id, room_id, type, json.dumps(content, ensure_ascii=False), STREAM),
    ]


async def put(
    db: D1Database, user_id: str, room_id: str, type: str, content: dict[str, Any]
) -> None:
    await db.batch(put_statements(db, user_id, room_id, type, content))


async def get(db: D1Database, user_id: str, room_id: str, type: str) -> dict[str, Any] | None:
    row = await db.prepare(
        "SELECT content FROM account_data WHERE user_id = ? AND room_id = ? AND type = ?"
    ).bind(user_id, room_id, type).first()
    return None if row is None else json.loads(row["content"])


async def changed_since(
    db: D1Database, user_id: str, since: int
) -> list[dict[str, Any]]:
    """Rows (room_id, type, content as dict, stream_id) changed after position ``since``,
    oldest first. ``since`` 0 gives everything."""
    result = await db.prepare(
        "SELECT room_id, type, content, stream_id FROM account_data"
        " WHERE user_id = ? AND stream_id > ? ORDER BY stream_id"
    ).bind(user_id, since).all()
    return [{**r, "content": json.loads(r["content"])} for r in result.results]


async def current_position(db: D1Database) -> int:
    return int(
        await db.prepare("SELECT position FROM stream_positions WHERE stream = ?")
        .bind(STREAM)
        .first("position")
    )
