"""Walking a room's timeline for a user: the events they may see that pass a filter.

Used by ``/messages``, ``/context`` and the timelines of ``/sync``. Positions are stream
positions (see ``workers.client.history``); see ``paginate`` for the bounds.
"""

from __future__ import annotations

import json

from workers.client.history import RoomReader, Row
from workers.client.visibility import filter_visible
from workers.sync.filters import EventFilter

# At most this many rows are read per call while skipping events the user may not see;
# past it the page ends early with a continuation position so the client can go on.
MAX_ROWS_SCANNED = 2000
_BATCH = 100


async def paginate(
    reader: RoomReader,
    room_id: str,
    *,
    start: int,
    stop: int | None,
    backwards: bool,
    limit: int,
    event_filter: EventFilter,
) -> tuple[list[Row], int | None]:
    """Visible, filter-passing timeline rows from position ``start`` towards ``stop``.

    Backwards: rows with ``stop < stream_ordering <= start``, newest first. Forwards: rows
    with ``start < stream_ordering <= stop``, oldest first. Returns the rows and the position
    to continue from, or None when the history in that direction is exhausted.
    """
    out: list[Row] = []
    position = start
    scanned = 0
    while len(out) < limit:
        if backwards:
            batch = await reader.timeline_page(room_id, after=stop, upto=position, limit=_BATCH)
        else:
            batch = await reader.timeline_page(
                room_id, after=position, upto=stop, descending=False, limit=_BATCH
            )
        if not batch:
            return out, None
        scanned += len(batch)
        candidates = [r for r in batch if _row_passes(r, event_filter)]
        visible = {r["event_id"] for r in await filter_visible(reader, candidates, reader.user_id)}
        for row in batch:
            position = row["stream_ordering"] - 1 if backwards else row["stream_ordering"]
            if row["event_id"] in visible:
                out.append(row)
                if len(out) == limit:
                    return out, position
        if len(batch) < _BATCH:
            return out, None
        if scanned >= MAX_ROWS_SCANNED:
            return out, position
    return out, position


def _row_passes(row: Row, event_filter: EventFilter) -> bool:
    content = json.loads(row["json"]).get("content") if event_filter.contains_url is not None else None
    return event_filter.allows(
        {"type": row["type"], "sender": row["sender"], "room_id": row["room_id"], "content": content}
    )
