"""``GET /_matrix/client/v1/room_summary/{roomIdOrAlias}``: a preview of one room.

Spec: client-server API "Room Summaries" (added in v1.15, MSC3266). The answer is a
``RoomSummary`` (the published-room fields: ``room_id``, ``num_joined_members``,
``world_readable``, ``guest_can_join``, and where set ``name``, ``topic``, ``canonical_alias``,
``avatar_url``, ``join_rule``, ``room_type``; plus ``allowed_room_ids`` for restricted rooms,
``encryption`` and ``room_version``) and, for an authenticated caller, the caller's
``membership`` (``leave`` when the caller has none). A room the caller may not see, or that
cannot be found, is 404 ``M_NOT_FOUND``; an identifier that is neither a room ID nor a room
alias is 400 ``M_INVALID_PARAM``.

Who may see a room is the rule the client ``/hierarchy`` applies (joined or invited, a
``world_readable`` history, a ``public`` join rule, a knockable room, or a ``restricted`` one
whose allowed rooms hold the caller; a banned caller sees only world-readable rooms), plus a
caller who has knocked. Authentication is optional: the spec lets a server answer an
unauthenticated caller when the room's join rule is ``public``, ``knock`` or
``knock_restricted``, or its history is ``world_readable``, and only then does it here.

A room this server has no joined member in is asked of other servers (``via``, then the room
ID's server) through the federation ``/hierarchy``, whose ``room`` is that room's summary;
if none answers, what this server knows of the room (if anything) is used. The spec asks for
heavier rate limits on federation requests made for unauthenticated callers; here an
unauthenticated caller causes none (remote aliases and remote rooms are 404 to it).
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from d1.events import room_version_of
from d1.state import membership_of
from durable.events.identifiers import is_valid_server_name, server_name_of
from durable.room_versions import KNOWN_ROOM_VERSIONS
from workers.auth import optional_user
from workers.client.directory import is_valid_alias
from workers.client.events_format import JsonDict
from workers.client.hierarchy import SpaceRoom, load_space_room, may_preview, room_summary, user_may_see
from workers.client.v1_routes import client_v1_routes
from workers.errors import Codes, MatrixError, invalid_param
from workers.federation.client import encode_path, federation_client
from workers.federation.errors import FederationError
from workers.federation.outbound import resolve_remote_alias
from workers.federation.server.common import server_in_room
from workers.room_access import resolve_room_id_or_alias

log = logging.getLogger(__name__)

FEDERATION_HIERARCHY = "/_matrix/federation/v1/hierarchy/{}"
# The RoomSummary fields taken from a remote server's answer, with the JSON type each must have.
_REMOTE_FIELDS: dict[str, type] = {
    "canonical_alias": str, "name": str, "num_joined_members": int, "topic": str,
    "world_readable": bool, "guest_can_join": bool, "avatar_url": str, "join_rule": str,
    "room_type": str, "allowed_room_ids": list, "encryption": str, "room_version": str,
}
_REQUIRED_REMOTE = ("num_joined_members", "world_readable", "guest_can_join")


def not_found(identifier: str) -> MatrixError:
    return MatrixError(404, Codes.NOT_FOUND, f"Room {identifier} not found.")


async def _nobody_is_member(_room_id: str) -> bool:
    return False


async def caller_may_see(env: Any, room: SpaceRoom, user_id: str | None, membership: str | None) -> bool:
    """The preview rule above; ``user_id`` None for an unauthenticated caller."""
    if user_id is None:
        return await may_preview(room, _nobody_is_member)
    return membership == "knock" or await user_may_see(env, room, user_id)


async def resolve_identifier(env: Any, identifier: str, authenticated: bool) -> tuple[str, list[str]]:
    """The room ID and the servers an alias's directory entry names."""
    if identifier.startswith("#"):
        if not is_valid_alias(identifier):
            raise invalid_param(f"{identifier!r} is not a room alias")
        if identifier.split(":", 1)[1] != env.config.server_name:
            if not authenticated:
                raise not_found(identifier)
            return await resolve_remote_alias(env, identifier)
    elif not identifier.startswith("!") or len(identifier) < 2:
        raise invalid_param(f"{identifier!r} is neither a room ID nor a room alias")
    return await resolve_room_id_or_alias(env, identifier), []


