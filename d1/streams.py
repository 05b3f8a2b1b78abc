"""Allocating positions of the streams sync reads (table ``stream_positions``).

A writer puts ``advance(db, stream)`` first in its batch and binds ``POSITION`` (with the
stream name) wherever a row takes the new position, so the allocation and the rows it
stamps commit together or not at all, and positions only grow.
"""

from __future__ import annotations

from d1.database import D1Database, PreparedStatement

# SQL for "the stream's current position"; bind the stream name where it is used.
POSITION = "(SELECT position FROM stream_positions WHERE stream = ?)"


def advance(db: D1Database, stream: str) -> PreparedStatement:
    """The statement taking the stream's next position."""
    return db.prepare("UPDATE stream_positions SET position = position + 1 WHERE stream = ?").bind(
        stream
    )


async def position(db: D1Database, stream: str) -> int:
    value = await db.prepare("SELECT position FROM stream_positions WHERE stream = ?").bind(
        stream
    ).first("position")
    return int(value or 0)
