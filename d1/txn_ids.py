"""Client transaction IDs of sent events (``event_txn_ids``): what makes a retried
``PUT /send/{eventType}/{txnId}`` or ``/redact/.../{txnId}`` answer with the first event.

Spec: client-server API "Transaction identifiers" (scoped to the device, and here to the
room, as the endpoints carry both). The room actor writes the rows with the event's own batch
(durable/room/persist.py ``record_txn``).
"""

from __future__ import annotations

from d1.database import D1Database


async def event_for_txn(db: D1Database, user_id: str, device_id: str, room_id: str, txn_id: str) -> str | None:
    """The event ID an earlier request with this transaction ID created, if any."""
    event_id: str | None = await db.prepare(
        "SELECT event_id FROM event_txn_ids WHERE user_id = ? AND device_id = ?"
        " AND room_id = ? AND txn_id = ?"
    ).bind(user_id, device_id, room_id, txn_id).first("event_id")
    return event_id
