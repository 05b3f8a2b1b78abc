"""Ephemeral data: receipts, typing and presence (tables ``receipts``, ``typing``,
``typing_rooms``, ``presence``), each change stamped with its stream's next position.

Spec: client-server API modules "Receipts", "Typing Notifications" and "Presence".
- Receipts: one event per (user, receipt type, thread) in a room; ``m.read.private`` is
  served to its owner only.
- Typing lives in D1 with an expiry, so it survives a restart of the process; the room's
  typing actor (durable/typing.py) is its only writer and expires it with an alarm.
- Presence: the stored state of each local user; ``last_active_ago`` and
  ``currently_active`` are computed when served.
"""

from __future__ import annotations

import json
from typing import Any, Iterable

from d1.database import D1Database, PreparedStatement
from d1.streams import POSITION, advance

RECEIPTS = "receipts"
TYPING = "typing"
PRESENCE = "presence"
PRIVATE_READ = "m.read.private"
# A user counts as currently active this long after their last activity (Synapse's
# LAST_ACTIVE_GRANULARITY: activity is recorded at most this often).
CURRENTLY_ACTIVE_MS = 60 * 1000
_CHUNK = 90

JsonDict = dict[str, Any]


def _chunks(items: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


# --- receipts ------------------------------------------------------------------------------


def put_receipt(
    db: D1Database,
    room_id: str,
    receipt_type: str,
    user_id: str,
    thread_id: str | None,
    event_id: str,
    ts: int,
) -> list[PreparedStatement]:
    """Statements replacing the user's receipt of this type (and thread) in the room."""
    data: JsonDict = {"ts": ts}
    if thread_id is not None:
        data["thread_id"] = thread_id
    return [
        advance(db, RECEIPTS),
        db.prepare(
            "INSERT INTO receipts (room_id, receipt_type, user_id, thread_id, event_id, data,"
            " stream_id) VALUES (?, ?, ?, ?, ?, ?, " + POSITION + ")"
            " ON CONFLICT (room_id, receipt_type, user_id, thread_id) DO UPDATE SET"
            " event_id = excluded.event_id, data = excluded.data, stream_id = excluded.stream_id"
        ).bind(room_id, receipt_type, user_id, thread_id or "", event_id, json.dumps(data), RECEIPTS),
    ]


async def receipts_changed(
    db: D1Database, room_ids: list[str], user_id: str, since: int, upto: int
) -> dict[str, JsonDict]:
    """room_id -> ``m.receipt`` content of the receipts changed in (since, upto], leaving out
    other users' private receipts. Rooms without changes are absent."""
    out: dict[str, JsonDict] = {}
    for chunk in _chunks(room_ids):
        rows = (
            await db.prepare(
                "SELECT room_id, receipt_type, user_id, event_id, data FROM receipts"
                " WHERE stream_id > ? AND stream_id <= ? AND (receipt_type != ? OR user_id = ?)"
                " AND room_id IN (" + ",".join("?" * len(chunk)) + ") ORDER BY stream_id"
            ).bind(since, upto, PRIVATE_READ, user_id, *chunk).all()
        ).results
        for r in rows:
            content = out.setdefault(r["room_id"], {})
            content.setdefault(r["event_id"], {}).setdefault(r["receipt_type"], {})[
                r["user_id"]
            ] = json.loads(r["data"])
    return out


async def read_receipt_event(
    db: D1Database, room_id: str, user_id: str
) -> str | None:
    """The event of the user's most advanced unthreaded or main-timeline read receipt
    (public or private) in the room, by stream order of the events: what notification
    counts are measured from."""
    return await db.prepare(
        "SELECT r.event_id FROM receipts r JOIN events e ON e.event_id = r.event_id"
        " WHERE r.room_id = ? AND r.user_id = ? AND r.receipt_type IN ('m.read', 'm.read.private')"
        " AND r.thread_id IN ('', 'main') ORDER BY e.stream_ordering DESC LIMIT 1"
    ).bind(room_id, user_id).first("event_id")


# --- typing --------------------------------------------------------------------------------


def set_typing_statements(
    db: D1Database, room_id: str, started: dict[str, int], stopped: Iterable[str]
) -> list[PreparedStatement]:
    """Statements starting (user -> expires_ts) and stopping typing in one room, with a new
    'typing' position for the room."""
    statements = [advance(db, TYPING)]
    for user_id, expires_ts in started.items():
        statements.append(
            db.prepare(
                "INSERT INTO typing (room_id, user_id, expires_ts) VALUES (?, ?, ?)"
                " ON CONFLICT (room_id, user_id) DO UPDATE SET expires_ts = excluded.expires_ts"
            ).bind(room_id, user_id, expires_ts)
        )
    for user_id in stopped:
        statements.append(
            db.prepare("DELETE FROM typing WHERE room_id = ? AND user_id = ?").bind(room_id, user_id)
        )
    statements.append(
        db.prepare(
            "INSERT INTO typing_rooms (room_id, stream_id) VALUES (?, " + POSITION + ")"
            " ON CONFLICT (room_id) DO UPDATE SET stream_id = excluded.stream_id"
        ).bind(room_id, TYPING)
    )
    return statements


def refresh_typing(db: D1Database, room_id: str, user_id: str, expires_ts: int) -> PreparedStatement:
    """Extend a user's typing without a new position (the set of typers is unchanged)."""
    return db.prepare(
        "UPDATE typing SET expires_ts = ? WHERE room_id = ? AND user_id = ?"
    ).bind(expires_ts, room_id, user_id)


async def typing_rows(db: D1Database, room_id: str) -> dict[str, int]:
    """user_id -> expires_ts of the room's typers (expired ones included)."""
    rows = (
        await db.prepare("SELECT user_id, expires_ts FROM typing WHERE room_id = ?").bind(room_id).all()
    ).results
    return {r["user_id"]: int(r["expires_ts"]) for r in rows}


async def typing_changed(
    db: D1Database, room_ids: list[str], since: int, upto: int, now_ms: int
) -> dict[str, list[str]]:
    """room_id -> the user IDs typing now, for the rooms whose typers changed in (since, upto]."""
    out: dict[str, list[str]] = {}
    for chunk in _chunks(room_ids):
        marks = ",".join("?" * len(chunk))
        changed = (
            await db.prepare(
                "SELECT room_id FROM typing_rooms WHERE stream_id > ? AND stream_id <= ?"
                " AND room_id IN (" + marks + ")"
            ).bind(since, upto, *chunk).all()
        ).results
        rooms = [r["room_id"] for r in changed]
        for room_id in rooms:
            out[room_id] = []
        if not rooms:
            continue
        rows = (
            await db.prepare(
                "SELECT room_id, user_id FROM typing WHERE expires_ts > ? AND room_id IN ("
                + ",".join("?" * len(rooms)) + ") ORDER BY user_id"
            ).bind(now_ms, *rooms).all()
        ).results
        for r in rows:
            out[r["room_id"]].append(r["user_id"])
    return out


# --- presence ------------------------------------------------------------------------------


async def get_presence(db: D1Database, user_id: str) -> JsonDict | None:
    return await db.prepare(
        "SELECT user_id, state, status_msg, last_active_ts, stream_id FROM presence WHERE user_id = ?"
    ).bind(user_id).first()


def put_presence(
    db: D1Database, user_id: str, state: str, status_msg: str | None, last_active_ts: int
) -> list[PreparedStatement]:
    """Statements setting the user's presence with a new 'presence' position."""
    return [
        advance(db, PRESENCE),
        db.prepare(
            "INSERT INTO presence (user_id, state, status_msg, last_active_ts, stream_id)"
            " VALUES (?, ?, ?, ?, " + POSITION + ") ON CONFLICT (user_id) DO UPDATE SET"
            " state = excluded.state, status_msg = excluded.status_msg,"
            " last_active_ts = excluded.last_active_ts, stream_id = excluded.stream_id"
        ).bind(user_id, state, status_msg, last_active_ts, PRESENCE),
    ]


async def touch_presence(db: D1Database, user_id: str, last_active_ts: int) -> None:
    """Record activity without a new position (others see it on the next real change)."""
    await db.prepare("UPDATE presence SET last_active_ts = ? WHERE user_id = ?").bind(
        last_active_ts, user_id
    ).run()


def presence_content(row: JsonDict, now_ms: int) -> JsonDict:
    """The ``m.presence`` content of a stored row, as of ``now_ms``."""
    ago = max(0, now_ms - int(row["last_active_ts"]))
    content: JsonDict = {
        "presence": row["state"],
        "last_active_ago": ago,
        "currently_active": row["state"] == "online" and ago <= CURRENTLY_ACTIVE_MS,
    }
    if row["status_msg"] is not None:
        content["status_msg"] = row["status_msg"]
    return content


async def presence_changed(
    db: D1Database, user_ids: list[str], since: int, upto: int
) -> list[JsonDict]:
    """Stored presence rows of ``user_ids`` changed in (since, upto]."""
    out: list[JsonDict] = []
    for chunk in _chunks(sorted(user_ids)):
        out += (
            await db.prepare(
                "SELECT user_id, state, status_msg, last_active_ts, stream_id FROM presence"
                " WHERE stream_id > ? AND stream_id <= ? AND user_id IN ("
                + ",".join("?" * len(chunk)) + ") ORDER BY stream_id"
            ).bind(since, upto, *chunk).all()
        ).results
    return out
