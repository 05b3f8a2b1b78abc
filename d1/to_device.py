"""To-device inboxes (table ``to_device_inbox``) and the transaction IDs of /sendToDevice.

Spec: client-server API "Send-to-Device messaging": messages reach the target device's
next /sync in ``to_device``, in order, and the server keeps each one until the device has
acknowledged it by syncing with a ``since`` token past it, so a lost /sync response loses
nothing. One request takes one 'to_device' position for all its messages (a request sends
at most one message to each device, so a device's messages keep distinct positions).
"""

from __future__ import annotations

import json
from typing import Any, Iterable

from d1.database import D1Database, PreparedStatement
from d1.streams import POSITION, advance

STREAM = "to_device"
# At most this many messages per device in one sync response (the rest follow in the next).
SYNC_LIMIT = 100


async def txn_seen(db: D1Database, user_id: str, device_id: str, txn_id: str) -> bool:
    row = await db.prepare(
        "SELECT 1 AS seen FROM to_device_txns WHERE user_id = ? AND device_id = ? AND txn_id = ?"
    ).bind(user_id, device_id, txn_id).first()
    return row is not None


def send_statements(
    db: D1Database,
    sender: str,
    sender_device: str,
    txn_id: str,
    event_type: str,
    messages: Iterable[tuple[str, str, dict[str, Any]]],
    now_ms: int,
) -> list[PreparedStatement]:
    """One batch: the txn record (its primary key refuses a concurrent duplicate, failing the
    whole batch), a new stream position, and one inbox row per (user, device, content)."""
    statements = [
        db.prepare(
            "INSERT INTO to_device_txns (user_id, device_id, txn_id, created_ts) VALUES (?, ?, ?, ?)"
        ).bind(sender, sender_device, txn_id, now_ms),
        advance(db, STREAM),
    ]
    for user_id, device_id, content in messages:
        statements.append(
            db.prepare(
                "INSERT INTO to_device_inbox (user_id, device_id, stream_id, sender, type, content)"
                " VALUES (?, ?, " + POSITION + ", ?, ?, ?)"
            ).bind(
                user_id, device_id, STREAM, sender, event_type,
                json.dumps(content, ensure_ascii=False, separators=(",", ":")),
            )
        )
    return statements


async def to_device_for_sync(
    db: D1Database,
    user_id: str,
    device_id: str,
    since_pos: int,
    upto_pos: int,
    limit: int = SYNC_LIMIT,
) -> tuple[list[dict[str, Any]], int]:
    """The device's messages in (since_pos, upto_pos], oldest first, and the position the next
    token must carry: ``upto_pos``, or the last message's position when ``limit`` cut the list.

    Messages at or before ``since_pos`` were delivered by an earlier response the device
    has now acknowledged (it synced with that token), so they are deleted first.
    """
    if since_pos > 0:
        await db.prepare(
            "DELETE FROM to_device_inbox WHERE user_id = ? AND device_id = ? AND stream_id <= ?"
        ).bind(user_id, device_id, since_pos).run()
    rows = (
        await db.prepare(
            "SELECT stream_id, sender, type, content FROM to_device_inbox"
            " WHERE user_id = ? AND device_id = ? AND stream_id > ? AND stream_id <= ?"
            " ORDER BY stream_id LIMIT ?"
        ).bind(user_id, device_id, since_pos, upto_pos, limit).all()
    ).results
    events = [
        {"type": r["type"], "sender": r["sender"], "content": json.loads(r["content"])}
        for r in rows
    ]
    new_pos = rows[-1]["stream_id"] if len(rows) >= limit else upto_pos
    return events, int(new_pos)


async def pending_count(db: D1Database, user_id: str, device_id: str) -> int:
    return int(
        await db.prepare(
            "SELECT COUNT(*) AS n FROM to_device_inbox WHERE user_id = ? AND device_id = ?"
        ).bind(user_id, device_id).first("n")
    )


def delete_inbox(db: D1Database, user_id: str, device_id: str) -> list[PreparedStatement]:
    """Statements dropping a deleted device's inbox and its txn records."""
    return [
        db.prepare(f"DELETE FROM {table} WHERE user_id = ? AND device_id = ?").bind(user_id, device_id)
        for table in ("to_device_inbox", "to_device_txns")
    ]
