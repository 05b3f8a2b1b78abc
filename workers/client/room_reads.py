"""Reading rooms: state, members, history, context, single events, joined rooms.

Spec: client-server API "Getting events for a room" (``/state``, ``/state/{type}/{key}``,
``/members``, ``/joined_members``, ``/event/{eventId}``), "Syncing" / ``/messages``
(pagination), the "Event Context" module (``/context``) and ``GET /joined_rooms``.

Who may read: a joined member reads the current state and the history its visibility allows;
a user who left reads the room as it was when they left; anyone reads a ``world_readable``
room's current state; everyone else gets 403 ``M_FORBIDDEN`` (as Synapse answers, also for
rooms the server does not know, so membership probes learn nothing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from starlette.requests import Request
from starlette.routing import Route

from d1.state import membership_of
from workers.auth import Requester, now_ms, require_user
from workers.client.events_format import JsonDict
from workers.client.history import RoomReader, Row
from workers.client.pagination import paginate
from workers.federation.backfill import backfill_room
from workers.client.visibility import (
    HISTORY_VISIBILITY,
    filter_visible,
    last_join_position,
)
from workers.errors import Codes, MatrixError
from workers.routing import client_routes
from workers.sync.filters import parse_room_event_filter
from workers.sync.tokens import StreamToken, current_token

DEFAULT_PAGE_LIMIT = 10
MAX_PAGE_LIMIT = 1000


@dataclass(frozen=True)
class RoomAccess:
    """Up to where a user may read a room: ``upto`` None means "now" (the user is joined,
    or the room is world-readable); otherwise the stream position of the user's leave."""

    room_id: str
    upto: int | None
    joined: bool


def reader_for(env: Any, requester: Requester) -> RoomReader:
    return RoomReader(
        env.DB, user_id=requester.user_id, device_id=requester.device_id, now_ms=now_ms()
    )


def _room_id(request: Request) -> str:
    room_id = request.path_params["roomId"]
    if not room_id.startswith("!"):
        raise MatrixError(400, Codes.INVALID_PARAM, f"{room_id!r} is not a room ID")
    return room_id


async def room_access(reader: RoomReader, room_id: str) -> RoomAccess:
    """How far ``reader.user_id`` may read ``room_id``, or 403 ``M_FORBIDDEN``."""
    forbidden = MatrixError(
        403, Codes.FORBIDDEN, f"User {reader.user_id} not in room {room_id}, and room previews are disabled"
    )
    if await reader.room_version(room_id) is None:
        raise forbidden
    membership = await membership_of(reader.db, room_id, reader.user_id)
    if membership == "join":
        return RoomAccess(room_id, None, True)
    if membership in ("leave", "ban") and await last_join_position(reader, room_id, reader.user_id):
        event_id = await reader.db.prepare(
            "SELECT event_id FROM current_state WHERE room_id = ? AND type = 'm.room.member'"
            " AND state_key = ?"
        ).bind(room_id, reader.user_id).first("event_id")
        row = await reader.row(event_id) if event_id else None
        if row is not None and not row["outlier"]:
            return RoomAccess(room_id, row["stream_ordering"], False)
    visibility = await reader.content_of(
        (await reader.state_at(room_id, None)).get(HISTORY_VISIBILITY)
    )
    if visibility.get("history_visibility") == "world_readable":
        return RoomAccess(room_id, None, False)
    raise forbidden


async def _state_for(reader: RoomReader, access: RoomAccess) -> Mapping[tuple[str, str], str]:
    return await reader.state_at(access.room_id, access.upto)


