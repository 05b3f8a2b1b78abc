"""Membership handshakes with other servers: make_join/send_join, make_leave/send_leave,
make_knock/send_knock, and invites.

Spec: server-server API "Joining Rooms", "Leaving Rooms (Rejecting Invites)", "Knocking
upon a room", "Inviting to a room" (v2 endpoints; the v1 send_join/send_leave, removed from
the spec in v1.18 but still called by older servers, answer ``[200, body]``). A server
denied by the room's server ACL gets 403 ``M_FORBIDDEN`` from all of them (spec: "Server
Access Control Lists (ACLs)").
"""

from __future__ import annotations

from typing import Any, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from d1.state import auth_chain_ids, state_before_event
from durable.errors import InvalidEvent
from durable.events import event_from_pdu, sign_event, validate_pdu
from durable.room_versions import UnsupportedRoomVersion, get_room_version
from workers.auth import is_local_user
from workers.errors import Codes, MatrixError, bad_json, forbidden
from workers.federation.auth import require_server
from workers.federation.inbound import receive_pdu
from workers.federation.room_acl import require_server_allowed
from workers.federation.server.common import FEDERATION_V1, FEDERATION_V2, known_room, pdus_for
from workers.room_access import room_stub
from workers.routing import MatrixJSONResponse, read_json_object, route


def _supported_versions(request: Request) -> list[str]:
    return request.query_params.getlist("ver") or ["1"]


def _make(membership: str) -> Callable[[Request, Any], Any]:
    async def handler(request: Request, env: Any) -> dict[str, Any]:
        origin = await require_server(request, env)
        room_id, user_id = request.path_params["roomId"], request.path_params["userId"]
        version = await known_room(env, room_id)
        await require_server_allowed(env, room_id, origin)
        if user_id.split(":", 1)[-1] != origin:
            raise forbidden(f"{origin} cannot {membership} for {user_id}")
        if membership in ("join", "knock") and version.identifier not in _supported_versions(request):
            raise MatrixError(400, Codes.INCOMPATIBLE_ROOM_VERSION,
                              f"Your server does not support room version {version.identifier}",
                              room_version=version.identifier)
        return await room_stub(env, room_id).make_membership_event(user_id, membership)

    handler.__name__ = f"make_{membership}"
    return handler


async def _check_membership_pdu(request: Request, env: Any, membership: str) -> tuple[str, Any, dict[str, Any]]:
    origin = await require_server(request, env)
    room_id, event_id = request.path_params["roomId"], request.path_params["eventId"]
    version = await known_room(env, room_id)
    await require_server_allowed(env, room_id, origin)
    pdu = await read_json_object(request)
    try:
        validate_pdu(pdu, version)
        event = event_from_pdu(pdu, version)
    except InvalidEvent as exc:
        raise bad_json(f"Invalid event: {exc.reason}") from exc
    if event.event_id != event_id or event.room_id != room_id:
        raise bad_json("The event does not match the event ID and room ID in the path")
    if event.type != "m.room.member" or event.membership != membership or event.state_key != event.sender:
        raise bad_json(f"Expected a {membership} event of the sender")
    if event.sender.split(":", 1)[-1] != origin:
        raise forbidden(f"{origin} cannot send a {membership} for {event.sender}")
    return origin, version, pdu


async def _accept(env: Any, origin: str, version: Any, pdu: dict[str, Any]) -> None:
    room_id = pdu["room_id"]
    result = await room_stub(env, room_id).receive_pdu(origin, pdu, True)
    if result["outcome"] == "missing":
        result = await receive_pdu(env, origin, version, pdu)
    if result["outcome"] not in ("accepted", "duplicate"):
        raise forbidden(f"The event was not accepted: {result['outcome']} ({result.get('reason', '')})")


async def _send_join_body(request: Request, env: Any) -> dict[str, Any]:
    origin, version, pdu = await _check_membership_pdu(request, env, "join")
    room_id = pdu["room_id"]
    stub = room_stub(env, room_id)
    signed = await stub.sign_restricted_join(pdu)
    await _accept(env, origin, version, signed)
    event_id = request.path_params["eventId"]
    state = await state_before_event(env.DB, event_id)
    if state is None:
        raise MatrixError(500, Codes.UNKNOWN, "No state stored for the join event")
    state_ids = sorted(state.values())
    chain = sorted(await auth_chain_ids(env.DB, [*state_ids, event_id]))
    servers = sorted((await stub.summary_servers())["servers"])
    body: dict[str, Any] = {
        "origin": env.config.server_name,
        "state": await pdus_for(env, state_ids),
        "auth_chain": await pdus_for(env, chain),
        "members_omitted": False,
        "servers_in_room": servers,
    }
    if signed is not pdu and signed != pdu:
        body["event"] = signed
    return body