def remote_candidates(env: Any, room_id: str, servers: list[str]) -> list[str]:
    """Servers to ask, in order, without this one: ``via``, the alias's servers, the room
    ID's server (room versions before 12 carry one)."""
    own = env.config.server_name
    domain = server_name_of(room_id)
    ordered = [*servers, *([domain] if domain else [])]
    return [s for s in dict.fromkeys(ordered) if s != own and is_valid_server_name(s)]


def summary_from_remote(room_id: str, room: Any) -> JsonDict | None:
    """The RoomSummary in a federation ``/hierarchy`` answer's ``room``, or None when it is
    not one for ``room_id`` (the typed fields are kept, anything else dropped)."""
    if not isinstance(room, dict) or room.get("room_id") != room_id:
        return None
    summary: JsonDict = {"room_id": room_id}
    for key, kind in _REMOTE_FIELDS.items():
        value = room.get(key)
        if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
            summary[key] = value
    if any(key not in summary for key in _REQUIRED_REMOTE):
        return None
    allowed = summary.get("allowed_room_ids")
    if allowed is not None:
        summary["allowed_room_ids"] = [r for r in allowed if isinstance(r, str) and r.startswith("!")]
    # PublishedRoomsChunk: "When not present, the room is assumed to be public."
    summary.setdefault("join_rule", "public")
    return summary


async def fetch_remote_summary(env: Any, room_id: str, servers: list[str]) -> JsonDict | None:
    """The room's summary from the first of ``servers`` that gives one."""
    client = federation_client(env)
    for server in servers:
        try:
            body = await client.get_json(server, encode_path(FEDERATION_HIERARCHY, room_id),
                                         {"suggested_only": "true"})
        except FederationError as exc:
            log.info("room summary of %s from %s failed: %s", room_id, server, exc)
            continue
        summary = summary_from_remote(room_id, body.get("room") if isinstance(body, dict) else None)
        if summary is not None:
            return summary
    return None


async def remote_caller_may_see(env: Any, summary: JsonDict, user_id: str, membership: str | None) -> bool:
    """The preview rule applied to a summary from another server."""
    version = KNOWN_ROOM_VERSIONS.get(summary.get("room_version", ""))
    if version is None:
        # Without a known version, only the rules no room version changes apply.
        if membership in ("join", "invite", "knock"):
            return True
        if membership == "ban":
            return bool(summary["world_readable"])
        return bool(summary["world_readable"]) or summary["join_rule"] == "public"
    room = SpaceRoom(
        room_id=summary["room_id"], version=version, room_type=summary.get("room_type"),
        join_rule=summary["join_rule"],
        history_visibility="world_readable" if summary["world_readable"] else None,
        allowed_room_ids=list(summary.get("allowed_room_ids", [])),
        encryption=summary.get("encryption"),
    )
    return await caller_may_see(env, room, user_id, membership)


async def local_summary(env: Any, room_id: str, user_id: str | None, membership: str | None) -> JsonDict | None:
    """The summary from this server's state of the room, if it has the room and the caller
    may see it."""
    room = await load_space_room(env, room_id)
    if room is None or not await caller_may_see(env, room, user_id, membership):
        return None
    summary = await room_summary(env, room, suggested_only=True)
    summary.pop("children_state", None)
    return summary


async def get_room_summary(request: Request, env: Any) -> JsonDict:
    requester = await optional_user(request, env)
    user_id = requester.user_id if requester is not None else None
    identifier = request.path_params["roomIdOrAlias"]
    room_id, alias_servers = await resolve_identifier(env, identifier, user_id is not None)
    membership = await membership_of(env.DB, room_id, user_id) if user_id is not None else None

    summary: JsonDict | None = None
    hosted = await room_version_of(env.DB, room_id) is not None
    if hosted and await server_in_room(env, room_id, env.config.server_name):
        summary = await local_summary(env, room_id, user_id, membership)
    else:
        if user_id is not None:
            via = request.query_params.getlist("via")
            remote = await fetch_remote_summary(env, room_id, remote_candidates(env, room_id, via + alias_servers))
            if remote is not None and await remote_caller_may_see(env, remote, user_id, membership):
                summary = remote
        if summary is None and hosted:
            summary = await local_summary(env, room_id, user_id, membership)
    if summary is None:
        raise not_found(identifier)
    if user_id is not None:
        summary["membership"] = membership or "leave"
    return summary


routes: list[Route] = [*client_v1_routes("/room_summary/{roomIdOrAlias}", get_room_summary, ["GET"])]
