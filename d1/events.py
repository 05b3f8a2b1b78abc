"""Reading events from D1 (table ``events``). Only room actors write these rows."""

from __future__ import annotations

import json
from typing import Any, Iterable, Sequence

from d1.database import D1Database
from durable.events.event import Event
from durable.room_versions import RoomVersion, get_room_version

# How many IDs go into one `IN (...)`: D1 allows 100 bound parameters per statement.
_CHUNK = 90


def chunks(items: Sequence[str], size: int = _CHUNK) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


async def room_version_of(db: D1Database, room_id: str) -> RoomVersion | None:
    version = await db.prepare("SELECT room_version FROM rooms WHERE room_id = ?").bind(room_id).first(
        "room_version"
    )
    return None if version is None else get_room_version(version)


def row_to_event(row: dict[str, Any], room_version: RoomVersion) -> Event:
    return Event(json.loads(row["json"]), room_version, row["event_id"], row["rejected_reason"])


async def get_event_rows(db: D1Database, event_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Rows of ``events`` by event ID (missing IDs are absent from the result)."""
    out: dict[str, dict[str, Any]] = {}
    unique = list(dict.fromkeys(event_ids))
    for part in chunks(unique):
        marks = ",".join("?" * len(part))
        rows = (
            await db.prepare(f"SELECT * FROM events WHERE event_id IN ({marks})").bind(*part).all()
        ).results
        for row in rows:
            out[row["event_id"]] = row
    return out


async def get_events(
    db: D1Database, event_ids: Sequence[str], room_version: RoomVersion
) -> dict[str, Event]:
    rows = await get_event_rows(db, event_ids)
    return {event_id: row_to_event(row, room_version) for event_id, row in rows.items()}
