"""The relations index (table ``event_relations``): which event points at which.

Spec: client-server API "Forming relationships between events": a child event names its
parent in ``content["m.relates_to"]`` with a ``rel_type`` and an ``event_id``; relations that
do not match that shape are ignored. Only the room actor writes this table, in the batch that
persists the child event.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from d1.database import D1Database, PreparedStatement
from durable.events.event import Event


def relation_of(content: Mapping[str, Any]) -> tuple[str, str] | None:
    """``(rel_type, parent event ID)`` of an event's content, or None when it has no
    well-formed relation (replies, which carry no ``rel_type``, have none)."""
    relates_to = content.get("m.relates_to")
    if not isinstance(relates_to, Mapping):
        return None
    rel_type = relates_to.get("rel_type")
    parent = relates_to.get("event_id")
    if not isinstance(rel_type, str) or not rel_type or not isinstance(parent, str) or not parent:
        return None
    return rel_type, parent


def insert_relation(db: D1Database, event: Event) -> PreparedStatement | None:
    """The row for ``event`` if it relates to another event (None otherwise)."""
    relation = relation_of(event.content)
    if relation is None:
        return None
    rel_type, parent = relation
    return db.prepare(
        "INSERT OR IGNORE INTO event_relations (event_id, relates_to, rel_type, room_id, sender, type)"
        " VALUES (?,?,?,?,?,?)"
    ).bind(event.event_id, parent, rel_type, event.room_id, event.sender, event.type)
