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


# A group and its ancestors along prev_group, nearest first, in one query (the chain is at
# most MAX_CHAIN long; the depth guard only stops a corrupt, cyclic chain).
_CHAIN_SQL = (
    "WITH RECURSIVE chain(id, prev_group, delta, n) AS ("
    " SELECT id, prev_group, delta, 0 FROM state_groups WHERE id = ?"
    " UNION ALL SELECT g.id, g.prev_group, g.delta, chain.n + 1 FROM state_groups g"
    " JOIN chain ON g.id = chain.prev_group WHERE chain.n < 10000"
    ") SELECT id, prev_group, delta FROM chain ORDER BY n"
)


async def group_chain(db: D1Database, group_id: str) -> list[dict[str, Any]]:
    """Rows ``{id, prev_group, delta}`` of the group and every group its delta builds on,
    nearest first, read in one query. Raises LookupError when a group of the chain is
    missing."""
    rows = (await db.prepare(_CHAIN_SQL).bind(group_id).all()).results
    if not rows:
        raise LookupError(f"unknown state group {group_id}")
    if rows[-1]["prev_group"] is not None:
        raise LookupError(f"unknown state group {rows[-1]['prev_group']}")
    return rows


async def state_for_group(db: D1Database, group_id: str) -> StateMap:
    """The full state of a group: its delta chain, applied from the full snapshot at its root."""
    deltas = [json.loads(row["delta"]) for row in await group_chain(db, group_id)]
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


async def state_before_event(db: D1Database, event_id: str) -> StateMap | None:
    """The room state just before an event (spec: the state "at" an event, as /state_ids
    serves it). A state event records the event it replaced in ``local_unsigned``."""
    row = await db.prepare(
        "SELECT state_group, state_key, type, local_unsigned FROM events WHERE event_id = ?"
    ).bind(event_id).first()
    if row is None or row["state_group"] is None:
        return None
    state = await state_for_group(db, row["state_group"])
    if row["state_key"] is None:
        return state
    key = (row["type"], row["state_key"])
    unsigned = json.loads(row["local_unsigned"]) if row["local_unsigned"] else {}
    replaced = unsigned.get("replaces_state")
    if isinstance(replaced, str):
        state[key] = replaced
    elif state.get(key) == event_id:
        del state[key]
    return state


async def auth_chain_ids(db: D1Database, event_ids: list[str]) -> set[str]:
    """Every event reachable from ``event_ids`` through ``auth_events`` (not including the
    starting events unless they are reached). Handles room v1/v2 ``[id, hashes]`` pairs."""
    if not event_ids:
        return set()
    chain: set[str] = set()
    frontier = list(dict.fromkeys(event_ids))
    while frontier:
        found: set[str] = set()
        for start in range(0, len(frontier), 90):
            part = frontier[start:start + 90]
            marks = ",".join("?" * len(part))
            rows = (
                await db.prepare(
                    "SELECT CASE WHEN j.type = 'array' THEN json_extract(j.value, '$[0]')"
                    " ELSE j.value END AS id FROM events e, json_each(e.json, '$.auth_events') j"
                    f" WHERE e.event_id IN ({marks})"
                ).bind(*part).all()
            ).results
            found.update(r["id"] for r in rows if isinstance(r["id"], str))
        frontier = sorted(found - chain)
        chain |= found
    return chain
