"""Reading a room's graph over federation: ``/event``, ``/state``, ``/state_ids``,
``/event_auth``, ``/backfill``, ``/get_missing_events`` and ``/timestamp_to_event``.

Spec: server-server API "Retrieving events", "Backfilling and retrieving missing events",
"Room state" and the matching endpoints in data/api/server-server. ``/event``, ``/backfill``
and ``/get_missing_events`` serve each event whole only if the requesting server may see it
under the room's history visibility, else redacted (``workers.federation.visibility``).
``/state``, ``/state_ids``, ``/event_auth``, ``/backfill`` and ``/get_missing_events`` answer
403 ``M_FORBIDDEN`` to a server denied by the room's server ACL (spec: "Server Access
Control Lists (ACLs)", the endpoints it lists).
"""

from __future__ import annotations

import json
import time
from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from d1.events import get_event_rows
from d1.state import auth_chain_ids, state_before_event
from workers.client.query_params import int64_value
from workers.errors import Codes, MatrixError, bad_json, invalid_param, missing_param
from workers.federation.auth import require_server
from workers.federation.room_acl import require_server_allowed
from workers.federation.server.common import FEDERATION_V1, pdus_for, require_server_in_room
from workers.federation.visibility import ServerView
from workers.routing import read_json_object, route

MAX_BACKFILL = 100
MAX_MISSING = 100


def _origin_ts() -> int:
    return int(time.time() * 1000)


async def get_event(request: Request, env: Any) -> dict[str, Any]:
    origin = await require_server(request, env)
    event_id = request.path_params["eventId"]
    rows = await get_event_rows(env.DB, [event_id])
    row = rows.get(event_id)
    if row is None or row["rejected_reason"] is not None:
        raise MatrixError(404, Codes.NOT_FOUND, "Event not found")
    await require_server_in_room(env, row["room_id"], origin)
    pdus = await ServerView(env, origin).pdus([row])
    if not pdus:
        raise MatrixError(404, Codes.NOT_FOUND, "Event not found")
    return {"origin": env.config.server_name, "origin_server_ts": _origin_ts(), "pdus": pdus}


async def _state_at(request: Request, env: Any) -> tuple[str, dict[tuple[str, str], str]]:
    origin = await require_server(request, env)
    room_id = request.path_params["roomId"]
    await require_server_in_room(env, room_id, origin)
    await require_server_allowed(env, room_id, origin)
    event_id = request.query_params.get("event_id")
    if not event_id:
        raise missing_param("event_id is required")
    row = (await get_event_rows(env.DB, [event_id])).get(event_id)
    if row is None or row["room_id"] != room_id:
        raise MatrixError(404, Codes.NOT_FOUND, "Event not found in this room")
    state = await state_before_event(env.DB, event_id)
    if state is None:
        raise MatrixError(404, Codes.NOT_FOUND, "No state is known at this event")
    return room_id, state


async def state_ids(request: Request, env: Any) -> dict[str, Any]:
    _, state = await _state_at(request, env)
    ids = sorted(state.values())
    return {"pdu_ids": ids, "auth_chain_ids": sorted(await auth_chain_ids(env.DB, ids))}


async def state(request: Request, env: Any) -> dict[str, Any]:
    _, state_map = await _state_at(request, env)
    ids = sorted(state_map.values())
    chain = sorted(await auth_chain_ids(env.DB, ids))
    return {"pdus": await pdus_for(env, ids), "auth_chain": await pdus_for(env, chain)}


async def event_auth(request: Request, env: Any) -> dict[str, Any]:
    origin = await require_server(request, env)
    room_id = request.path_params["roomId"]
    await require_server_in_room(env, room_id, origin)
    await require_server_allowed(env, room_id, origin)
    event_id = request.path_params["eventId"]
    row = (await get_event_rows(env.DB, [event_id])).get(event_id)
    if row is None or row["room_id"] != room_id:
        raise MatrixError(404, Codes.NOT_FOUND, "Event not found in this room")
    chain = sorted(await auth_chain_ids(env.DB, [event_id]))
    return {"auth_chain": await pdus_for(env, chain)}


def _limit(value: Any, maximum: int, default: int) -> int:
    if value is None:
        return default
    try:
        limit = int(value)
    except (TypeError, ValueError):
        raise invalid_param("limit must be an integer") from None
    return max(0, min(limit, maximum))


