"""Evaluated push actions (tables ``event_push_actions`` and ``push_evaluated``).

A row in ``event_push_actions`` is an event whose push rules notified the user; the room's
``push_evaluated.evaluated_upto`` says how far the room's timeline has been evaluated for the
user. Rows are inserted with ``INSERT OR IGNORE`` and the mark only moves forward, so two
evaluations racing over the same events (a sync and the user's pusher) agree.

Unread counts are measured from the user's read receipt: the most advanced (by the event's
stream order) ``m.read`` or ``m.read.private`` receipt that is unthreaded or in the row's own
thread (``main`` for the main timeline). Spec: "Receiving notifications", "Marking
notifications as read" (the server partitions the count per thread, the main timeline being
one) and "Threaded read receipts" (a threaded receipt marks only its thread as read; an
unthreaded one marks every event up to it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Sequence

from d1.database import D1Database, PreparedStatement
from d1.events import chunks

JsonDict = dict[str, Any]

# The stream ordering of the user's read receipt covering the row (0 when none): unthreaded
# ('') or of the row's thread; bound by the enclosing query as a.room_id, a.user_id and
# a.thread_id.
_RECEIPT_POSITION = (
    "COALESCE((SELECT MAX(e.stream_ordering) FROM receipts r JOIN events e"
    " ON e.event_id = r.event_id WHERE r.room_id = a.room_id AND r.user_id = a.user_id"
    " AND r.receipt_type IN ('m.read', 'm.read.private') AND r.thread_id IN ('', a.thread_id)), 0)"
)


@dataclass(frozen=True)
class PushActionRow:
    event_id: str
    room_id: str
    stream_ordering: int
    highlight: bool
    actions: list[Any]
    thread_id: str
    ts: int


def insert_action(db: D1Database, user_id: str, row: PushActionRow) -> PreparedStatement:
    return db.prepare(
        "INSERT OR IGNORE INTO event_push_actions (user_id, event_id, room_id, stream_ordering,"
        " highlight, actions, thread_id, ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    ).bind(
        user_id, row.event_id, row.room_id, row.stream_ordering, int(row.highlight),
        json.dumps(row.actions), row.thread_id, row.ts,
    )


def set_evaluated(db: D1Database, user_id: str, room_id: str, upto: int) -> PreparedStatement:
    """Move the room's evaluation mark forward to ``upto`` (never back)."""
    return db.prepare(
        "INSERT INTO push_evaluated (user_id, room_id, evaluated_upto) VALUES (?, ?, ?)"
        " ON CONFLICT (user_id, room_id) DO UPDATE SET"
        " evaluated_upto = MAX(evaluated_upto, excluded.evaluated_upto)"
    ).bind(user_id, room_id, upto)


def forget_before(db: D1Database, user_id: str, room_id: str, position: int) -> PreparedStatement:
    """Drop the user's rows of the room at or before ``position`` (an earlier membership)."""
    return db.prepare(
        "DELETE FROM event_push_actions WHERE user_id = ? AND room_id = ? AND stream_ordering <= ?"
    ).bind(user_id, room_id, position)


async def marks_and_latest(
    db: D1Database, user_id: str, room_ids: Sequence[str], upto: int
) -> tuple[dict[str, int], dict[str, int]]:
    """In one hop: room_id -> evaluation mark (rooms that have one), and room_id -> the
    room's newest stream ordering at or before ``upto`` (rooms with events)."""
    parts = list(chunks(list(room_ids)))
    statements = [
        db.prepare(
            "SELECT room_id, evaluated_upto FROM push_evaluated WHERE user_id = ?"
            f" AND room_id IN ({','.join('?' * len(part))})"
        ).bind(user_id, *part)
        for part in parts
    ] + [
        db.prepare(
            "SELECT room_id, MAX(stream_ordering) AS p FROM events WHERE stream_ordering <= ?"
            f" AND room_id IN ({','.join('?' * len(part))}) GROUP BY room_id"
        ).bind(upto, *part)
        for part in parts
    ]
    results = await db.read_many(statements)
    marks: dict[str, int] = {}
    latest: dict[str, int] = {}
    for result in results[: len(parts)]:
        marks.update({r["room_id"]: int(r["evaluated_upto"]) for r in result.results})
    for result in results[len(parts):]:
        latest.update({r["room_id"]: int(r["p"]) for r in result.results})
    return marks, latest


