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

from durable.events import event_from_pdu
from durable.errors import InvalidEvent
from durable.room_versions import RoomVersion
from workers.federation.client import encode_path, federation_client
from workers.federation.errors import FederationError
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
