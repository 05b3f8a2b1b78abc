"""``GET /_matrix/client/v1/rooms/{roomId}/threads``.

Spec: client-server API "Threading", "Querying threads in a room": the thread roots of a
room, ordered by their threads' latest events (newest first), each with its bundled
aggregations; ``include=participated`` keeps only threads the user took part in (sent the
root or an event of the thread); ``limit`` must be greater than zero; ``from`` is a
``next_batch`` of this endpoint (anything else 400 ``M_INVALID_PARAM``). A user who may not
read the room gets 403 ``M_FORBIDDEN``; roots the user may not see are left out, and for a
user who left, threads are ordered by what happened before the leave.
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from d1.relations import relation_of
from workers.auth import require_user
from workers.client.events_format import JsonDict
from workers.client.history import RoomReader, Row
from workers.client.query_params import int_param
from workers.client.relations import LIVE_CHILD_SQL
from workers.client.room_reads import _room_id, reader_for, room_access
from workers.client.v1_routes import client_v1_routes
from workers.client.visibility import filter_visible
from workers.errors import invalid_param

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
_BATCH = 100
MAX_THREADS_SCANNED = 2000
_TOKEN = re.compile(r"t(-?\d{1,18})")


async def get_threads(request: Request, env: Any) -> JsonDict:
    requester = await require_user(request, env)
    reader = reader_for(env, requester)
    room_id = _room_id(request)
    include = request.query_params.get("include", "all")
    if include not in ("all", "participated"):
        raise invalid_param("include must be 'all' or 'participated'")
    limit = int_param(request, "limit", DEFAULT_LIMIT, MAX_LIMIT, minimum=1)
    before: int | None = None
    from_param = request.query_params.get("from")
    if from_param:
        match = _TOKEN.fullmatch(from_param)
        if match is None:
            raise invalid_param("Unknown pagination token")
        before = int(match.group(1))
    access = await room_access(reader, room_id)

    roots: list[Row] = []
    scanned = 0
    exhausted = False
    while True:
        threads = await _threads_before(reader, room_id, access.upto, before)
        if not threads:
            exhausted = True
            break
        scanned += len(threads)
        root_rows = await _root_rows(reader, room_id, [t["root"] for t in threads])
        visible = {
            r["event_id"]
            for r in await filter_visible(reader, list(root_rows.values()), reader.user_id)
        }
        for thread in threads:
            before = thread["latest"]
            root = root_rows.get(thread["root"])
            if root is None or root["event_id"] not in visible:
                continue
            if include == "participated" and not (thread["mine"] or root["sender"] == reader.user_id):
                continue
            roots.append(root)
            if len(roots) == limit:
                break
        last_of_all = len(threads) < _BATCH and before == threads[-1]["latest"]
        if len(roots) == limit or last_of_all or scanned >= MAX_THREADS_SCANNED:
            exhausted = last_of_all
            break
    body: JsonDict = {"chunk": await reader.serialize(roots)}
    if not exhausted and before is not None:
        body["next_batch"] = f"t{before}"
    return body


async def _threads_before(
    reader: RoomReader, room_id: str, upto: int | None, before: int | None
) -> list[Row]:
    """A batch of the room's threads whose latest event is before ``before``, newest first:
    ``root``, ``latest`` (stream ordering) and ``mine`` (events of the thread the user sent)."""
    sql = (
        "SELECT r.relates_to AS root, MAX(e.stream_ordering) AS latest,"
        " SUM(r.sender = ?) AS mine"
        " FROM event_relations r JOIN events e ON e.event_id = r.event_id"
        f" WHERE r.room_id = ? AND r.rel_type = 'm.thread' AND {LIVE_CHILD_SQL}"
    )
    params: list[Any] = [reader.user_id, room_id]
    if upto is not None:
        sql += " AND e.stream_ordering <= ?"
        params.append(upto)
    sql += " GROUP BY r.relates_to"
    if before is not None:
        sql += " HAVING latest < ?"
        params.append(before)
    sql += " ORDER BY latest DESC LIMIT ?"
    params.append(_BATCH)
    return (await reader.db.prepare(sql).bind(*params).all()).results


async def _root_rows(reader: RoomReader, room_id: str, event_ids: list[str]) -> dict[str, Row]:
    """The thread roots that are real roots: timeline events of this room that do not
    themselves relate to another event (spec: threads cannot be nested)."""
    rows = await reader.rows(event_ids)
    out: dict[str, Row] = {}
    for event_id, row in rows.items():
        if (
            row["room_id"] != room_id or row["outlier"] or row["soft_failed"]
            or row["rejected_reason"] is not None or row.get("state_key") is not None
        ):
            continue
        if row["redacted_by"] is None:
            content = json.loads(row["json"]).get("content")
            if isinstance(content, dict) and relation_of(content) is not None:
                continue
        out[event_id] = row
    return out

routes: list[Route] = [*client_v1_routes("/rooms/{roomId}/threads", get_threads, ["GET"])]
