"""``PUT /sendToDevice/{eventType}/{txnId}``.

Spec: client-server API "Send-to-Device messaging". The request is idempotent per access
token's device and txnId: a repeat answers ``{}`` and queues nothing. ``*`` as a device ID
means every device of that user. Messages to devices that do not exist are dropped.
Messages to users of other servers leave as one ``m.direct_to_device`` EDU per server once
the request is recorded (workers.federation.e2ee_out).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from d1 import devices as devices_db
from d1 import to_device as to_device_db
from d1.database import D1Error
from workers.auth import is_local_user, is_valid_user_id, now_ms, require_user
from workers.client import client_routes
from workers.errors import Codes, MatrixError
from workers.federation import e2ee_out
from workers.routing import check_stored_size, read_json_object

ALL_DEVICES = "*"


async def send_to_device(request: Request, env: Any) -> dict[str, Any]:
    requester = await require_user(request, env)
    event_type = request.path_params["event_type"]
    txn_id = request.path_params["txn_id"]
    body = await read_json_object(request)
    messages = body.get("messages")
    if not isinstance(messages, dict):
        raise MatrixError(400, Codes.BAD_JSON, "messages must be an object")
    # Requests of a token without a device are told apart by token.
    sender_device = requester.device_id or f"token:{requester.token_id}"
    db = env.DB
    if await to_device_db.txn_seen(db, requester.user_id, sender_device, txn_id):
        return {}

    deliveries: list[tuple[str, str, dict[str, Any]]] = []
    remote: dict[str, dict[str, dict[str, Any]]] = {}
    for user_id, per_device in messages.items():
        if not isinstance(per_device, dict) or not all(isinstance(c, dict) for c in per_device.values()):
            raise MatrixError(400, Codes.BAD_JSON, "messages must map users to devices to objects")
        for content in per_device.values():
            check_stored_size(content, "A to-device message")
        if not is_valid_user_id(user_id):
            raise MatrixError(400, Codes.INVALID_PARAM, f"Invalid user ID {user_id!r}")
        if not is_local_user(env, user_id):
            if per_device:
                remote[user_id] = per_device
            continue
        known = [d["device_id"] for d in await devices_db.list_devices(db, user_id)]
        # One message per device: one addressed to the device by name wins over ``*``.
        by_device = {d: per_device[ALL_DEVICES] for d in known} if ALL_DEVICES in per_device else {}
        by_device.update((d, c) for d, c in per_device.items() if d != ALL_DEVICES and d in known)
        deliveries += [(user_id, device_id, content) for device_id, content in by_device.items()]

    statements = to_device_db.send_statements(
        db, requester.user_id, sender_device, txn_id, event_type, deliveries, now_ms()
    )
    try:
        await db.batch(statements)
    except D1Error:
        # A concurrent request with the same txnId committed first: that one delivered.
        if await to_device_db.txn_seen(db, requester.user_id, sender_device, txn_id):
            return {}
        raise
    if deliveries:
        env.NOTIFIER.notify(sorted({user_id for user_id, _, _ in deliveries}))
    if remote:
        await e2ee_out.send_to_device(env, requester.user_id, sender_device, txn_id, event_type, remote)
    return {}


routes = client_routes("/sendToDevice/{event_type}/{txn_id}", send_to_device, ["PUT"])
