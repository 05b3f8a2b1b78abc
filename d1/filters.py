"""Stored sync filters (table ``filters``). Spec: client-server API "Filtering"."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from d1.database import D1Database


async def add_filter(db: D1Database, user_id: str, definition: dict[str, Any]) -> int:
    """Store the filter; its ID is the next number for this user (0, 1, ...)."""
    text = json.dumps(definition, ensure_ascii=False)

    def insert(conn: sqlite3.Connection) -> int:
        row = conn.execute(
            "SELECT COALESCE(MAX(filter_id) + 1, 0) FROM filters WHERE user_id = ?", (user_id,)
        ).fetchone()
        filter_id = int(row[0])
        conn.execute(
            "INSERT INTO filters (user_id, filter_id, filter_json) VALUES (?, ?, ?)",
            (user_id, filter_id, text),
        )
        return filter_id

    return await db.run_in_transaction(insert)


async def get_filter(db: D1Database, user_id: str, filter_id: int) -> dict[str, Any] | None:
    row = await db.prepare(
        "SELECT filter_json FROM filters WHERE user_id = ? AND filter_id = ?"
    ).bind(user_id, filter_id).first()
    return None if row is None else json.loads(row["filter_json"])
