"""Backfill progress per room (table ``backfill_progress``): whether the start of the room
was reached, and the back-off after attempts that stored nothing.

Spec: server-server API "Backfilling and retrieving missing events" leaves when to ask to the
server; like Synapse, we stop asking once the room's create event is held, and back off
(doubling) while other servers have nothing more for the same backward extremities.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

from d1.database import D1Database, PreparedStatement

FIRST_BACKOFF_MS = 60_000
MAX_BACKOFF_MS = 3_600_000


def backoff_ms(empty_attempts: int) -> int:
    """How long to wait after ``empty_attempts`` (>= 1) attempts in a row stored nothing:
    ``FIRST_BACKOFF_MS`` doubling each time, at most ``MAX_BACKOFF_MS``."""
    return min(FIRST_BACKOFF_MS * 2 ** min(max(empty_attempts, 1) - 1, 30), MAX_BACKOFF_MS)


def extremities_key(extremities: Sequence[str]) -> str:
    return json.dumps(sorted(extremities))


async def get_progress(db: D1Database, room_id: str) -> dict[str, Any] | None:
    row: dict[str, Any] | None = await db.prepare(
        "SELECT reached_start, extremities, empty_attempts, retry_after_ms FROM backfill_progress"
        " WHERE room_id = ?"
    ).bind(room_id).first()
    return row


async def create_event_in_timeline(db: D1Database, room_id: str) -> bool:
    """Whether the room's create event is in the timeline (not just an outlier)."""
    row = await db.prepare(
        "SELECT 1 FROM events WHERE room_id = ? AND type = 'm.room.create' AND state_key = ''"
        " AND outlier = 0 AND rejected_reason IS NULL LIMIT 1"
    ).bind(room_id).first()
    return row is not None


def record_stored(db: D1Database, room_id: str, reached_start: bool) -> PreparedStatement:
    """History was stored: no back-off; ``reached_start`` once the create event is held."""
    return db.prepare(
        "INSERT INTO backfill_progress (room_id, reached_start) VALUES (?, ?)"
        " ON CONFLICT (room_id) DO UPDATE SET reached_start = MAX(reached_start, excluded.reached_start),"
        " extremities = NULL, empty_attempts = 0, retry_after_ms = 0"
    ).bind(room_id, int(reached_start))


def record_empty(
    db: D1Database, room_id: str, extremities: Sequence[str], empty_attempts: int, now_ms: int
) -> PreparedStatement:
    """An attempt from ``extremities`` stored nothing (the ``empty_attempts``-th in a row)."""
    return db.prepare(
        "INSERT INTO backfill_progress (room_id, extremities, empty_attempts, retry_after_ms)"
        " VALUES (?, ?, ?, ?) ON CONFLICT (room_id) DO UPDATE SET extremities = excluded.extremities,"
        " empty_attempts = excluded.empty_attempts, retry_after_ms = excluded.retry_after_ms"
    ).bind(room_id, extremities_key(extremities), empty_attempts, now_ms + backoff_ms(empty_attempts))
