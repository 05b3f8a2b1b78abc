"""Sending events: ``PUT /rooms/{roomId}/send/{eventType}/{txnId}``, ``PUT /rooms/{roomId}/state/
{eventType}/{stateKey}`` and ``PUT /rooms/{roomId}/redact/{eventId}/{txnId}``.

Spec: client-server API "Sending events to a room" and "Redactions". Every event goes to the
room's actor, which authorises it against the room's current state; the (device, txnId) pair
makes /send and /redact idempotent. An event may not start a thread off an event that has a
relation itself ("Threading": ``workers.client.relation_checks``).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from d1.txn_ids import event_for_txn
from workers.auth import require_user
from workers.errors import Codes, MatrixError
from workers.client.ephemeral import presence_activity
from workers.client.relation_checks import check_thread_root
from workers.ratelimit import limit_messages
from workers.room_access import require_room, room_stub
from workers.routing import client_routes, read_json_object

# State events a client may not send through PUT /state (the server sends these itself).
_MEMBER = "m.room.member"


def _txn(requester: Any, txn_id: str) -> dict[str, str]:
    # Tokens without a device (none are issued today) scope transactions to the token.
    device = requester.device_id or f"token:{requester.token_id}"
    return {"device_id": device, "txn_id": txn_id}


async def send_message(request: Request, env: Any) -> dict[str, Any]:
    requester = await require_user(request, env)
    await limit_messages(request, env, requester.user_id)
    room_id = request.path_params["roomId"]
    event_type = request.path_params["eventType"]
    await require_room(env, room_id)
    content = await read_json_object(request, allow_empty=True)
    txn = _txn(requester, request.path_params["txnId"])
    earlier = await event_for_txn(env.DB, requester.user_id, txn["device_id"], room_id, txn["txn_id"])
    if earlier is not None:
        return {"event_id": earlier}
    await check_thread_root(env, room_id, content)
    result = await room_stub(env, room_id).send_event(requester.user_id, event_type, content, None, txn)
    await presence_activity(env, requester.user_id)
    return {"event_id": result["event_id"]}


async def send_state(request: Request, env: Any) -> dict[str, Any]:
    requester = await require_user(request, env)
    await limit_messages(request, env, requester.user_id)
    room_id = request.path_params["roomId"]
    event_type = request.path_params["eventType"]
    state_key = request.path_params.get("stateKey", "")
    await require_room(env, room_id)
    content = await read_json_object(request, allow_empty=True)
    if event_type == _MEMBER:
        membership = content.get("membership")
        if not isinstance(membership, str):
            raise MatrixError(400, Codes.BAD_JSON, "m.room.member needs a membership")
        result = await room_stub(env, room_id).update_membership(
            requester.user_id, state_key, membership, None,
            {k: v for k, v in content.items() if k != "membership"},
        )
    else:
        await check_thread_root(env, room_id, content)
        result = await room_stub(env, room_id).send_event(
            requester.user_id, event_type, content, state_key
        )
    return {"event_id": result["event_id"]}


async def redact(request: Request, env: Any) -> dict[str, Any]:
    requester = await require_user(request, env)
    await limit_messages(request, env, requester.user_id)
    room_id = request.path_params["roomId"]
    await require_room(env, room_id)
    body = await read_json_object(request, allow_empty=True)
    content: dict[str, Any] = {}
    if "reason" in body:
        if not isinstance(body["reason"], str):
            raise MatrixError(400, Codes.BAD_JSON, "reason must be a string")
        content["reason"] = body["reason"]
    txn = _txn(requester, request.path_params["txnId"])
    earlier = await event_for_txn(env.DB, requester.user_id, txn["device_id"], room_id, txn["txn_id"])
    if earlier is not None:
        return {"event_id": earlier}
    result = await room_stub(env, room_id).send_event(
        requester.user_id, "m.room.redaction", content, None, txn, request.path_params["eventId"],
    )
    return {"event_id": result["event_id"]}


routes: list[Route] = [
    *client_routes("/rooms/{roomId}/send/{eventType}/{txnId}", send_message, ["PUT"]),
    *client_routes("/rooms/{roomId}/state/{eventType}", send_state, ["PUT"]),
    *client_routes("/rooms/{roomId}/state/{eventType}/{stateKey:path}", send_state, ["PUT"]),
    *client_routes("/rooms/{roomId}/redact/{eventId}/{txnId}", redact, ["PUT"]),
]
