"""``GET /_matrix/client/v1/rooms/{roomId}/relations/{eventId}[/{relType}[/{eventType}]]``.

Spec: client-server API "Relationships API": the child events of a parent (those whose
``m.relates_to`` names it), optionally only those with a ``rel_type`` and an event type,
paginated from ``from`` towards ``to`` (``dir`` ``b``, the default: newest first; ``f``:
oldest first), ``limit`` per page, ``next_batch`` while more remain and ``prev_batch`` when
the page did not start at the beginning. With ``recurse``, events relating to the parent
through a chain of relations are included too, to a depth of 3 (the spec asks for at least
3), with the filters applied at every level; ``recursion_depth`` answers whenever ``recurse``
was given. A parent that is unknown or that the user may not see is 404 ``M_NOT_FOUND``;
children the user may not see are left out. Served events carry their bundled aggregations.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from workers.auth import require_user
from workers.client.events_format import JsonDict
from workers.client.history import RoomReader, Row
from workers.client.pagination import PAGE_ROWS, walk_visible
from workers.client.query_params import bool_param, direction_param, int_param
from workers.client.room_reads import _room_id, _visible_event, reader_for
from workers.client.v1_routes import client_v1_routes
from workers.errors import Codes, MatrixError
from workers.sync.tokens import StreamToken

DEFAULT_LIMIT = 5
MAX_LIMIT = 100
RECURSION_DEPTH = 3

LIVE_CHILD_SQL = (
    "e.outlier = 0 AND e.soft_failed = 0 AND e.rejected_reason IS NULL AND e.redacted_by IS NULL"
)


async def children_page(
    reader: RoomReader, room_id: str, parent_id: str, *, rel_type: str | None,
    event_type: str | None, recurse: bool, after: int | None, upto: int | None,
    descending: bool, limit: int,
) -> list[Row]:
    """Child rows of ``parent_id`` with ``after < stream_ordering <= upto``, newest first
    when ``descending``. A redacted child relates to nothing (spec: "Aggregations of child
    events"), so it neither appears nor links deeper children."""
    filters = ""
    filter_params: list[Any] = []
    if rel_type is not None:
        filters += " AND r.rel_type = ?"
        filter_params.append(rel_type)
    if event_type is not None:
        filters += " AND r.type = ?"
        filter_params.append(event_type)
    bounds = ""
    bound_params: list[Any] = []
    if after is not None:
        bounds += " AND e.stream_ordering > ?"
        bound_params.append(after)
    if upto is not None:
        bounds += " AND e.stream_ordering <= ?"
        bound_params.append(upto)
    order = f" ORDER BY e.stream_ordering {'DESC' if descending else 'ASC'} LIMIT ?"
    if not recurse:
        sql = (
            "SELECT e.* FROM event_relations r JOIN events e ON e.event_id = r.event_id"
            f" WHERE r.relates_to = ? AND r.room_id = ?{filters} AND {LIVE_CHILD_SQL}{bounds}{order}"
        )
        params = [parent_id, room_id, *filter_params, *bound_params, limit]
    else:
        sql = (
            "WITH RECURSIVE tree(event_id, depth) AS ("
            " SELECT r.event_id, 1 FROM event_relations r JOIN events e ON e.event_id = r.event_id"
            f" WHERE r.relates_to = ? AND r.room_id = ?{filters} AND {LIVE_CHILD_SQL}"
            " UNION"
            " SELECT r.event_id, tree.depth + 1 FROM tree"
            " JOIN event_relations r ON r.relates_to = tree.event_id"
            " JOIN events e ON e.event_id = r.event_id"
            f" WHERE tree.depth < ? AND r.room_id = ?{filters} AND {LIVE_CHILD_SQL})"
            " SELECT DISTINCT e.* FROM tree JOIN events e ON e.event_id = tree.event_id"
            f" WHERE 1 = 1{bounds}{order}"
        )
        params = [
            parent_id, room_id, *filter_params, RECURSION_DEPTH, room_id, *filter_params,
            *bound_params, limit,
        ]
    rows = (await reader.db.prepare(sql).bind(*params).all()).results
    reader.remember(rows)
    return rows


async def visible_children(
    reader: RoomReader, room_id: str, parent_id: str, *, rel_type: str | None,
    event_type: str | None, recurse: bool, start: int | None, stop: int | None,
    backwards: bool, limit: int,
) -> tuple[list[Row], int | None]:
    """Up to ``limit`` children the user may see, from position ``start`` towards ``stop``
    (as ``workers.client.pagination.paginate``), and the position to continue from (None
    when there are no more)."""
    async def fetch(after: int | None, upto: int | None, descending: bool) -> list[Row]:
        return await children_page(
            reader, room_id, parent_id, rel_type=rel_type, event_type=event_type,
            recurse=recurse, after=after, upto=upto, descending=descending, limit=PAGE_ROWS,
        )

    return await walk_visible(reader, fetch, start=start, stop=stop, backwards=backwards, limit=limit)


async def get_relations(request: Request, env: Any) -> JsonDict:
    requester = await require_user(request, env)
    reader = reader_for(env, requester)
    room_id = _room_id(request)
    parent_id = request.path_params["eventId"]
    backwards = direction_param(request, "b")
    limit = int_param(request, "limit", DEFAULT_LIMIT, MAX_LIMIT)
    recurse_param = bool_param(request, "recurse")
    from_param = request.query_params.get("from")
    to_param = request.query_params.get("to")
    start = StreamToken.parse(from_param, param="from").events if from_param else None
    stop = StreamToken.parse(to_param, param="to").events if to_param else None
    try:
        await _visible_event(reader, room_id, parent_id)
    except MatrixError as exc:
        raise MatrixError(404, Codes.NOT_FOUND, "Event not found.") from exc

    rows: list[Row] = []
    end: int | None = None
    if limit > 0:
        rows, end = await visible_children(
            reader, room_id, parent_id,
            rel_type=request.path_params.get("relType"),
            event_type=request.path_params.get("eventType"),
            recurse=bool(recurse_param), start=start, stop=stop, backwards=backwards, limit=limit,
        )
    body: JsonDict = {"chunk": await reader.serialize(rows)}
    if end is not None:
        body["next_batch"] = StreamToken().with_events(end).encode()
    if from_param:
        body["prev_batch"] = from_param
    if recurse_param is not None:
        body["recursion_depth"] = RECURSION_DEPTH if recurse_param else 1
    return body


routes: list[Route] = [
    *client_v1_routes("/rooms/{roomId}/relations/{eventId}", get_relations, ["GET"]),
    *client_v1_routes("/rooms/{roomId}/relations/{eventId}/{relType}", get_relations, ["GET"]),
    *client_v1_routes(
        "/rooms/{roomId}/relations/{eventId}/{relType}/{eventType}", get_relations, ["GET"]
    ),
]
