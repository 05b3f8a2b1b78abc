"""``PUT /_matrix/federation/v1/send/{txnId}``: PDUs and EDUs pushed by another server.

Spec: server-server API "Transactions". Each PDU is processed independently and gets an
entry in the answer's ``pdus`` (an ``error`` for one that was not accepted); a repeated
txnId from the same origin is answered as the first time, without processing it again.
EDUs are dispatched by type to the handlers registered in ``workers.federation.edus``.
Server ACLs ("Server Access Control Lists (ACLs)"): a PDU for a room whose ACL denies the
origin is not processed and answered with an error (the typing and receipt handlers drop
the EDUs of such rooms).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from d1.events import room_version_of
from durable.errors import InvalidEvent
from durable.events import compute_event_id
from workers.errors import bad_json
from workers.federation import edus
from workers.federation.auth import require_server
from workers.federation.inbound import receive_pdu, receive_rescinded_invite
from workers.federation.room_acl import server_allowed_in_room
from workers.federation.server.common import FEDERATION_V1
from workers.routing import read_json_object, route

log = logging.getLogger(__name__)

MAX_PDUS = 50
MAX_EDUS = 100
_ERRORS = {
    "rejected": "Event was rejected by the room's authorization rules",
    "dropped": "Event was dropped",
    "missing": "Missing events could not be fetched",
}
ACL_DENIED = "The sending server is denied by the room's server ACL"


async def _event_id_in_known_room(env: Any, pdu: dict[str, Any]) -> str | None:
    version = await room_version_of(env.DB, pdu["room_id"])
    if version is None:
        return None
    try:
        return compute_event_id(pdu, version)
    except (InvalidEvent, KeyError, TypeError):
        return None


async def send_transaction(request: Request, env: Any) -> dict[str, Any]:
    origin = await require_server(request, env)
    txn_id = request.path_params["txnId"]
    body = await read_json_object(request)
    pdus, edu_list = body.get("pdus", []), body.get("edus", [])
    if not isinstance(pdus, list) or not isinstance(edu_list, list):
        raise bad_json("pdus and edus must be lists")
    if len(pdus) > MAX_PDUS or len(edu_list) > MAX_EDUS:
        raise bad_json(f"A transaction carries at most {MAX_PDUS} PDUs and {MAX_EDUS} EDUs")
    earlier = await env.DB.prepare(
        "SELECT response FROM federation_inbound_txns WHERE origin = ? AND txn_id = ?"
    ).bind(origin, txn_id).first("response")
    if earlier is not None:
        return json.loads(earlier)

    results: dict[str, Any] = {}
    allowed: dict[str, bool] = {}
    for pdu in pdus:
        if not isinstance(pdu, dict) or not isinstance(pdu.get("room_id"), str):
            continue  # no event ID can be computed: nothing to answer for it
        room_id = pdu["room_id"]
        if room_id not in allowed:
            allowed[room_id] = await server_allowed_in_room(env, room_id, origin)
        if not allowed[room_id]:
            denied_id = await _event_id_in_known_room(env, pdu)
            log.info("transaction %s from %s: PDU %s refused by the ACL of %s", txn_id, origin, denied_id, room_id)
            if denied_id is not None:
                results[denied_id] = {"error": ACL_DENIED}
            continue
        outcome = await receive_rescinded_invite(env, origin, pdu)
        if outcome is not None:
            event_id = outcome["event_id"]
            if event_id is None:
                continue
        else:
            version = await room_version_of(env.DB, pdu["room_id"])
            if version is None:
                log.info("transaction %s from %s: PDU for unknown room %s", txn_id, origin, pdu["room_id"])
                continue
            try:
                event_id = compute_event_id(pdu, version)
            except (InvalidEvent, KeyError, TypeError):
                continue
            outcome = await receive_pdu(env, origin, version, pdu)
        error = _ERRORS.get(outcome["outcome"])
        results[event_id] = {"error": f"{error}: {outcome.get('reason', '')}"} if error else {}
    for edu in edu_list:
        if isinstance(edu, dict) and isinstance(edu.get("edu_type"), str):
            await edus.dispatch(env, origin, edu["edu_type"], edu.get("content"))
    response = {"pdus": results}
    await env.DB.prepare(
        "INSERT OR IGNORE INTO federation_inbound_txns (origin, txn_id, response, received_ts)"
        " VALUES (?, ?, ?, ?)"
    ).bind(origin, txn_id, json.dumps(response), int(time.time() * 1000)).run()
    return response


routes: list[Route] = [route(FEDERATION_V1 + "/send/{txnId}", send_transaction, ["PUT"])]