async def _walk_back(env: Any, room_id: str, start: list[str], limit: int, stop: set[str],
                     min_depth: int = 0) -> list[dict[str, Any]]:
    """Rows of the events reached by walking ``prev_events`` back from ``start`` (breadth
    first, the deepest first), at most ``limit``, not passing ``stop`` events, accepted and
    in the room."""
    seen: set[str] = set(stop)
    frontier = [e for e in start if e not in seen]
    out: list[dict[str, Any]] = []
    while frontier and len(out) < limit:
        rows = await get_event_rows(env.DB, frontier)
        next_frontier: list[str] = []
        for row in sorted(rows.values(), key=lambda r: -r["depth"]):
            if row["event_id"] in seen or row["room_id"] != room_id:
                continue
            seen.add(row["event_id"])
            if row["rejected_reason"] is not None or row["depth"] < min_depth:
                continue
            pdu = json.loads(row["json"])
            out.append(row)
            if len(out) >= limit:
                break
            for prev in pdu.get("prev_events", []):
                prev_id = prev[0] if isinstance(prev, list) else prev
                if isinstance(prev_id, str) and prev_id not in seen:
                    next_frontier.append(prev_id)
        frontier = list(dict.fromkeys(next_frontier))
    return out


async def backfill(request: Request, env: Any) -> dict[str, Any]:
    origin = await require_server(request, env)
    room_id = request.path_params["roomId"]
    await require_server_in_room(env, room_id, origin)
    await require_server_allowed(env, room_id, origin)
    start = request.query_params.getlist("v")
    if not start:
        raise missing_param("v (the events to backfill from) is required")
    limit = _limit(request.query_params.get("limit"), MAX_BACKFILL, 10)
    rows = await _walk_back(env, room_id, start, limit, set())
    pdus = await ServerView(env, origin).pdus(rows)
    return {"origin": env.config.server_name, "origin_server_ts": _origin_ts(), "pdus": pdus}


async def get_missing_events(request: Request, env: Any) -> dict[str, Any]:
    origin = await require_server(request, env)
    room_id = request.path_params["roomId"]
    await require_server_in_room(env, room_id, origin)
    await require_server_allowed(env, room_id, origin)
    body = await read_json_object(request)
    earliest = body.get("earliest_events", [])
    latest = body.get("latest_events")
    if not isinstance(latest, list) or not all(isinstance(e, str) for e in latest):
        raise bad_json("latest_events must be a list of event IDs")
    if not isinstance(earliest, list) or not all(isinstance(e, str) for e in earliest):
        raise bad_json("earliest_events must be a list of event IDs")
    limit = _limit(body.get("limit"), MAX_MISSING, 10)
    min_depth = body.get("min_depth", 0)
    if not isinstance(min_depth, int):
        raise bad_json("min_depth must be an integer")
    rows = await get_event_rows(env.DB, latest)
    start: list[str] = []
    for row in rows.values():
        for prev in json.loads(row["json"]).get("prev_events", []):
            start.append(prev[0] if isinstance(prev, list) else prev)
    found = await _walk_back(env, room_id, start, limit, set(earliest) | set(latest), min_depth)
    found.sort(key=lambda r: r["depth"])
    return {"events": await ServerView(env, origin).pdus(found)}


async def timestamp_to_event(request: Request, env: Any) -> dict[str, Any]:
    origin = await require_server(request, env)
    room_id = request.path_params["roomId"]
    await require_server_in_room(env, room_id, origin)
    raw_ts = request.query_params.get("ts")
    if raw_ts is None:
        raise invalid_param("ts must be an integer timestamp")
    ts = int64_value(raw_ts, "ts")
    direction = request.query_params.get("dir", "f")
    if direction not in ("f", "b"):
        raise invalid_param("dir must be 'f' or 'b'")
    op, order = (">=", "ASC") if direction == "f" else ("<=", "DESC")
    row = await env.DB.prepare(
        "SELECT event_id, origin_server_ts FROM events WHERE room_id = ? AND outlier = 0"
        f" AND rejected_reason IS NULL AND soft_failed = 0 AND origin_server_ts {op} ?"
        f" ORDER BY origin_server_ts {order}, stream_ordering {order} LIMIT 1"
    ).bind(room_id, ts).first()
    if row is None:
        raise MatrixError(404, Codes.NOT_FOUND, "No event found in that direction")
    return {"event_id": row["event_id"], "origin_server_ts": row["origin_server_ts"]}


routes: list[Route] = [
    route(FEDERATION_V1 + "/event/{eventId}", get_event, ["GET"]),
    route(FEDERATION_V1 + "/state/{roomId}", state, ["GET"]),
    route(FEDERATION_V1 + "/state_ids/{roomId}", state_ids, ["GET"]),
    route(FEDERATION_V1 + "/event_auth/{roomId}/{eventId}", event_auth, ["GET"]),
    route(FEDERATION_V1 + "/backfill/{roomId}", backfill, ["GET"]),
    route(FEDERATION_V1 + "/get_missing_events/{roomId}", get_missing_events, ["POST"]),
    route(FEDERATION_V1 + "/timestamp_to_event/{roomId}", timestamp_to_event, ["GET"]),
]
