"""A user's per-room data follows them into an upgraded room.

Spec: client-server API "Room Upgrades", "Server behaviour" leaves the user side to servers;
this follows Synapse's observable behaviour. When a local user joins a room whose
``m.room.create`` names a ``predecessor`` they are joined to, the server copies what they set
up for the old room onto the new one:

- room tags (the room's ``m.tag`` account data): each old tag is added to the new room's tags
  (a tag of the same name is replaced);
- their push rules for the old room: the ``room`` rule named after it, and every ``override``
  or ``underride`` rule with a ``room_id`` condition whose pattern is the old room ID. The
  copy names the new room in those conditions; its rule ID is the old one with the room ID
  replaced (a rule whose ID does not contain the room ID is named after the new room, as
  Synapse does). A copy replaces a rule of the same ID, else goes on top of its kind; it
  keeps the rule's actions and enabled state;
- ``m.direct``: every list naming the old room also names the new one (the old room stays
  listed).

``rules_for_new_room``, ``merged_tags`` and ``direct_with`` are pure; ``copy_user_state``
reads and writes the account.
"""

from __future__ import annotations

import copy
import json
import sqlite3
from typing import Any, Mapping

from d1 import account_data as account_data_db
from d1 import push_rules as push_rules_db
from d1.state import membership_of
from workers.client.push_rule_defaults import ruleset
from workers.room_access import room_stub

Rows = list[dict[str, Any]]
TAG_TYPE = "m.tag"
DIRECT_TYPE = "m.direct"
PUSH_RULES_TYPE = "m.push_rules"
CONDITION_KINDS = ("override", "underride")


def predecessor_of(create_content: Mapping[str, Any] | None) -> str | None:
    """The room ID in a create event's ``predecessor``, when it names one."""
    predecessor = (create_content or {}).get("predecessor")
    room_id = predecessor.get("room_id") if isinstance(predecessor, dict) else None
    return room_id if isinstance(room_id, str) and room_id.startswith("!") else None


def _names_room(condition: Any, room_id: str) -> bool:
    return isinstance(condition, dict) and condition.get("key") == "room_id" and condition.get("pattern") == room_id


def _conditions(row: Mapping[str, Any]) -> list[Any]:
    definition = row.get("definition")
    conditions = definition.get("conditions") if isinstance(definition, dict) else None
    return conditions if isinstance(conditions, list) else []


def _copied(row: Mapping[str, Any], old_room: str, new_room: str) -> dict[str, Any] | None:
    """The new room's copy of a user rule, or None when the rule is not about the old room."""
    if row["is_default"]:
        return None
    new = copy.deepcopy(dict(row))
    if row["kind"] == "room" and row["rule_id"] == old_room:
        new["rule_id"] = new_room
        return new
    if row["kind"] not in CONDITION_KINDS or not any(_names_room(c, old_room) for c in _conditions(row)):
        return None
    new["rule_id"] = row["rule_id"].replace(old_room, new_room) if old_room in row["rule_id"] else new_room
    new["definition"]["conditions"] = [
        {**c, "pattern": new_room} if _names_room(c, old_room) else c for c in _conditions(new)
    ]
    return new


def rules_for_new_room(rows: Rows, old_room: str, new_room: str) -> Rows | None:
    """The user's stored push rule rows with the old room's rules copied to the new room
    (see the module docstring), or None when there is nothing to copy."""
    copies = [c for c in (_copied(r, old_room, new_room) for r in rows) if c is not None]
    if not copies:
        return None
    out = [dict(r) for r in rows]
    for new in copies:
        same = next(
            (i for i, r in enumerate(out)
             if r["kind"] == new["kind"] and r["rule_id"] == new["rule_id"] and not r["is_default"]),
            None,
        )
        if same is not None:
            new["priority"] = out[same]["priority"]
            out[same] = new
        else:
            own = [r["priority"] for r in out if r["kind"] == new["kind"] and not r["is_default"]]
            new["priority"] = max(own, default=0) + 1
            out.append(new)
    return out


def merged_tags(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The new room's ``m.tag`` content with the old room's tags added, or None when the old
    room has no tags."""
    old_tags = (old or {}).get("tags")
    if not isinstance(old_tags, dict) or not old_tags:
        return None
    content = copy.deepcopy(dict(new or {}))
    tags = content.get("tags") if isinstance(content.get("tags"), dict) else {}
    content["tags"] = {**tags, **copy.deepcopy(old_tags)}
    return content


def direct_with(direct: Mapping[str, Any] | None, old_room: str, new_room: str) -> dict[str, Any] | None:
    """``m.direct`` content where every list naming the old room also names the new one, or
    None when nothing changes."""
    if not isinstance(direct, dict):
        return None
    out = copy.deepcopy(dict(direct))
    changed = False
    for user, rooms in out.items():
        if isinstance(rooms, list) and old_room in rooms and new_room not in rooms:
            out[user] = [*rooms, new_room]
            changed = True
    return out if changed else None


def _read(conn: sqlite3.Connection, user_id: str, room_id: str, type: str) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT content FROM account_data WHERE user_id = ? AND room_id = ? AND type = ?",
        (user_id, room_id, type),
    ).fetchone()
    content = json.loads(row[0]) if row else None
    return content if isinstance(content, dict) else None


async def copy_user_state(env: Any, user_id: str, old_room: str, new_room: str) -> bool:
    """Copy the user's tags, room push rules and ``m.direct`` entries from ``old_room`` to
    ``new_room`` in one transaction (each write takes an account_data stream position).
    Returns whether anything was written (the user's /sync is then woken)."""

    def run(conn: sqlite3.Connection) -> bool:
        writes: list[tuple[str, str, dict[str, Any]]] = []
        tags = merged_tags(_read(conn, user_id, old_room, TAG_TYPE), _read(conn, user_id, new_room, TAG_TYPE))
        if tags is not None:
            writes.append((new_room, TAG_TYPE, tags))
        direct = direct_with(_read(conn, user_id, account_data_db.GLOBAL, DIRECT_TYPE), old_room, new_room)
        if direct is not None:
            writes.append((account_data_db.GLOBAL, DIRECT_TYPE, direct))
        rows = rules_for_new_room(push_rules_db.load_rows_sync(conn, user_id), old_room, new_room)
        if rows is not None:
            push_rules_db.replace_rows_sync(conn, user_id, rows)
            writes.append((account_data_db.GLOBAL, PUSH_RULES_TYPE, {"global": ruleset(user_id, rows)}))
        for room_id, type, content in writes:
            for stmt in account_data_db.put_statements(env.DB, user_id, room_id, type, content):
                conn.execute(stmt.sql, stmt.params)
        return bool(writes)

    changed: bool = await env.DB.run_in_transaction(run)
    if changed:
        env.NOTIFIER.notify([user_id])  # wake the user's waiting /sync
    return changed


async def on_join(env: Any, user_id: str, room_id: str) -> bool:
    """After ``user_id`` joined ``room_id``: when the room replaces one the user is joined
    to, copy their per-room data over (``copy_user_state``). Returns whether anything was
    copied."""
    create = await room_stub(env, room_id).state_event_content("m.room.create", "")
    old_room = predecessor_of(create)
    if old_room is None or old_room == room_id:
        return False
    if await membership_of(env.DB, old_room, user_id) != "join":
        return False
    return await copy_user_state(env, user_id, old_room, room_id)
