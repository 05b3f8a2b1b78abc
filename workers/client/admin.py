"""``GET /_matrix/client/v3/admin/whois/{userId}``.

Spec: client-server API "Server Administration": a user's devices, each with its sessions
and their connections (``ip``, ``last_seen``; ``user_agent`` is not recorded here). The spec
lets a server restrict it to the user themself or a server admin; this server has no admin
accounts, so only the user themself may look (403 ``M_FORBIDDEN`` for anyone else). Each
device counts as one session with its most recent connection.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from d1.devices import list_devices
from workers.auth import require_user
from workers.errors import forbidden
from workers.routing import client_routes


async def whois(request: Request, env: Any) -> dict[str, Any]:
    requester = await require_user(request, env)
    user_id = request.path_params["userId"]
    if user_id != requester.user_id:
        raise forbidden("You may only look up your own sessions")
    devices: dict[str, Any] = {}
    for device in await list_devices(env.DB, user_id):
        connection: dict[str, Any] = {}
        if device.get("last_seen_ip") is not None:
            connection["ip"] = device["last_seen_ip"]
        if device.get("last_seen_ts") is not None:
            connection["last_seen"] = device["last_seen_ts"]
        devices[device["device_id"]] = {"sessions": [{"connections": [connection] if connection else []}]}
    return {"user_id": user_id, "devices": devices}


routes: list[Route] = [*client_routes("/admin/whois/{userId}", whois, ["GET"])]
