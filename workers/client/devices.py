"""Device management: ``GET /devices``, ``GET/PUT/DELETE /devices/{deviceId}`` and
``POST /delete_devices``.

Spec: client-server API "Device management" (device_management.yaml). Deleting devices
needs a ``m.login.password`` UIA stage and revokes every token of those devices. Only
application services may create devices with PUT, so for clients an unknown device is 404.
Renaming a device changes the owner's device list (the name is part of what ``/keys/query``
returns), as Synapse treats it: local users sharing a room see the owner in ``/sync``
``device_lists.changed`` and servers sharing a room get an ``m.device_list_update``.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from d1 import devices as devices_db
from workers.auth import forget_tokens, require_user
from workers.client import call_hook, client_routes
from workers.client.keys import announce_device_list_change
from workers.client.uia import PASSWORD_FLOWS, authenticate
from workers.errors import Codes, MatrixError
from workers.federation import e2ee_out
from workers.routing import read_json_object


def _device_json(row: dict[str, Any]) -> dict[str, Any]:
    """A Device object. ``last_seen_*`` are always known (set when the device is created);
    ``display_name`` is null when the device has none (as Synapse sends it; matrix-nio
    requires the key)."""
    return {
        "device_id": row["device_id"],
        "display_name": row["display_name"],
        **{key: row[key] for key in ("last_seen_ip", "last_seen_ts") if row[key] is not None},
    }


async def list_devices(request: Request, env: Any) -> dict[str, Any]:
    requester = await require_user(request, env)
    rows = await devices_db.list_devices(env.DB, requester.user_id)
    return {"devices": [_device_json(row) for row in rows]}


async def get_device(request: Request, env: Any) -> dict[str, Any]:
    requester = await require_user(request, env)
    row = await devices_db.get_device(env.DB, requester.user_id, request.path_params["device_id"])
    if row is None:
        raise MatrixError(404, Codes.NOT_FOUND, "No such device")
    return _device_json(row)


async def update_device(request: Request, env: Any) -> dict[str, Any]:
    requester = await require_user(request, env)
    body = await read_json_object(request, allow_empty=True)
    device_id = request.path_params["device_id"]
    row = await devices_db.get_device(env.DB, requester.user_id, device_id)
    if row is None:
        raise MatrixError(404, Codes.NOT_FOUND, "No such device")
    if "display_name" in body:
        name = body["display_name"]
        if name is not None and not isinstance(name, str):
            raise MatrixError(400, Codes.BAD_JSON, "display_name must be a string")
        await devices_db.set_display_name(env.DB, requester.user_id, device_id, name)
        if name != row["display_name"]:
            await announce_device_list_change(env, [requester.user_id])
            await e2ee_out.device_list_changed(env, requester.user_id, [device_id])
    return {}


async def _delete(env: Any, user_id: str, device_ids: list[str]) -> None:
    """Delete those of ``device_ids`` that exist (deleting a missing device is a success)."""
    known = {d["device_id"] for d in await devices_db.list_devices(env.DB, user_id)}
    device_ids = [d for d in device_ids if d in known]
    statements = [s for d in device_ids for s in devices_db.delete_device(env.DB, user_id, d)]
    if statements:
        await env.DB.batch(statements)
        forget_tokens(env, user_id)
        await call_hook(env, "devices_deleted", user_id, device_ids)


async def delete_device(request: Request, env: Any) -> dict[str, Any] | Response:
    requester = await require_user(request, env)
    body = await read_json_object(request, allow_empty=True)
    challenge = await authenticate(request, env, body, PASSWORD_FLOWS, requester)
    if challenge is not None:
        return challenge
    await _delete(env, requester.user_id, [request.path_params["device_id"]])
    return {}


async def delete_devices(request: Request, env: Any) -> dict[str, Any] | Response:
    requester = await require_user(request, env)
    body = await read_json_object(request)
    device_ids = body.get("devices")
    if not isinstance(device_ids, list) or not all(isinstance(d, str) for d in device_ids):
        raise MatrixError(400, Codes.BAD_JSON, "devices must be a list of device IDs")
    challenge = await authenticate(request, env, body, PASSWORD_FLOWS, requester)
    if challenge is not None:
        return challenge
    await _delete(env, requester.user_id, list(dict.fromkeys(device_ids)))
    return {}


routes = [
    *client_routes("/devices", list_devices, ["GET"]),
    *client_routes("/devices/{device_id}", get_device, ["GET"]),
    *client_routes("/devices/{device_id}", update_device, ["PUT"]),
    *client_routes("/devices/{device_id}", delete_device, ["DELETE"]),
    *client_routes("/delete_devices", delete_devices, ["POST"]),
]
