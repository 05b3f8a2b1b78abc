"""User-interactive authentication sessions (table ``ui_auth_sessions``).

Spec: client-server API "User-Interactive Authentication API": a session ID ties together
the requests of one authentication; the server remembers which stages it completed.
"""

from __future__ import annotations

import json
from typing import Any

from d1.database import D1Database


async def create_session(
    db: D1Database, session_id: str, operation: str, user_id: str | None, now_ms: int
) -> None:
    await db.prepare(
        "INSERT INTO ui_auth_sessions (session_id, operation, user_id, created_ts)"
        " VALUES (?, ?, ?, ?)"
    ).bind(session_id, operation, user_id, now_ms).run()


async def get_session(db: D1Database, session_id: str) -> dict[str, Any] | None:
    row = await db.prepare(
        "SELECT session_id, operation, user_id, completed, created_ts FROM ui_auth_sessions"
        " WHERE session_id = ?"
    ).bind(session_id).first()
    if row is not None:
        row["completed"] = json.loads(row["completed"])
    return row


async def set_completed(db: D1Database, session_id: str, completed: list[str]) -> None:
    await db.prepare("UPDATE ui_auth_sessions SET completed = ? WHERE session_id = ?").bind(
        json.dumps(completed), session_id
    ).run()


async def delete_session(db: D1Database, session_id: str) -> None:
    await db.prepare("DELETE FROM ui_auth_sessions WHERE session_id = ?").bind(session_id).run()


async def delete_expired(db: D1Database, before_ms: int) -> None:
    await db.prepare("DELETE FROM ui_auth_sessions WHERE created_ts < ?").bind(before_ms).run()
