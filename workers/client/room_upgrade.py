"""``POST /_matrix/client/v3/rooms/{roomId}/upgrade``.

Spec: client-server API "Room Upgrades", "Server behaviour", in its order:

1. The user must have the power to send ``m.room.tombstone`` in the room (403 ``M_FORBIDDEN``;
   also for a room this server does not host); an unknown ``new_version`` is 400
   ``M_UNSUPPORTED_ROOM_VERSION``.
2. A replacement room is created with ``predecessor`` (the old room and its last event
   before the upgrade; the tombstone cannot be named because it must name the new room
   first) and the old room's ``type``. With a version that has additional creators (v12),
   ``additional_creators`` comes from the request only (they are not copied).
3. The transferable state is copied: server ACLs, encryption, name, avatar, topic, guest
   access, history visibility, join rules, canonical alias and power levels. Power levels:
   in a v12 room the creators (the caller and ``additional_creators``) must not be listed in
   ``users``, so they are removed; in an earlier version the caller is listed at their old
   level (100 when they were a v12 creator, as are the other former creators), raised for
   the copy to the level that sending the copied state needs and restored afterwards, as
   Synapse does. The old room's bans are sent again in the new room (those the caller has
   the power for), and the caller's tags, room push rules and ``m.direct`` entries are copied
   to it (``workers.client.upgrade_user_state``; other members' are copied when they join).
4. The local aliases move to the new room (and the old room's canonical alias is cleared);
   a room published in the directory is published in its new form instead.
5. An ``m.room.tombstone`` naming the replacement goes to the old room.
6. The old room's ``events_default`` and ``invite`` are raised to the greater of 50 and
   ``users_default + 1``, when the caller may change power levels there.
"""

from __future__ import annotations

import copy
import logging
from typing import Any, Mapping

from starlette.requests import Request
from starlette.routing import Route

from d1.events import room_version_of
from durable.auth.power_levels import LEVEL_DEFAULTS
from durable.events.identifiers import is_valid_user_id
from durable.room_versions import RoomVersion, UnsupportedRoomVersion, get_room_version
from workers.auth import Requester, require_user
from workers.client import upgrade_user_state
from workers.client.events_format import JsonDict
from workers.client.history import TIMELINE_SQL
from workers.client.room_create import create_room_for
from workers.client.room_reads import reader_for
from workers.errors import Codes, MatrixError, bad_json, forbidden, missing_param
from workers.room_access import room_stub
from workers.routing import client_routes, read_json_object

log = logging.getLogger(__name__)

# Spec "Room Upgrades" step 3: the recommended transferable state (power levels apart).
TRANSFERABLE = (
    "m.room.server_acl",
    "m.room.encryption",
    "m.room.name",
    "m.room.avatar",
    "m.room.topic",
    "m.room.guest_access",
    "m.room.history_visibility",
    "m.room.join_rules",
    "m.room.canonical_alias",
)
TOMBSTONE_BODY = "This room has been replaced"
CREATOR_LEVEL = 100
RESTRICTED_LEVEL = 50


def _level(value: Any, default: int) -> int:
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return default
    return default


