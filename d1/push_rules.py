"""A user's push rules (table ``push_rules``): the rules they added, and their changes to
server-default rules (``is_default`` 1: only ``enabled``/``actions`` are meaningful).

Changes are read-then-write, so they run inside ``D1Database.run_in_transaction`` on the
connection it provides (the ``*_sync`` functions). Each change also rewrites the user's
``m.push_rules`` account data (see ``workers.client.pushrules``).
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from d1.database import D1Database, D1Result, PreparedStatement

_COLUMNS = "kind, rule_id, is_default, priority, definition, enabled, actions"


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    return {
        **row,
        "is_default": bool(row["is_default"]),
        "definition": None if row["definition"] is None else json.loads(row["definition"]),
        "actions": None if row["actions"] is None else json.loads(row["actions"]),
    }


def rows_statement(db: D1Database, user_id: str) -> PreparedStatement:
    """The read of ``load_rows``, to run with others (``decode_rows`` reads its result)."""
    return db.prepare(f"SELECT {_COLUMNS} FROM push_rules WHERE user_id = ?").bind(user_id)


def decode_rows(result: D1Result) -> list[dict[str, Any]]:
    return [_decode(r) for r in result.results]


async def load_rows(db: D1Database, user_id: str) -> list[dict[str, Any]]:
    return decode_rows(await rows_statement(db, user_id).all())


def load_rows_sync(conn: sqlite3.Connection, user_id: str) -> list[dict[str, Any]]:
    cursor = conn.execute(f"SELECT {_COLUMNS} FROM push_rules WHERE user_id = ?", (user_id,))
    names = [d[0] for d in cursor.description]
    return [_decode(dict(zip(names, row))) for row in cursor.fetchall()]


def replace_rows_sync(
    conn: sqlite3.Connection, user_id: str, rows: list[dict[str, Any]]
) -> None:
    """Store exactly ``rows`` as the user's push rules."""
    conn.execute("DELETE FROM push_rules WHERE user_id = ?", (user_id,))
    conn.executemany(
        f"INSERT INTO push_rules (user_id, {_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                user_id, r["kind"], r["rule_id"], int(r["is_default"]), r["priority"],
                None if r["definition"] is None else json.dumps(r["definition"]),
                None if r["enabled"] is None else int(r["enabled"]),
                None if r["actions"] is None else json.dumps(r["actions"]),
            )
            for r in rows
        ],
    )