async def send_join_v2(request: Request, env: Any) -> dict[str, Any]:
    return await _send_join_body(request, env)


async def send_join_v1(request: Request, env: Any) -> Response:
    return MatrixJSONResponse([200, await _send_join_body(request, env)])


async def send_leave_v2(request: Request, env: Any) -> dict[str, Any]:
    origin, version, pdu = await _check_membership_pdu(request, env, "leave")
    await _accept(env, origin, version, pdu)
    return {}


async def send_leave_v1(request: Request, env: Any) -> Response:
    return MatrixJSONResponse([200, await send_leave_v2(request, env)])


async def send_knock(request: Request, env: Any) -> dict[str, Any]:
    origin, version, pdu = await _check_membership_pdu(request, env, "knock")
    await _accept(env, origin, version, pdu)
    stub = room_stub(env, pdu["room_id"])
    return {"knock_room_state": await stub.stripped_state_pdus()}


async def _invite(request: Request, env: Any, pdu: Any, room_version: Any, invite_room_state: Any) -> dict[str, Any]:
    origin = await require_server(request, env)
    room_id, event_id = request.path_params["roomId"], request.path_params["eventId"]
    await require_server_allowed(env, room_id, origin)
    try:
        version = get_room_version(room_version)
    except UnsupportedRoomVersion:
        raise MatrixError(400, Codes.INCOMPATIBLE_ROOM_VERSION,
                          f"Room version {room_version!r} is not supported", room_version=room_version) from None
    if not isinstance(pdu, dict):
        raise bad_json("event must be an object")
    try:
        validate_pdu(pdu, version)
        event = event_from_pdu(pdu, version)
    except InvalidEvent as exc:
        raise bad_json(f"Invalid event: {exc.reason}") from exc
    if event.event_id != event_id or event.room_id != room_id:
        raise bad_json("The event does not match the event ID and room ID in the path")
    if event.type != "m.room.member" or event.membership != "invite" or not event.state_key:
        raise bad_json("Expected an invite member event")
    if not is_local_user(env, event.state_key):
        raise forbidden("The invitee is not a user of this server")
    if event.sender.split(":", 1)[-1] != origin:
        raise forbidden(f"{origin} cannot invite on behalf of {event.sender}")
    from durable.pdu_receipt import Dropped, receive_checks

    try:
        await receive_checks(pdu, version, env.server_keys.get_verify_key)
    except Dropped as exc:
        raise forbidden(f"The invite event failed its checks: {exc.reason}") from exc
    signed = sign_event(pdu, version, env.config.server_name, env.signing_key)
    stripped = invite_room_state if isinstance(invite_room_state, list) else []
    await room_stub(env, room_id).store_remote_membership(version.identifier, signed, stripped)
    return {"event": signed}


async def invite_v2(request: Request, env: Any) -> dict[str, Any]:
    body = await read_json_object(request)
    return await _invite(request, env, body.get("event"), body.get("room_version"),
                         body.get("invite_room_state", []))


async def invite_v1(request: Request, env: Any) -> Response:
    pdu = await read_json_object(request)
    unsigned = pdu.get("unsigned", {}) if isinstance(pdu.get("unsigned"), dict) else {}
    result = await _invite(request, env, pdu, "1" if "event_id" in pdu else "3",
                           unsigned.get("invite_room_state", []))
    return MatrixJSONResponse([200, result])


routes: list[Route] = [
    route(FEDERATION_V1 + "/make_join/{roomId}/{userId}", _make("join"), ["GET"]),
    route(FEDERATION_V1 + "/make_leave/{roomId}/{userId}", _make("leave"), ["GET"]),
    route(FEDERATION_V1 + "/make_knock/{roomId}/{userId}", _make("knock"), ["GET"]),
    route(FEDERATION_V2 + "/send_join/{roomId}/{eventId}", send_join_v2, ["PUT"]),
    route(FEDERATION_V1 + "/send_join/{roomId}/{eventId}", send_join_v1, ["PUT"]),
    route(FEDERATION_V2 + "/send_leave/{roomId}/{eventId}", send_leave_v2, ["PUT"]),
    route(FEDERATION_V1 + "/send_leave/{roomId}/{eventId}", send_leave_v1, ["PUT"]),
    route(FEDERATION_V1 + "/send_knock/{roomId}/{eventId}", send_knock, ["PUT"]),
    route(FEDERATION_V2 + "/invite/{roomId}/{eventId}", invite_v2, ["PUT"]),
    route(FEDERATION_V1 + "/invite/{roomId}/{eventId}", invite_v1, ["PUT"]),
]