async def unread_counts(
    db: D1Database, user_id: str, room_ids: Sequence[str], upto: int
) -> dict[str, dict[str, tuple[int, int]]]:
    """room_id -> thread ID (``main`` or a thread root) -> (notification_count,
    highlight_count): the user's notifying events after the receipt covering them and at or
    before ``upto``. Rooms and threads without any are absent."""
    out: dict[str, dict[str, tuple[int, int]]] = {}
    for part in chunks(list(room_ids)):
        rows = (
            await db.prepare(
                "SELECT a.room_id, a.thread_id, COUNT(*) AS n, SUM(a.highlight) AS h"
                " FROM event_push_actions a"
                f" WHERE a.user_id = ? AND a.room_id IN ({','.join('?' * len(part))})"
                " AND a.stream_ordering <= ? AND a.stream_ordering > " + _RECEIPT_POSITION
                + " GROUP BY a.room_id, a.thread_id"
            ).bind(user_id, *part, upto).all()
        ).results
        for r in rows:
            out.setdefault(r["room_id"], {})[r["thread_id"]] = (int(r["n"]), int(r["h"] or 0))
    return out


async def total_unread(db: D1Database, user_id: str) -> int:
    """Unread notifications over every room the user is joined to (for push ``counts``)."""
    value = await db.prepare(
        "SELECT COUNT(*) AS n FROM event_push_actions a WHERE a.user_id = ? AND a.room_id IN"
        " (SELECT room_id FROM current_state WHERE type = 'm.room.member' AND state_key = ?"
        " AND membership = 'join') AND a.stream_ordering > " + _RECEIPT_POSITION
    ).bind(user_id, user_id).first("n")
    return int(value or 0)


async def notifications_page(
    db: D1Database, user_id: str, before: int | None, limit: int, only_highlight: bool
) -> list[JsonDict]:
    """The user's notifications, newest first, with stream ordering < ``before`` (None: all),
    each with ``read`` (at or before the read receipt of its room)."""
    sql = (
        "SELECT a.event_id, a.room_id, a.stream_ordering, a.highlight, a.actions, a.ts,"
        " a.stream_ordering <= " + _RECEIPT_POSITION + " AS read"
        " FROM event_push_actions a WHERE a.user_id = ?"
    )
    params: list[Any] = [user_id]
    if before is not None:
        sql += " AND a.stream_ordering < ?"
        params.append(before)
    if only_highlight:
        sql += " AND a.highlight = 1"
    sql += " ORDER BY a.stream_ordering DESC LIMIT ?"
    params.append(limit)
    rows = (await db.prepare(sql).bind(*params).all()).results
    for row in rows:
        row["actions"] = json.loads(row["actions"])
        row["read"] = bool(row["read"])
        row["highlight"] = bool(row["highlight"])
    return rows


async def actions_between(
    db: D1Database, user_id: str, after: int, upto: int
) -> list[JsonDict]:
    """The user's notifications with ``after < stream_ordering <= upto``, oldest first."""
    rows = (
        await db.prepare(
            "SELECT event_id, room_id, stream_ordering, highlight, actions FROM event_push_actions"
            " WHERE user_id = ? AND stream_ordering > ? AND stream_ordering <= ?"
            " ORDER BY stream_ordering"
        ).bind(user_id, after, upto).all()
    ).results
    for row in rows:
        row["actions"] = json.loads(row["actions"])
        row["highlight"] = bool(row["highlight"])
    return rows
