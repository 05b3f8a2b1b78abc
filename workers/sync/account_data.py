"""The account data stream of ``/sync``: global ``account_data`` and each room's
``account_data``.

Spec: client-server API "Client Config" and "Syncing": the response carries the account data
that changed since the ``since`` token (all of it on an initial sync), as ``{type, content}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from d1 import account_data as account_data_db
from d1.database import D1Database
from workers.sync.filters import EventFilter

JsonDict = dict[str, Any]


@dataclass
class AccountDataChanges:
    global_events: list[JsonDict] = field(default_factory=list)
    by_room: dict[str, list[JsonDict]] = field(default_factory=dict)


async def account_data_changes(
    db: D1Database,
    user_id: str,
    since: int,
    upto: int,
    global_filter: EventFilter,
    room_filter: EventFilter,
) -> AccountDataChanges:
    """Account data with ``since < stream_id <= upto``, filtered by type."""
    changes = AccountDataChanges()
    for row in await account_data_db.changed_since(db, user_id, since):
        if row["stream_id"] > upto:
            continue
        event = {"type": row["type"], "content": row["content"]}
        if row["room_id"] == account_data_db.GLOBAL:
            if global_filter.allows({**event, "sender": user_id}):
                changes.global_events.append(event)
        elif room_filter.allows({**event, "sender": user_id, "room_id": row["room_id"]}):
            changes.by_room.setdefault(row["room_id"], []).append(event)
    return changes
