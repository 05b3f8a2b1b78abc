"""Taking PDUs from another server into a room, fetching what they depend on.

Spec: server-server API "Checks performed on receipt of a PDU" and "Backfilling and
retrieving missing events". The room actor runs the checks; this worker code does the
network part it needs: an event's unknown auth events come from ``/event_auth``; unknown
``prev_events`` from ``/get_missing_events``, and when the gap cannot be closed that way,
the state before each unreachable prev event from ``/state`` (then the event is stored with
that state as a backwards extremity).
"""

from __future__ import annotations

import logging
from typing import Any

from durable.events import compute_event_id, event_from_pdu
from durable.errors import InvalidEvent
from durable.pdu_receipt import Dropped, receive_checks
from durable.room_versions import RoomVersion, UnsupportedRoomVersion, get_room_version
from workers.auth import is_local_user
from workers.federation.client import encode_path, federation_client
from workers.federation.errors import FederationError
from workers.federation.server.common import server_in_room
from workers.room_access import room_stub

log = logging.getLogger(__name__)

MISSING_EVENTS_LIMIT = 20
MAX_FETCH_ROUNDS = 3


async def _fetch_auth_chain(env: Any, origin: str, room_id: str, event_id: str) -> list[dict[str, Any]]:
    body = await federation_client(env).get_json(
        origin, encode_path("/_matrix/federation/v1/event_auth/{}/{}", room_id, event_id)
    )
    chain = body.get("auth_chain") if isinstance(body, dict) else None
    return [p for p in chain if isinstance(p, dict)] if isinstance(chain, list) else []


async def _fetch_missing_prev(
    env: Any, origin: str, room_id: str, stub: Any, event_id: str, depth: int
) -> list[dict[str, Any]]:
    summary = await stub.summary()
    body = await federation_client(env).post_json(
        origin,
        encode_path("/_matrix/federation/v1/get_missing_events/{}", room_id),
        {"earliest_events": summary["extremities"], "latest_events": [event_id],
         "limit": MISSING_EVENTS_LIMIT, "min_depth": max(0, depth - 1000)},
    )
    events = body.get("events") if isinstance(body, dict) else None
    return [p for p in events if isinstance(p, dict)] if isinstance(events, list) else []


async def _store_with_fetched_state(
    env: Any, origin: str, room_id: str, version: RoomVersion, stub: Any, event_id: str
) -> None:
    """Fetch an event and the state before it, and store it as a backwards extremity."""
    client = federation_client(env)
    state = await client.get_json(
        origin, encode_path("/_matrix/federation/v1/state/{}", room_id), {"event_id": event_id}
    )
    pdus = [p for p in state.get("pdus", []) if isinstance(p, dict)] if isinstance(state, dict) else []
    chain = [p for p in state.get("auth_chain", []) if isinstance(p, dict)] if isinstance(state, dict) else []
    await stub.store_outliers(chain + pdus)
    body = await client.get_json(origin, encode_path("/_matrix/federation/v1/event/{}", event_id))
    fetched = body.get("pdus") if isinstance(body, dict) else None
    if not isinstance(fetched, list) or not fetched or not isinstance(fetched[0], dict):
        return
    state_before = []
    for pdu in pdus:
        try:
            event = event_from_pdu(pdu, version)
        except (InvalidEvent, KeyError):
            continue
        if event.is_state():
            state_before.append([event.type, event.state_key, event.event_id])
    await stub.store_event_with_state(origin, fetched[0], state_before)


async def receive_pdu(env: Any, origin: str, version: RoomVersion, pdu: dict[str, Any],
                      *, _depth: int = 0) -> dict[str, Any]:
    """Hand one PDU to its room's actor; fetch what it is missing and try again."""
    room_id = pdu["room_id"]
    stub = room_stub(env, room_id)
    result = await stub.receive_pdu(origin, pdu)
    rounds = 0
    while result["outcome"] == "missing" and rounds < MAX_FETCH_ROUNDS:
        rounds += 1
        event_id = result["event_id"]
        try:
            if result.get("auth_events"):
                await stub.store_outliers(await _fetch_auth_chain(env, origin, room_id, event_id))
            if result.get("prev_events"):
                if _depth == 0:
                    depth = pdu.get("depth", 0) if isinstance(pdu.get("depth"), int) else 0
                    for missing in sorted(
                        await _fetch_missing_prev(env, origin, room_id, stub, event_id, depth),
                        key=lambda p: p.get("depth", 0) if isinstance(p.get("depth"), int) else 0,
                    ):
                        await receive_pdu(env, origin, version, missing, _depth=_depth + 1)
                result = await stub.receive_pdu(origin, pdu)
                for prev_id in result.get("prev_events", []) if result["outcome"] == "missing" else []:
                    await _store_with_fetched_state(env, origin, room_id, version, stub, prev_id)
        except FederationError as exc:
            log.info("room %s: cannot fetch what %s needs from %s: %s", room_id, event_id, origin, exc)
            break
        result = await stub.receive_pdu(origin, pdu)
    return result


async def receive_rescinded_invite(env: Any, origin: str, pdu: dict[str, Any]) -> dict[str, Any] | None:
    """Take the leave that takes back an invite of one of our users, in a room this server
    is not in (so it has no state to check the event against, only the invite it holds).

    The inviting server sends it to the invitee's server (Synapse does); it is kept, like the
    invite, as an out-of-band membership when it is signed by its sender's server, names the
    invite among its ``auth_events`` and comes from whoever sent the invite. None when the
    PDU is not such a leave (the caller goes on as for any PDU)."""
    room_id, target = pdu.get("room_id"), pdu.get("state_key")
    content = pdu.get("content")
    if (
        pdu.get("type") != "m.room.member" or not isinstance(target, str) or not is_local_user(env, target)
        or not isinstance(content, dict) or content.get("membership") != "leave"
        or pdu.get("sender") == target
    ):
        return None
    invite = await env.DB.prepare(
        "SELECT e.event_id, e.sender, e.membership, COALESCE(r.room_version, v.room_version) AS room_version"
        " FROM current_state c JOIN events e ON e.event_id = c.event_id"
        " LEFT JOIN rooms r ON r.room_id = c.room_id"
        " LEFT JOIN remote_room_versions v ON v.room_id = c.room_id"
        " WHERE c.room_id = ? AND c.type = 'm.room.member' AND c.state_key = ?"
    ).bind(room_id, target).first()
    if invite is None or invite["membership"] != "invite" or invite["room_version"] is None:
        return None
    if await server_in_room(env, room_id, env.config.server_name):
        return None  # the room's own DAG and state decide
    try:
        version = get_room_version(invite["room_version"])
    except UnsupportedRoomVersion:
        return None
    try:
        event = await receive_checks(pdu, version, env.server_keys.get_verify_key)
    except Dropped as exc:
        try:
            event_id: str | None = compute_event_id(pdu, version)
        except (InvalidEvent, KeyError, TypeError):
            event_id = None
        return {"event_id": event_id, "outcome": "dropped", "reason": exc.reason}
    if invite["event_id"] not in event.auth_event_ids or event.sender != invite["sender"]:
        return {"event_id": event.event_id, "outcome": "rejected",
                "reason": "not a leave by the inviter that answers the invite"}
    await room_stub(env, room_id).store_remote_membership(version.identifier, dict(event.pdu))
    log.info("room %s: invite of %s taken back by %s (through %s)", room_id, target, event.sender, origin)
    return {"event_id": event.event_id, "outcome": "accepted", "reason": ""}