def _int_param(request: Request, name: str, default: int, maximum: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise MatrixError(400, Codes.INVALID_PARAM, f"Query parameter {name!r} must be an integer") from None
    if value < 0:
        raise MatrixError(400, Codes.INVALID_PARAM, f"Query parameter {name!r} must not be negative")
    return min(value, maximum)


# --- state ------------------------------------------------------------------------------


async def get_state(request: Request, env: Any) -> list[JsonDict]:
    requester = await require_user(request, env)
    reader = reader_for(env, requester)
    access = await room_access(reader, _room_id(request))
    rows = await reader.state_rows(await _state_for(reader, access))
    return await reader.serialize(rows)  # type: ignore[return-value]


async def get_state_event(request: Request, env: Any) -> JsonDict:
    requester = await require_user(request, env)
    reader = reader_for(env, requester)
    access = await room_access(reader, _room_id(request))
    key = (request.path_params["eventType"], request.path_params.get("stateKey", ""))
    event_id = (await _state_for(reader, access)).get(key)
    row = await reader.row(event_id) if event_id else None
    if row is None:
        raise MatrixError(404, Codes.NOT_FOUND, "Event not found.")
    event = (await reader.serialize([row]))[0]
    if request.query_params.get("format") == "event":
        return event
    return event["content"]


async def get_members(request: Request, env: Any) -> JsonDict:
    requester = await require_user(request, env)
    reader = reader_for(env, requester)
    access = await room_access(reader, _room_id(request))
    position = access.upto
    at = request.query_params.get("at")
    if at:
        at_position = StreamToken.parse(at, param="at").events
        position = at_position if position is None else min(position, at_position)
    state = await reader.state_at(access.room_id, position)
    members = {k: v for k, v in state.items() if k[0] == "m.room.member"}
    rows = await reader.state_rows(members)
    wanted = request.query_params.get("membership")
    unwanted = request.query_params.get("not_membership")

    def keep(row: Row) -> bool:
        membership = row["membership"]
        if wanted and unwanted:
            return membership == wanted or membership != unwanted
        if wanted:
            return membership == wanted
        if unwanted:
            return membership != unwanted
        return True

    return {"chunk": await reader.serialize([r for r in rows if keep(r)])}


async def get_joined_members(request: Request, env: Any) -> JsonDict:
    requester = await require_user(request, env)
    reader = reader_for(env, requester)
    access = await room_access(reader, _room_id(request))
    state = await _state_for(reader, access)
    rows = await reader.state_rows({k: v for k, v in state.items() if k[0] == "m.room.member"})
    joined: dict[str, JsonDict] = {}
    for row in rows:
        if row["membership"] != "join":
            continue
        content = await reader.content_of(row["event_id"])
        # The spec types both fields as strings: one the member has not set is left out.
        member: JsonDict = {}
        for field, key in (("displayname", "display_name"), ("avatar_url", "avatar_url")):
            if isinstance(content.get(field), str):
                member[key] = content[field]
        joined[row["state_key"]] = member
    return {"joined": joined}


async def get_joined_rooms(request: Request, env: Any) -> JsonDict:
    requester = await require_user(request, env)
    rows = (
        await env.DB.prepare(
            "SELECT room_id FROM current_state WHERE type = 'm.room.member' AND state_key = ?"
            " AND membership = 'join' ORDER BY room_id"
        ).bind(requester.user_id).all()
    ).results
    return {"joined_rooms": [r["room_id"] for r in rows]}


# --- history ----------------------------------------------------------------------------


async def lazy_members(
    reader: RoomReader, rows: Sequence[Row], state: Mapping[tuple[str, str], str]
) -> list[JsonDict]:
    """The member events of the senders of ``rows`` (spec: "Lazy-loading room members")."""
    senders = dict.fromkeys(r["sender"] for r in rows)
    wanted = {("m.room.member", s): state[("m.room.member", s)] for s in senders if ("m.room.member", s) in state}
    return await reader.serialize(await reader.state_rows(wanted))


async def get_messages(request: Request, env: Any) -> JsonDict:
    requester = await require_user(request, env)
    reader = reader_for(env, requester)
    access = await room_access(reader, _room_id(request))
    direction = request.query_params.get("dir", "f")
    if direction not in ("b", "f"):
        raise MatrixError(400, Codes.INVALID_PARAM, "dir must be 'b' or 'f'")
    backwards = direction == "b"
    event_filter = parse_room_event_filter(request.query_params.get("filter"))
    limit = _int_param(
        request, "limit", event_filter.timeline_limit(DEFAULT_PAGE_LIMIT), MAX_PAGE_LIMIT
    )

    base = await current_token(env.DB)
    from_param = request.query_params.get("from")
    if from_param:
        from_token = StreamToken.parse(from_param, param="from")
    elif backwards:
        from_token = base
    else:
        # From the room's first event, which is below 0 when history was backfilled.
        first = await reader.timeline_page(access.room_id, descending=False, limit=1)
        from_token = base.with_events(min(0, first[0]["stream_ordering"] - 1) if first else 0)
    to_param = request.query_params.get("to")
    stop = StreamToken.parse(to_param, param="to").events if to_param else None

    start = from_token.events
    if access.upto is not None:
        if backwards:
            start = min(start, access.upto)
        else:
            stop = access.upto if stop is None else min(stop, access.upto)

    rows: list[Row] = []
    end: int | None = None
    if limit > 0 and not event_filter.allows_nothing():
        rows, end = await paginate(
            reader, access.room_id, start=start, stop=stop, backwards=backwards,
            limit=limit, event_filter=event_filter,
        )
        if backwards and end is None and stop is None and await backfill_room(env, access.room_id):
            # Local history ran out in a room joined over federation: older events were
            # fetched from a server in the room (at positions below every local one).
            position = rows[-1]["stream_ordering"] - 1 if rows else start
            more, end = await paginate(
                reader, access.room_id, start=position, stop=None, backwards=True,
                limit=limit - len(rows), event_filter=event_filter,
            ) if len(rows) < limit else ([], position)
            rows += more
    body: JsonDict = {"chunk": await reader.serialize(rows), "start": from_token.encode()}
    if end is not None:
        body["end"] = from_token.with_events(end).encode()
    if event_filter.lazy_load_members and rows:
        body["state"] = await lazy_members(reader, rows, await reader.state_after(rows[0]))
    return body


async def _visible_event(reader: RoomReader, room_id: str, event_id: str) -> Row:
    row = await reader.row(event_id)
    if (
        row is None
        or row["room_id"] != room_id
        or row["rejected_reason"] is not None
        or row["outlier"]
        or row["soft_failed"]
    ):
        raise MatrixError(404, Codes.NOT_FOUND, "Event not found.")
    if not await filter_visible(reader, [row], reader.user_id):
        raise MatrixError(403, Codes.FORBIDDEN, "You don't have permission to access that event.")
    return row


async def get_event(request: Request, env: Any) -> JsonDict:
    requester = await require_user(request, env)
    reader = reader_for(env, requester)
    room_id = _room_id(request)
    row = await _visible_event(reader, room_id, request.path_params["eventId"])
    return (await reader.serialize([row]))[0]


async def get_context(request: Request, env: Any) -> JsonDict:
    requester = await require_user(request, env)
    reader = reader_for(env, requester)
    access = await room_access(reader, _room_id(request))
    try:
        row = await _visible_event(reader, access.room_id, request.path_params["eventId"])
    except MatrixError as exc:
        raise MatrixError(404, Codes.NOT_FOUND, "Event not found.") from exc
    limit = _int_param(request, "limit", DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT)
    event_filter = parse_room_event_filter(request.query_params.get("filter"))
    before_limit = limit // 2
    after_limit = limit - before_limit
    position = row["stream_ordering"]
    before, _ = await paginate(
        reader, access.room_id, start=position - 1, stop=None, backwards=True,
        limit=before_limit, event_filter=event_filter,
    ) if before_limit else ([], None)
    after, _ = await paginate(
        reader, access.room_id, start=position, stop=access.upto, backwards=False,
        limit=after_limit, event_filter=event_filter,
    ) if after_limit else ([], None)
    base = await current_token(env.DB)
    start = (before[-1]["stream_ordering"] if before else position) - 1
    end = after[-1]["stream_ordering"] if after else position
    last = after[-1] if after else row
    state = await reader.state_after(last)
    if event_filter.lazy_load_members:
        state_events = await lazy_members(reader, [*before, row, *after], state)
    else:
        state_events = await reader.serialize(await reader.state_rows(state))
    return {
        "event": (await reader.serialize([row]))[0],
        "events_before": await reader.serialize(before),
        "events_after": await reader.serialize(after),
        "start": base.with_events(start).encode(),
        "end": base.with_events(end).encode(),
        "state": state_events,
    }


routes: list[Route] = [
    *client_routes("/rooms/{roomId}/state", get_state, ["GET"]),
    *client_routes("/rooms/{roomId}/state/{eventType}", get_state_event, ["GET"]),
    *client_routes("/rooms/{roomId}/state/{eventType}/{stateKey:path}", get_state_event, ["GET"]),
    *client_routes("/rooms/{roomId}/members", get_members, ["GET"]),
    *client_routes("/rooms/{roomId}/joined_members", get_joined_members, ["GET"]),
    *client_routes("/rooms/{roomId}/messages", get_messages, ["GET"]),
    *client_routes("/rooms/{roomId}/context/{eventId}", get_context, ["GET"]),
    *client_routes("/rooms/{roomId}/event/{eventId}", get_event, ["GET"]),
    *client_routes("/joined_rooms", get_joined_rooms, ["GET"]),
]
