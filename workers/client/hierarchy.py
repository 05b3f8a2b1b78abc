"""``GET /_matrix/client/v1/rooms/{roomId}/hierarchy`` over this server's rooms.

Spec: client-server API "Spaces" and ``GET /hierarchy``: a depth-first walk of the space tree
from ``roomId`` through the ``m.space.child`` state events (a child counts while its
``content.via`` is a non-empty list), each room as a summary (the published room fields plus
``room_type``, ``allowed_room_ids``, ``encryption``, ``room_version``) with its
``children_state`` (the child events in stripped form with ``origin_server_ts``; empty for a
room that is not a space). Children are visited in the spec's order ("Ordering of children
within a space": a valid ``order`` first, by code points; then ``origin_server_ts``; then room
ID). ``suggested_only`` keeps children marked ``suggested``; ``max_depth`` stops the walk
below that depth (the root is depth 0); ``limit`` (greater than zero) rooms per page;
``from`` is a ``next_batch`` of a request with the same ``max_depth`` and ``suggested_only``
(400 ``M_INVALID_PARAM`` otherwise).

A room is returned when the user may see it: joined or invited, ``world_readable``, a
``public`` join rule, ``knock``/``knock_restricted`` where the room version has them, or
``restricted`` with the user joined to one of the allowed rooms. A banned user sees only a
world-readable room. A root the user may not see, or does not exist here, is 403
``M_FORBIDDEN``. Rooms this server does not know are skipped (no federation lookup).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Mapping

from starlette.requests import Request
from starlette.routing import Route

from d1.events import room_version_of
from durable.room_versions import RoomVersion
from workers.auth import require_user
from workers.client.directory import public_room_entry
from workers.client.events_format import JsonDict
from workers.client.query_params import bool_param, int_param
from workers.client.v1_routes import client_v1_routes
from workers.errors import Codes, MatrixError, invalid_param

DEFAULT_LIMIT = 50
MAX_LIMIT = 100
DEFAULT_MAX_DEPTH = 50
MAX_ORDER_LENGTH = 50
_TOKEN = re.compile(r"(\d{1,9})_(\d{1,9})_([01])")
_SUMMARY_TYPES = ("m.room.create", "m.room.join_rules", "m.room.history_visibility", "m.room.encryption")


@dataclass
class SpaceRoom:
    """What the walk needs of one local room, from its current state."""

    room_id: str
    version: RoomVersion
    room_type: str | None
    join_rule: str
    history_visibility: str | None
    allowed_room_ids: list[str]
    encryption: str | None
    children: list[JsonDict] = field(default_factory=list)  # ordered m.space.child events

    @property
    def is_space(self) -> bool:
        return self.room_type == "m.space"

    def children_for(self, suggested_only: bool) -> list[JsonDict]:
        if not self.is_space:
            return []
        return [c for c in self.children if not suggested_only or c["content"].get("suggested") is True]


def valid_order(value: Any) -> bool:
    """A child's ``order``: a string of at most 50 printable ASCII characters (0x20-0x7E)."""
    return (
        isinstance(value, str)
        and len(value) <= MAX_ORDER_LENGTH
        and all(0x20 <= ord(char) <= 0x7E for char in value)
    )


def child_sort_key(child: Mapping[str, Any]) -> tuple[int, str, int, str]:
    """Spec "Ordering of children within a space"."""
    order = child["content"].get("order")
    if valid_order(order):
        return (0, order, child["origin_server_ts"], child["state_key"])
    return (1, "", child["origin_server_ts"], child["state_key"])


async def load_space_room(env: Any, room_id: str) -> SpaceRoom | None:
    """The room's summary state and ordered children, or None for a room not hosted here."""
    version = await room_version_of(env.DB, room_id)
    if version is None:
        return None
    rows = (
        await env.DB.prepare(
            "SELECT c.type, c.state_key, e.json FROM current_state c"
            " JOIN events e ON e.event_id = c.event_id WHERE c.room_id = ?"
            " AND (c.type IN (?,?,?,?) AND c.state_key = '' OR c.type = 'm.space.child')"
        ).bind(room_id, *_SUMMARY_TYPES).all()
    ).results
    content: dict[str, Mapping[str, Any]] = {}
    children: list[JsonDict] = []
    for row in rows:
        pdu = json.loads(row["json"])
        body = pdu.get("content") if isinstance(pdu.get("content"), dict) else {}
        if row["type"] == "m.space.child":
            via = body.get("via")
            if row["state_key"].startswith("!") and isinstance(via, list) and via and all(
                isinstance(v, str) for v in via
            ):
                children.append({
                    "type": "m.space.child", "state_key": row["state_key"], "content": body,
                    "sender": pdu.get("sender"), "origin_server_ts": pdu.get("origin_server_ts", 0),
                })
        else:
            content[row["type"]] = body
    children.sort(key=child_sort_key)
    join_rule = content.get("m.room.join_rules", {}).get("join_rule")
    allow = content.get("m.room.join_rules", {}).get("allow")
    allowed = [
        entry["room_id"] for entry in (allow if isinstance(allow, list) else [])
        if isinstance(entry, dict) and entry.get("type") == "m.room_membership"
        and isinstance(entry.get("room_id"), str)
    ] if join_rule in ("restricted", "knock_restricted") else []
    room_type = content.get("m.room.create", {}).get("type")
    encryption = content.get("m.room.encryption", {}).get("algorithm")
    history = content.get("m.room.history_visibility", {}).get("history_visibility")
    return SpaceRoom(
        room_id=room_id,
        version=version,
        room_type=room_type if isinstance(room_type, str) else None,
        join_rule=join_rule if isinstance(join_rule, str) else "invite",
        history_visibility=history if isinstance(history, str) else None,
        allowed_room_ids=allowed,
        encryption=encryption if isinstance(encryption, str) else None,
        children=children,
    )