def complete_power_levels(content: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of power levels with every absent level written out with its spec default,
    so the new room means the same whatever defaults its creation adds."""
    out = copy.deepcopy(dict(content))
    for name, default in LEVEL_DEFAULTS.items():
        out.setdefault(name, default)
    for name in ("users", "events"):
        if not isinstance(out.get(name), dict):
            out[name] = {}
    if not isinstance(out.get("notifications"), dict):
        out["notifications"] = {"room": 50}
    return out


def creators_of(create: Mapping[str, Any], sender: str, version: RoomVersion) -> list[str]:
    """The creators of a room: its create event's sender, and in v12 ``additional_creators``."""
    creators = [sender]
    extra = create.get("additional_creators")
    if version.privileged_creators and isinstance(extra, list):
        creators.extend(u for u in extra if isinstance(u, str) and u not in creators)
    return creators


def new_power_levels(
    old: Mapping[str, Any], *, caller: str, old_version: RoomVersion, old_creators: list[str],
    new_version: RoomVersion, new_creators: list[str], state_types: list[str],
) -> tuple[dict[str, Any], int | None]:
    """The power levels to create the new room with, and the caller's level to restore
    afterwards (None when it was not raised). See the module docstring, step 3."""
    levels = complete_power_levels(old)
    users: dict[str, Any] = dict(levels["users"])
    if new_version.privileged_creators:
        for creator in new_creators:
            users.pop(creator, None)
        levels["users"] = users
        return levels, None
    users_default = _level(levels.get("users_default"), 0)
    if old_version.privileged_creators:
        for creator in old_creators:
            users.setdefault(creator, CREATOR_LEVEL)
    caller_level = _level(users.get(caller), users_default)
    state_default = _level(levels.get("state_default"), 50)
    events = levels["events"]
    needed = max(
        [_level(events.get(t), state_default) for t in [*state_types, "m.room.power_levels"]]
    )
    restore = None
    if caller_level < needed:
        restore = caller_level
        caller_level = needed
    users[caller] = caller_level
    levels["users"] = users
    return levels, restore


async def _current_state(env: Any, requester: Requester, room_id: str) -> dict[str, tuple[str, Mapping[str, Any]]]:
    """type -> (sender, content) of the room's current state events with an empty state key."""
    reader = reader_for(env, requester)
    rows = (
        await env.DB.prepare(
            "SELECT type, event_id FROM current_state WHERE room_id = ? AND state_key = ''"
        ).bind(room_id).all()
    ).results
    found = await reader.rows([r["event_id"] for r in rows])
    out: dict[str, tuple[str, Mapping[str, Any]]] = {}
    for row in rows:
        event = found.get(row["event_id"])
        if event is not None:
            out[row["type"]] = (event["sender"], await reader.content_of(row["event_id"]))
    return out


async def upgrade_room(request: Request, env: Any) -> JsonDict:
    requester = await require_user(request, env)
    caller = requester.user_id
    room_id = request.path_params["roomId"]
    body = await read_json_object(request)
    requested = body.get("new_version")
    if requested is None:
        raise missing_param("new_version is required")
    if not isinstance(requested, str):
        raise bad_json("new_version must be a string")
    try:
        new_version = get_room_version(requested)
    except UnsupportedRoomVersion as exc:
        raise MatrixError(400, Codes.UNSUPPORTED_ROOM_VERSION, "This server does not support that room version") from exc
    additional = body.get("additional_creators", [])
    if not isinstance(additional, list) or not all(isinstance(u, str) and is_valid_user_id(u) for u in additional):
        raise bad_json("additional_creators must be a list of user IDs")

    # 1. the power to send a tombstone
    old_version = await room_version_of(env.DB, room_id) if room_id.startswith("!") else None
    old_stub = room_stub(env, room_id)
    if old_version is None or not await old_stub.user_can_send_state(caller, "m.room.tombstone"):
        raise forbidden("You cannot upgrade this room")

    state = await _current_state(env, requester, room_id)
    create_sender, create_content = state["m.room.create"]
    predecessor: dict[str, str] = {"room_id": room_id}
    last_event = await env.DB.prepare(
        f"SELECT event_id FROM events WHERE room_id = ? AND {TIMELINE_SQL}"
        " ORDER BY stream_ordering DESC LIMIT 1"
    ).bind(room_id).first("event_id")
    if last_event is not None:
        predecessor["event_id"] = last_event
    creation_content: dict[str, Any] = {"predecessor": predecessor}
    if isinstance(create_content.get("type"), str):
        creation_content["type"] = create_content["type"]
    new_creators = [caller]
    if new_version.privileged_creators:
        extra = [u for u in dict.fromkeys(additional) if u != caller]
        if extra:
            creation_content["additional_creators"] = extra
        new_creators += extra

    # 3. the transferable state (join rules and history visibility always, as the spec's
    # defaults when the old room has none, so the preset adds nothing of its own)
    copied: dict[str, Mapping[str, Any]] = {
        t: state[t][1] for t in TRANSFERABLE if t in state and state[t][1]
    }
    copied.setdefault("m.room.join_rules", {"join_rule": "invite"})
    copied.setdefault("m.room.history_visibility", {"history_visibility": "shared"})
    old_power = state.get("m.room.power_levels", ("", {}))[1]
    power_levels, restore = new_power_levels(
        old_power, caller=caller, old_version=old_version,
        old_creators=creators_of(create_content, create_sender, old_version),
        new_version=new_version, new_creators=new_creators, state_types=list(copied),
    )
    published = bool(
        await env.DB.prepare("SELECT is_public FROM rooms WHERE room_id = ?").bind(room_id).first("is_public")
    )
    # 2. the replacement room
    new_room = await create_room_for(env, caller, {
        "room_version": new_version.identifier,
        "preset": "public_chat",
        "visibility": "public" if published else "private",
        "creation_content": creation_content,
        "power_level_content_override": power_levels,
        "initial_state": [
            {"type": t, "state_key": "", "content": dict(content)} for t, content in copied.items()
        ],
    })
    new_stub = room_stub(env, new_room)
    await _copy_bans(env, requester, room_id, new_stub)
    if restore is not None:
        final = copy.deepcopy(power_levels)
        final["users"][caller] = restore
        await new_stub.send_event(caller, "m.room.power_levels", final, state_key="")

    # 4. aliases and the directory
    await env.DB.prepare("UPDATE room_aliases SET room_id = ? WHERE room_id = ?").bind(new_room, room_id).run()
    if "m.room.canonical_alias" in copied:
        await _try_send(old_stub, caller, "m.room.canonical_alias", {})
    if published:
        await old_stub.set_published(False)

    # the caller's own tags, room push rules and m.direct entries (as when joining it)
    await upgrade_user_state.copy_user_state(env, caller, room_id, new_room)

    # 5. the tombstone
    await old_stub.send_event(
        caller, "m.room.tombstone", {"body": TOMBSTONE_BODY, "replacement_room": new_room}, state_key=""
    )

    # 6. no more messages or invites in the old room
    restricted = complete_power_levels(old_power)
    floor = max(RESTRICTED_LEVEL, _level(restricted.get("users_default"), 0) + 1)
    changed = False
    for name in ("events_default", "invite"):
        if _level(restricted.get(name), LEVEL_DEFAULTS[name]) < floor:
            restricted[name] = floor
            changed = True
    if changed and "m.room.power_levels" in state:
        await _try_send(old_stub, caller, "m.room.power_levels", restricted)
    return {"replacement_room": new_room}


async def _copy_bans(env: Any, requester: Requester, old_room: str, new_stub: Any) -> None:
    """The old room's bans (local and remote users) are sent again in the new room by the
    caller, with their reasons, as Synapse does. A ban the caller lacks the power for in the
    new room (a target at or above their level) is skipped and logged."""
    rows = (
        await env.DB.prepare(
            "SELECT state_key, event_id FROM current_state WHERE room_id = ? AND type = 'm.room.member'"
            " AND membership = 'ban' ORDER BY state_key"
        ).bind(old_room).all()
    ).results
    reader = reader_for(env, requester)
    for row in rows:
        content = dict(await reader.content_of(row["event_id"]))
        reason = content.pop("reason", None)
        extra = {k: v for k, v in content.items() if k != "membership"}
        try:
            await new_stub.update_membership(
                requester.user_id, row["state_key"], "ban", reason if isinstance(reason, str) else None, extra
            )
        except MatrixError as exc:
            if exc.status != 403:
                raise
            log.info("room upgrade: ban of %s not copied: %s", row["state_key"], exc.message)


async def _try_send(stub: Any, sender: str, event_type: str, content: dict[str, Any]) -> None:
    """A best-effort state change in the old room: the upgrade has happened either way, and
    the caller may lack the power for this one step (403 is logged, not returned)."""
    try:
        await stub.send_event(sender, event_type, content, state_key="")
    except MatrixError as exc:
        if exc.status != 403:
            raise
        log.info("room upgrade: %s could not send %s: %s", sender, event_type, exc.message)


routes: list[Route] = [*client_routes("/rooms/{roomId}/upgrade", upgrade_room, ["POST"])]
