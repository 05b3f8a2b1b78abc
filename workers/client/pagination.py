"""Walking a room's timeline for a user: the events they may see that pass a filter.

Used by ``/messages``, ``/context`` and the timelines of ``/sync``. Positions are stream
positions (see ``workers.client.history``); see ``paginate`` for the bounds.
"""

from __future__ import annotations

import json
from typing import Awaitable, Callable

from workers.client.history import RoomReader, Row
from workers.client.visibility import filter_visible
from workers.sync.filters import EventFilter

# At most this many rows are read per call while skipping events the user may not see;
# past it the page ends early with a continuation position so the client can go on.
MAX_ROWS_SCANNED = 2000
PAGE_ROWS = 100


# ``fetch(after, upto, descending)``: up to ``PAGE_ROWS`` rows with after < position <= upto.
FetchPage = Callable[[int | None, int | None, bool], Awaitable[list[Row]]]


async def walk_visible(
    reader: RoomReader,
    fetch: FetchPage,
    *,
    start: int | None,
    stop: int | None,
    backwards: bool,
    limit: int,
    keep: Callable[[Row], bool] | None = None,
) -> tuple[list[Row], int | None]:
    """Up to ``limit`` rows the user may see (and that ``keep`` accepts), read page by page
    from position ``start`` towards ``stop``: backwards newest first, forwards oldest first.
    Returns the rows and the position to continue from, or None when the history in that
    direction is exhausted. At most ``MAX_ROWS_SCANNED`` rows are read per call."""
    out: list[Row] = []
    position = start
    scanned = 0
    while len(out) < limit:
        if backwards:
            batch = await fetch(stop, position, True)
        else:
            batch = await fetch(position, stop, False)
        if not batch:
            return out, None
        scanned += len(batch)
        candidates = batch if keep is None else [r for r in batch if keep(r)]
        visible = {r["event_id"] for r in await filter_visible(reader, candidates, reader.user_id)}
        for row in batch:
            position = row["stream_ordering"] - 1 if backwards else row["stream_ordering"]
            if row["event_id"] in visible:
                out.append(row)
                if len(out) == limit:
                    return out, position
        if len(batch) < PAGE_ROWS:
            return out, None
        if scanned >= MAX_ROWS_SCANNED:
            return out, position
    return out, position


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

    async def fetch(after: int | None, upto: int | None, descending: bool) -> list[Row]:
        if descending:
            return await reader.timeline_page(room_id, after=after, upto=upto, limit=PAGE_ROWS)
        return await reader.timeline_page(room_id, after=after, upto=upto, descending=False, limit=PAGE_ROWS)

    return await walk_visible(
        reader, fetch, start=start, stop=stop, backwards=backwards, limit=limit,
        keep=lambda row: _row_passes(row, event_filter),
    )


def _row_passes(row: Row, event_filter: EventFilter) -> bool:
    content = json.loads(row["json"]).get("content") if event_filter.contains_url is not None else None
    return event_filter.allows(
        {"type": row["type"], "sender": row["sender"], "room_id": row["room_id"], "content": content}
    )
