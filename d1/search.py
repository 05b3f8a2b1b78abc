"""The full-text search index (FTS5 table ``event_search``, rowid = stream ordering).

Spec: client-server API "Server Side Search", ``room_events``: the searchable keys are
``content.body`` of ``m.room.message``, ``content.name`` of ``m.room.name`` and, of
``m.room.topic``, ``content.topic`` as well as the ``text/plain`` body in ``content["m.topic"]``.
Only the room actor writes this table, in the batch that persists the event.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from d1.database import D1Database, PreparedStatement
from durable.events.event import Event

# Request key -> FTS5 column.
SEARCH_KEYS = {"content.body": "body", "content.name": "name", "content.topic": "topic"}


def _topic_text(content: Mapping[str, Any]) -> str | None:
    parts: list[str] = []
    if isinstance(content.get("topic"), str):
        parts.append(content["topic"])
    blocks = content.get("m.topic")
    if isinstance(blocks, Mapping):
        blocks = blocks.get("m.text")
    if isinstance(blocks, list):
        for block in blocks:
            if (
                isinstance(block, Mapping)
                and block.get("mimetype", "text/plain") == "text/plain"
                and isinstance(block.get("body"), str)
                and block["body"] not in parts
            ):
                parts.append(block["body"])
    return "\n".join(parts) if parts else None


def searchable_text(event_type: str, content: Mapping[str, Any]) -> tuple[str | None, str | None, str | None] | None:
    """``(body, name, topic)`` to index for an event, or None when it has nothing searchable."""
    body = name = topic = None
    if event_type == "m.room.message" and isinstance(content.get("body"), str):
        body = content["body"]
    elif event_type == "m.room.name" and isinstance(content.get("name"), str):
        name = content["name"]
    elif event_type == "m.room.topic":
        topic = _topic_text(content)
    if not (body or name or topic):
        return None
    return body, name, topic


def insert_search_row(db: D1Database, event: Event) -> PreparedStatement | None:
    """The index row for ``event`` (None when it has nothing searchable). It must come right
    after the event's own INSERT in the same batch: its rowid is that row's stream ordering
    (``last_insert_rowid()``, the events table's integer primary key)."""
    text = searchable_text(event.type, event.content)
    if text is None:
        return None
    return db.prepare(
        "INSERT INTO event_search (rowid, body, name, topic) VALUES (last_insert_rowid(), ?, ?, ?)"
    ).bind(*text)