async def may_preview(room: SpaceRoom, is_member: Callable[[str], Awaitable[bool]]) -> bool:
    """Whether a joiner may see the room without being in it: world-readable history, a
    public join rule, a knockable room (where the room version has knocking), or a
    restricted room whose conditions ``is_member(allowed_room_id)`` meets."""
    if room.history_visibility == "world_readable" or room.join_rule == "public":
        return True
    if room.join_rule == "knock" and room.version.knock_join_rule:
        return True
    if room.join_rule == "knock_restricted" and room.version.knock_restricted_join_rule:
        return True
    if room.join_rule == "restricted" and room.version.restricted_join_rule:
        for allowed in room.allowed_room_ids:
            if await is_member(allowed):
                return True
    return False


async def user_may_see(env: Any, room: SpaceRoom, user_id: str) -> bool:
    membership = await env.DB.prepare(
        "SELECT membership FROM current_state WHERE room_id = ? AND type = 'm.room.member'"
        " AND state_key = ?"
    ).bind(room.room_id, user_id).first("membership")
    if membership in ("join", "invite"):
        return True
    if membership == "ban":
        return room.history_visibility == "world_readable"

    async def joined(other_room: str) -> bool:
        return await env.DB.prepare(
            "SELECT 1 FROM current_state WHERE room_id = ? AND type = 'm.room.member'"
            " AND state_key = ? AND membership = 'join'"
        ).bind(other_room, user_id).first() is not None

    return await may_preview(room, joined)


async def room_summary(env: Any, room: SpaceRoom, suggested_only: bool) -> JsonDict:
    """The hierarchy entry of a room: the published-room fields and the summary extras."""
    entry = await public_room_entry(env, room.room_id)
    entry["room_version"] = room.version.identifier
    if room.allowed_room_ids:
        entry["allowed_room_ids"] = list(room.allowed_room_ids)
    if room.encryption is not None:
        entry["encryption"] = room.encryption
    entry["children_state"] = [dict(c) for c in room.children_for(suggested_only)]
    return entry


def _parse_token(token: str, max_depth: int, suggested_only: bool) -> int:
    match = _TOKEN.fullmatch(token)
    if match is None:
        raise invalid_param("Unknown pagination token")
    if int(match.group(2)) != max_depth or match.group(3) != str(int(suggested_only)):
        raise invalid_param("suggested_only and max_depth cannot change on paginated requests")
    return int(match.group(1))


async def get_hierarchy(request: Request, env: Any) -> JsonDict:
    requester = await require_user(request, env)
    root_id = request.path_params["roomId"]
    suggested_only = bool(bool_param(request, "suggested_only"))
    limit = int_param(request, "limit", DEFAULT_LIMIT, MAX_LIMIT, minimum=1)
    max_depth = int_param(request, "max_depth", DEFAULT_MAX_DEPTH, DEFAULT_MAX_DEPTH)
    from_param = request.query_params.get("from")
    offset = _parse_token(from_param, max_depth, suggested_only) if from_param else 0

    root = await load_space_room(env, root_id)
    if root is None or not await user_may_see(env, root, requester.user_id):
        raise MatrixError(
            403, Codes.FORBIDDEN, f"User {requester.user_id} may not view room {root_id}"
        )
    # Depth-first, children in spec order; the walk is deterministic, so a page is an offset.
    wanted = offset + limit + 1
    found: list[SpaceRoom] = []
    stack: list[tuple[str, int]] = [(root_id, 0)]
    seen: set[str] = set()
    while stack and len(found) < wanted:
        room_id, depth = stack.pop()
        if room_id in seen:
            continue
        seen.add(room_id)
        room = root if room_id == root_id else await load_space_room(env, room_id)
        if room is None or (room is not root and not await user_may_see(env, room, requester.user_id)):
            continue
        found.append(room)
        if depth < max_depth:
            for child in reversed(room.children_for(suggested_only)):
                if child["state_key"] not in seen:
                    stack.append((child["state_key"], depth + 1))
    page = found[offset:offset + limit]
    body: JsonDict = {"rooms": [await room_summary(env, r, suggested_only) for r in page]}
    if len(found) > offset + limit:
        body["next_batch"] = f"{offset + limit}_{max_depth}_{int(suggested_only)}"
    return body


routes: list[Route] = [*client_v1_routes("/rooms/{roomId}/hierarchy", get_hierarchy, ["GET"])]
