"""``GET /_matrix/client/v1/rooms/{roomId}/timestamp_to_event``.

Spec: client-server API "Room participation", ``GET /timestamp_to_event``: the event closest
to ``ts`` in direction ``dir`` (``f``: the first event at or after ``ts``; ``b``: the last
at or before it), with its ``origin_server_ts``; 404 ``M_NOT_FOUND`` when there is none. Only
this server's copy of the history is searched, and only events the user may see count (a
user who left sees nothing after the leave); a user who may not read the room gets 403
``M_FORBIDDEN``, as for the other history reads. ``ts`` and ``dir`` are required.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from workers.auth import require_user
from workers.client.events_format import JsonDict
from workers.client.history import TIMELINE_SQL
from workers.client.query_params import int64_value
from workers.client.room_reads import _room_id, reader_for, room_access
from workers.client.v1_routes import client_v1_routes
from workers.client.visibility import filter_visible
from workers.errors import Codes, MatrixError, invalid_param, missing_param

_BATCH = 100
MAX_ROWS_SCANNED = 2000


async def timestamp_to_event(request: Request, env: Any) -> JsonDict:
    requester = await require_user(request, env)
    reader = reader_for(env, requester)
    room_id = _room_id(request)
    raw_ts = request.query_params.get("ts")
    direction = request.query_params.get("dir")
    if raw_ts is None:
        raise missing_param("Missing query parameter 'ts'")
    if direction is None:
        raise missing_param("Missing query parameter 'dir'")
    ts = int64_value(raw_ts, "ts")
    if direction not in ("f", "b"):
        raise invalid_param("dir must be 'f' or 'b'")
    access = await room_access(reader, room_id)

    forwards = direction == "f"
    op, order = (">", "ASC") if forwards else ("<", "DESC")
    cursor: tuple[int, int] | None = None
    scanned = 0
    while scanned < MAX_ROWS_SCANNED:
        sql = (
            f"SELECT * FROM events WHERE room_id = ? AND {TIMELINE_SQL}"
            f" AND origin_server_ts {op}= ?"
        )
        params: list[Any] = [room_id, ts]
        if access.upto is not None:
            sql += " AND stream_ordering <= ?"
            params.append(access.upto)
        if cursor is not None:
            sql += f" AND (origin_server_ts, stream_ordering) {op} (?, ?)"
            params.extend(cursor)
        sql += f" ORDER BY origin_server_ts {order}, stream_ordering {order} LIMIT ?"
        params.append(_BATCH)
        rows = (await env.DB.prepare(sql).bind(*params).all()).results
        if not rows:
            break
        reader.remember(rows)
        visible = await filter_visible(reader, rows, requester.user_id)
        if visible:
            return {"event_id": visible[0]["event_id"], "origin_server_ts": visible[0]["origin_server_ts"]}
        scanned += len(rows)
        cursor = (rows[-1]["origin_server_ts"], rows[-1]["stream_ordering"])
        if len(rows) < _BATCH:
            break
    raise MatrixError(
        404, Codes.NOT_FOUND,
        f"Unable to find event from {ts} in {'forward' if forwards else 'backward'} direction",
    )


routes: list[Route] = [
    *client_v1_routes("/rooms/{roomId}/timestamp_to_event", timestamp_to_event, ["GET"])
]
