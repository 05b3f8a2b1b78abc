"""State snapshots in D1 (tables ``state_groups`` and ``current_state``).

A state group's state is its ``prev_group``'s state with its ``delta`` applied; a group with
no ``prev_group`` holds the full state. Room actors write groups; anyone may read them.
"""

from __future__ import annotations

import json
from typing import Any

from d1.database import D1Database

StateMap = dict[tuple[str, str], str]

# A delta chain longer than this is cut by writing a full snapshot.
MAX_CHAIN = 50


async def state_for_group(db: D1Database, group_id: str) -> StateMap:
    """The full state of a group, by walking its delta chain."""
    deltas: list[list[list[str]]] = []
    current: str | None = group_id
    while current is not None:
        row = await db.prepare("SELECT prev_group, delta FROM state_groups WHERE id = ?").bind(
            current
        ).first()
        if row is None:
            raise LookupError(f"unknown state group {current}")
        deltas.append(json.loads(row["delta"]))
        current = row["prev_group"]
    state: StateMap = {}
    for delta in reversed(deltas):
        for event_type, state_key, event_id in delta:
            state[(event_type, state_key)] = event_id
    return state


async def state_after_event(db: D1Database, event_id: str) -> StateMap | None:
    """The room state after an event (including it, if it is a state event)."""
    group = await db.prepare("SELECT state_group FROM events WHERE event_id = ?").bind(
        event_id
    ).first("state_group")
    return None if group is None else await state_for_group(db, group)


async def current_state_ids(db: D1Database, room_id: str) -> StateMap:
    rows = (
        await db.prepare(
            "SELECT type, state_key, event_id FROM current_state WHERE room_id = ?"
        ).bind(room_id).all()
    ).results
    return {(r["type"], r["state_key"]): r["event_id"] for r in rows}


async def current_state_event_id(
    db: D1Database, room_id: str, event_type: str, state_key: str
) -> str | None:
    return await db.prepare(
        "SELECT event_id FROM current_state WHERE room_id = ? AND type = ? AND state_key = ?"
    ).bind(room_id, event_type, state_key).first("event_id")


async def membership_of(db: D1Database, room_id: str, user_id: str) -> str | None:
    """The user's current membership in the room (join, invite, leave, ban, knock) or None."""
    return await db.prepare(
        "SELECT membership FROM current_state WHERE room_id = ? AND type = 'm.room.member'"
        " AND state_key = ?"
    ).bind(room_id, user_id).first("membership")


def group_row(
    group_id: str, room_id: str, prev_group: str | None, chain_len: int, delta: list[list[str]]
) -> tuple[Any, ...]:
    """Bind values for inserting a state group (used by the room actor)."""
    return (group_id, room_id, prev_group, chain_len, json.dumps(delta))
